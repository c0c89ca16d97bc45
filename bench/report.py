#!/usr/bin/env python3
"""Turns the TSVs of one bench/rack.sh run into one Markdown table per protocol, with the
targets of the rack issue checked, and (with --write) puts them into BENCHMARKS.md.

usage: report.py RUN_DIR [--write BENCHMARKS.md]

RUN_DIR holds dhcp-SERVER-N.tsv, tftp-SERVER-N.tsv and http-SERVER-N.tsv (N = repetition)
and machine.txt. Figures are medians over the repetitions, with the range in brackets.
"""
import csv
import glob
import os
import re
import statistics
import sys


def rows(path):
    with open(path) as f:
        lines = [line for line in f if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def num(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def runs(run_dir, kind, server):
    return [rows(p) for p in sorted(glob.glob(os.path.join(run_dir, f"{kind}-{server}-*.tsv")))]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(values, digits=0, unit=""):
    """median [min–max] of the values"""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    m = statistics.median(values)
    text = f"{m:,.{digits}f}{unit}"
    if len(values) > 1:
        text += f" [{min(values):,.{digits}f}–{max(values):,.{digits}f}]"
    return text


def verdict(ok):
    return "**met**" if ok else "**not met**"


# ---------------------------------------------------------------- DHCP
DHCP_SERVERS = ["rack", "kea", "dhcpd"]


def dhcp(run_dir, out):
    by_server = {s: runs(run_dir, "dhcp", s) for s in DHCP_SERVERS}
    if not any(by_server.values()):
        return {}
    # sustained rate of one run: highest leases/s among steps with < 1 % unfinished
    sustained = {}
    for s, rs in by_server.items():
        sustained[s] = [max([num(r["leases_per_s"]) for r in run if num(r["unfinished_pct"]) < 1] or [0]) for run in rs]
    rates = sorted({int(r["req_rate"]) for rs in by_server.values() for run in rs for r in run})
    out.append("### DHCPv4 DORA: perfdhcp, relayed, fresh server per step, 10 s per step\n")
    out.append("CPU is the server's (cgroup), per lease acknowledged. Drops = exchanges without an ACK after 1 s.\n")
    out.append("| requested DORA/s | " + " | ".join(
        f"{s} leases/s | {s} drops % | {s} µs CPU/lease | {s} DORA ms" for s in DHCP_SERVERS if by_server[s]) + " |")
    out.append("|---:|" + "---:|---:|---:|---:|" * sum(1 for s in DHCP_SERVERS if by_server[s]))
    for rate in rates:
        cells = [f"{rate:,}"]
        for s in DHCP_SERVERS:
            if not by_server[s]:
                continue
            steps = [r for run in by_server[s] for r in run if int(r["req_rate"]) == rate]
            cells += [fmt([num(r["leases_per_s"]) for r in steps]),
                      fmt([num(r["unfinished_pct"]) for r in steps], 2),
                      fmt([num(r["srv_us_per_lease"]) for r in steps], 1),
                      fmt([num(r["dora_avg_ms"]) for r in steps], 2)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("| server | sustained leases/s (< 1 % drops), per run |")
    out.append("|---|---|")
    for s in DHCP_SERVERS:
        if by_server[s]:
            out.append(f"| {s} | {', '.join(f'{v:,.0f}' for v in sustained[s])} |")
    out.append("")
    result = {}
    if by_server["rack"] and by_server["kea"]:
        kea_rate = med(sustained["kea"])
        rack_rate = med(sustained["rack"])
        # CPU per lease compared at each rate both served at < 1 % drops
        ratios = []
        for rate in rates:
            per = {}
            for s in ("rack", "kea"):
                steps = [r for run in by_server[s] for r in run
                         if int(r["req_rate"]) == rate and num(r["unfinished_pct"]) < 1]
                per[s] = med([num(r["srv_us_per_lease"]) for r in steps])
            if per["rack"] and per["kea"]:
                ratios.append((rate, per["rack"] / per["kea"]))
        top = [x for x in ratios if x[0] <= kea_rate * 1.05]
        at_kea = top[-1] if top else (ratios[-1] if ratios else None)
        result["dhcp_rate"] = rack_rate >= kea_rate
        result["dhcp_cpu"] = at_kea is not None and at_kea[1] <= 1 / 3
        out.append(f"* Rate: rack sustains {rack_rate:,.0f} leases/s, Kea {kea_rate:,.0f} (medians): {verdict(result['dhcp_rate'])}.")
        out.append("* CPU per lease, rack ÷ Kea, at each rate both served with < 1 % drops: "
                   + ", ".join(f"{rate:,}/s {ratio:.2f}" for rate, ratio in ratios) + ".")
        if at_kea:
            out.append(f"  Target ≤ 0.33 at Kea's sustained rate ({at_kea[0]:,}/s: {at_kea[1]:.2f}): {verdict(result['dhcp_cpu'])}.")
        out.append("")
    return result


# ---------------------------------------------------------------- TFTP
TFTP_SERVERS = ["rack", "tftpd-hpa", "atftpd"]


def tftp(run_dir, out):
    by_server = {s: runs(run_dir, "tftp", s) for s in TFTP_SERVERS}
    if not any(by_server.values()):
        return {}
    cases = []
    for rs in by_server.values():
        for run in rs:
            for r in run:
                key = (r["client"], r["blksize"], r["windowsize"].split("(")[0])
                if key not in cases:
                    cases.append(key)
    present = [s for s in TFTP_SERVERS if by_server[s]]
    out.append("### TFTP: one client over a veth, server and client pinned to different CPUs\n")
    out.append("Single transfers of a 50 MiB file (median of the repeats in each run); "
               "`curl-xN` is N concurrent curl transfers of a 10 MiB file, total MiB/s. "
               "(l) = the server ignored windowsize and ran lock-step.\n")
    out.append("| client | blksize | window | " + " | ".join(f"{s} MiB/s | {s} ms CPU/MiB" for s in present) + " |")
    out.append("|---|---:|---:|" + "---:|---:|" * len(present))
    fig = {}
    for c, b, w in cases:
        cells = [c, b, w]
        for s in present:
            steps = [r for run in by_server[s] for r in run
                     if (r["client"], r["blksize"], r["windowsize"].split("(")[0]) == (c, b, w)]
            mib = [num(r["mib_per_s"]) for r in steps]
            cpu = [num(r["srv_cpu_ms_per_mib"]) for r in steps]
            fig[(s, c, b, w)] = (med(mib), med(cpu))
            ignored = " (l)" if any("ignored" in r["windowsize"] for r in steps) else ""
            cells += [fmt(mib, 1) + ignored, fmt(cpu, 1)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    result = {}
    if by_server["rack"] and by_server["tftpd-hpa"]:
        lock = [(c, b) for c, b, w in cases if w == "1" and not c.startswith("curl-x")]
        rate_ok = all((fig.get(("rack", c, b, "1"))[0] or 0) >= (fig.get(("tftpd-hpa", c, b, "1"))[0] or 0) for c, b in lock)
        cpu_ok = all((fig.get(("rack", c, b, "1"))[1] or 1e9) <= (fig.get(("tftpd-hpa", c, b, "1"))[1] or 0) for c, b in lock)
        result["tftp_lockstep"] = rate_ok
        result["tftp_cpu"] = cpu_ok
        out.append("* Lock-step MiB/s, rack ÷ tftpd-hpa: " + ", ".join(
            f"{c} {b} {fig[('rack', c, b, '1')][0] / fig[('tftpd-hpa', c, b, '1')][0]:.2f}" for c, b in lock
            if fig[("rack", c, b, "1")][0] and fig[("tftpd-hpa", c, b, "1")][0]) + f": {verdict(rate_ok)} (target ≥ 1).")
        out.append("* Lock-step CPU per MiB, rack ÷ tftpd-hpa: " + ", ".join(
            f"{c} {b} {fig[('rack', c, b, '1')][1] / fig[('tftpd-hpa', c, b, '1')][1]:.2f}" for c, b in lock
            if fig[("rack", c, b, "1")][1] and fig[("tftpd-hpa", c, b, "1")][1]) + f": {verdict(cpu_ok)} (target ≤ 1).")
    if by_server["rack"] and by_server["atftpd"]:
        wins = [(c, b) for c, b, w in cases if w == "16"]
        ok = all((fig[("rack", c, b, "16")][0] or 0) >= (fig[("atftpd", c, b, "16")][0] or 0) for c, b in wins)
        result["tftp_window"] = ok
        out.append("* windowsize 16 MiB/s, rack ÷ atftpd: " + ", ".join(
            f"{c} {b} {fig[('rack', c, b, '16')][0] / fig[('atftpd', c, b, '16')][0]:.2f}" for c, b in wins
            if fig[("rack", c, b, "16")][0] and fig[("atftpd", c, b, "16")][0]) + f": {verdict(ok)} (target ≥ 1).")
    out.append("")
    return result


# ---------------------------------------------------------------- HTTP
HTTP_SERVERS = ["rack", "nginx"]


def http(run_dir, out):
    by_server = {s: runs(run_dir, "http", s) for s in HTTP_SERVERS}
    if not any(by_server.values()):
        return {}
    present = [s for s in HTTP_SERVERS if by_server[s]]
    tests = []
    for rs in by_server.values():
        for run in rs:
            for r in run:
                if r["test"] not in tests:
                    tests.append(r["test"])
    out.append("### HTTP boot files: 100 concurrent clients over the server namespace's loopback\n")
    out.append("`wrk-*`: wrk, 2 threads, 100 keep-alive connections, 10 s, on one file (median of the repeats); "
               "`curl-30MiB`: 100 curl processes at once, total MiB/s.\n")
    out.append("| test | " + " | ".join(f"{s} MiB/s | {s} req/s | {s} ms CPU/MiB" for s in present) + " |")
    out.append("|---|" + "---:|---:|---:|" * len(present))
    fig = {}
    for t in tests:
        cells = [t]
        for s in present:
            steps = [r for run in by_server[s] for r in run if r["test"] == t]
            mib = [num(r["mib_per_s"]) for r in steps]
            rps = [num(r["req_per_s"]) for r in steps]
            cpu = [num(r["srv_cpu_ms_per_mib"]) for r in steps]
            fig[(s, t)] = med(mib)
            errs = " (errors)" if any(r["ok"] not in ("ok",) and "/" not in r["ok"] for r in steps) else ""
            cells += [fmt(mib) + errs, fmt(rps), fmt(cpu, 3)]
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    result = {}
    if by_server["rack"] and by_server["nginx"]:
        ratios = [(t, fig[("rack", t)] / fig[("nginx", t)]) for t in tests if fig.get(("rack", t)) and fig.get(("nginx", t))]
        # The target is about boot files (loaders, kernels, initrds); 1 KiB stands for scripts.
        boot = [(t, r) for t, r in ratios if "KiB" not in t]
        small = [(t, r) for t, r in ratios if "KiB" in t]
        result["http"] = bool(boot) and all(r >= 0.8 for _, r in boot)
        out.append("* Boot files, MiB/s rack ÷ nginx: " + ", ".join(f"{t} {r:.2f}" for t, r in boot)
                   + f": {verdict(result['http'])} (target ≥ 0.8).")
        if small:
            out.append("* Small files (not a target), req/s rack ÷ nginx: " + ", ".join(f"{t} {r:.2f}" for t, r in small) + ".")
        out.append("")
    return result


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    run_dir = sys.argv[1]
    out = []
    with open(os.path.join(run_dir, "machine.txt")) as f:
        machine = f.read().strip()
    out.append(machine + "\n")
    results = {}
    results.update(dhcp(run_dir, out))
    results.update(tftp(run_dir, out))
    results.update(http(run_dir, out))
    text = "\n".join(out)
    print(text)
    if "--write" in sys.argv:
        path = sys.argv[sys.argv.index("--write") + 1]
        write(path, text, machine)


HEADER = """# Rack benchmarks

Our rack servers (`crates/rack`: DHCP, TFTP, HTTP boot) against the reference servers, measured side by side in one
run of `bench/rack.sh` (see its header for the method and knobs; `scripts/deps/rackbench.sh` installs the reference
servers and load generators, and `shared/lab/perf/README.md` describes the method it follows).
Each run adds a section, newest first; a section that names only some benchmarks adds to the figures of the one before it.
Server CPU comes from a cgroup-v1 cpuacct group holding only the server (its threads and children), so it is the
steadiest figure on these shared 2-vCPU machines; rates move with the other tenants' load.
"""


def write(path, text, machine):
    title = "## " + re.sub(r"\s+", " ", machine.splitlines()[0].lstrip("# ").strip())
    body = title + "\n\n" + "\n".join(text.splitlines()[1:]).strip() + "\n"
    old = open(path).read() if os.path.exists(path) else HEADER
    sections = re.split(r"(?m)^(?=## )", old)
    head, rest = sections[0], [s for s in sections[1:] if not s.startswith(title + "\n")]
    # newest first
    with open(path, "w") as f:
        f.write(head.rstrip() + "\n\n" + body + ("\n" + "\n".join(s.rstrip() + "\n" for s in rest) if rest else ""))


if __name__ == "__main__":
    main()
