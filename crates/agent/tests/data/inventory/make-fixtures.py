#!/usr/bin/env python3
"""Writes the fixture trees (proc, sys, dev, etc under qemu-vm/ and server-2s/) that the
inventory golden tests read. The trees mirror real sysfs layout: class and bus entries
are relative symlinks into sys/devices, so `device`, `driver` and `iommu_group` links
resolve inside the tree. Run it after changing a machine below, then regenerate the
golden JSON with UPDATE_EXPECT=1 cargo test -p maas-agent."""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Tree:
    def __init__(self, name):
        self.root = os.path.join(HERE, name)
        shutil.rmtree(self.root, ignore_errors=True)

    def write(self, path, content):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(full, mode) as f:
            f.write(content if isinstance(content, bytes) else content + ("" if content.endswith("\n") else "\n"))

    def link(self, path, target):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        os.symlink(target, full)

    def mkdir(self, path):
        os.makedirs(os.path.join(self.root, path), exist_ok=True)

    def rel(self, from_dir, to):
        return os.path.relpath(to, from_dir)

    # -- building blocks ------------------------------------------------------------
    def pci(self, address, vendor, device, driver, numa=-1, iommu=None, bridge="pci0000:00", extra=None):
        base = f"sys/devices/{bridge}/{address}"
        self.write(f"{base}/vendor", f"0x{vendor}")
        self.write(f"{base}/device", f"0x{device}")
        self.write(f"{base}/numa_node", str(numa))
        for key, value in (extra or {}).items():
            self.write(f"{base}/{key}", value)
        self.mkdir(f"sys/bus/pci/drivers/{driver}")
        self.link(f"{base}/driver", self.rel(base, f"sys/bus/pci/drivers/{driver}"))
        if iommu is not None:
            self.mkdir(f"sys/kernel/iommu_groups/{iommu}")
            self.link(f"{base}/iommu_group", self.rel(base, f"sys/kernel/iommu_groups/{iommu}"))
        self.link(f"sys/bus/pci/devices/{address}", self.rel("sys/bus/pci/devices", base))
        return base

    def nic(self, device_dir, name, mac, speed, carrier=1, driver_dir=None, dev_port=0, mtu=1500):
        base = f"{device_dir}/net/{name}"
        self.write(f"{base}/address", mac)
        self.write(f"{base}/carrier", str(carrier))
        self.write(f"{base}/speed", str(speed))
        self.write(f"{base}/duplex", "full" if carrier else "unknown")
        self.write(f"{base}/operstate", "up" if carrier else "down")
        self.write(f"{base}/flags", "0x1003" if carrier else "0x1002")
        self.write(f"{base}/type", "1")
        self.write(f"{base}/mtu", str(mtu))
        self.write(f"{base}/dev_port", str(dev_port))
        self.link(f"{base}/device", self.rel(base, device_dir))
        self.link(f"sys/class/net/{name}", self.rel("sys/class/net", base))

    def virtual_nic(self, name, mac, kind=1, mtu=1500):
        base = f"sys/devices/virtual/net/{name}"
        self.write(f"{base}/address", mac)
        self.write(f"{base}/operstate", "unknown")
        self.write(f"{base}/flags", "0x9")
        self.write(f"{base}/type", str(kind))
        self.write(f"{base}/mtu", str(mtu))
        self.link(f"sys/class/net/{name}", self.rel("sys/class/net", base))

    def disk(self, device_dir, name, major_minor, size_bytes, rotational, partitions=(),
             model=None, serial=None, serial_in_block=False, removable=0, wwid=None,
             firmware=None, firmware_key="rev", block_size=512, by_id=(), by_path=None, numa=None):
        base = f"{device_dir}/block/{name}"
        self.write(f"{base}/dev", major_minor)
        self.write(f"{base}/size", str(size_bytes // 512))
        self.write(f"{base}/ro", "0")
        self.write(f"{base}/removable", str(removable))
        self.write(f"{base}/queue/rotational", str(rotational))
        self.write(f"{base}/queue/logical_block_size", str(block_size))
        if serial and serial_in_block:
            self.write(f"{base}/serial", serial)
        if model is not None:
            self.write(f"{device_dir}/model", model)
        if serial and not serial_in_block:
            self.write(f"{device_dir}/serial", serial)
        if wwid:
            self.write(f"{device_dir}/wwid", wwid)
        if firmware:
            self.write(f"{device_dir}/{firmware_key}", firmware)
        if numa is not None:
            self.write(f"{device_dir}/numa_node", str(numa))
        self.link(f"{base}/device", self.rel(base, device_dir))
        major, minor = major_minor.split(":")
        for number, size in partitions:
            part = f"{name}p{number}" if name[-1].isdigit() else f"{name}{number}"
            self.write(f"{base}/{part}/partition", str(number))
            self.write(f"{base}/{part}/dev", f"{major}:{int(minor) + number}")
            self.write(f"{base}/{part}/size", str(size // 512))
            self.write(f"{base}/{part}/ro", "0")
        self.link(f"sys/block/{name}", self.rel("sys/block", base))
        for link in by_id:
            self.link(f"dev/disk/by-id/{link}", f"../../{name}")
        if by_path:
            self.link(f"dev/disk/by-path/{by_path}", f"../../{name}")

    def cpus(self, sockets, cores, threads, model, vendor, mhz, flags, numa_of_socket, max_khz=None, min_khz=None):
        blocks = []
        cpu = 0
        total = sockets * cores * threads
        for thread in range(threads):
            for socket in range(sockets):
                for core in range(cores):
                    base = f"sys/devices/system/cpu/cpu{cpu}"
                    self.write(f"{base}/topology/physical_package_id", str(socket))
                    self.write(f"{base}/topology/core_id", str(core))
                    self.write(f"{base}/topology/die_id", "0")
                    if cpu:
                        self.write(f"{base}/online", "1")
                    if max_khz:
                        self.write(f"{base}/cpufreq/cpuinfo_max_freq", str(max_khz))
                        self.write(f"{base}/cpufreq/cpuinfo_min_freq", str(min_khz))
                        self.write(f"{base}/cpufreq/scaling_cur_freq", str(mhz * 1000 + 17 * cpu))
                    blocks.append(
                        f"processor\t: {cpu}\nvendor_id\t: {vendor}\ncpu family\t: 6\nmodel\t\t: 85\n"
                        f"model name\t: {model}\nstepping\t: 7\ncpu MHz\t\t: {mhz}.000\n"
                        f"physical id\t: {socket}\nsiblings\t: {cores * threads}\ncore id\t\t: {core}\n"
                        f"cpu cores\t: {cores}\nflags\t\t: {flags}\n")
                    cpu += 1
        self.write("proc/cpuinfo", "\n".join(blocks))
        nodes = {}
        for c in range(total):
            socket = (c // cores) % sockets
            nodes.setdefault(numa_of_socket[socket], []).append(c)
        for node, members in nodes.items():
            self.write(f"sys/devices/system/node/node{node}/cpulist", cpulist(members))
        self.write("sys/devices/system/cpu/isolated", "")

    def memory(self, block_size, blocks_per_node, mem_total_kb, available_kb, hugepages=(0, 0, 2048)):
        self.write("sys/devices/system/memory/block_size_bytes", f"{block_size:x}")
        block = 0
        for node, count in enumerate(blocks_per_node):
            used_kb = (mem_total_kb - available_kb) // len(blocks_per_node)
            node_total_kb = mem_total_kb // len(blocks_per_node)
            self.write(f"sys/devices/system/node/node{node}/meminfo",
                       f"Node {node} MemTotal:       {node_total_kb} kB\nNode {node} MemFree:        {node_total_kb - used_kb} kB\n"
                       f"Node {node} MemUsed:        {used_kb} kB\n")
            for _ in range(count):
                self.write(f"sys/devices/system/memory/memory{block}/online", "1")
                self.link(f"sys/devices/system/node/node{node}/memory{block}", f"../../memory/memory{block}")
                block += 1
            total, free, size = hugepages
            self.write(f"sys/devices/system/node/node{node}/hugepages/hugepages-{size}kB/nr_hugepages", str(total // len(blocks_per_node)))
            self.write(f"sys/devices/system/node/node{node}/hugepages/hugepages-{size}kB/free_hugepages", str(free // len(blocks_per_node)))
        total, free, size = hugepages
        self.write("proc/meminfo",
                   f"MemTotal:       {mem_total_kb} kB\nMemFree:        {available_kb - 1000} kB\n"
                   f"MemAvailable:   {available_kb} kB\nHugePages_Total:    {total}\nHugePages_Free:     {free}\n"
                   f"Hugepagesize:       {size} kB\n")

    def dmi(self, **values):
        for key, value in values.items():
            self.write(f"sys/class/dmi/id/{key}", value)

    def kernel(self, hostname, release="6.1.0-28-amd64"):
        self.write("proc/sys/kernel/arch", "x86_64")
        self.write("proc/sys/kernel/ostype", "Linux")
        self.write("proc/sys/kernel/osrelease", release)
        self.write("proc/sys/kernel/hostname", hostname)


def cpulist(cpus):
    cpus = sorted(cpus)
    ranges, start, prev = [], cpus[0], cpus[0]
    for c in cpus[1:] + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        ranges.append(f"{start}-{prev}" if start != prev else str(start))
        if c is not None:
            start = prev = c
    return ",".join(ranges)


def qemu_vm():
    t = Tree("qemu-vm")
    t.kernel("maas-enlisting-node")
    t.write("etc/os-release", 'NAME="MAAS in-memory environment"\nID=maas-ephemeral\nVERSION_ID="0.1"\n')
    t.cpus(1, 2, 1, "QEMU Virtual CPU version 2.5+", "AuthenticAMD", 2495,
           "fpu de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 syscall nx lm rep_good nopl cpuid extd_apicid tsc_known_freq pni cx16 x2apic hypervisor lahf_lm svm 3dnowprefetch vmmcall",
           [0])
    t.memory(0x8000000, [4], 466304, 402000)
    t.dmi(sys_vendor="QEMU", product_name="Standard PC (i440FX + PIIX, 1996)", product_version="pc-i440fx-10.0",
          product_uuid="5C7B2D6E-1F3A-4B8C-9D0E-1A2B3C4D5E6F", product_serial="", product_family="",
          product_sku="", bios_vendor="SeaBIOS", bios_version="1.16.3-debian-1.16.3-2~bpo12+1",
          bios_date="04/01/2014", chassis_vendor="QEMU", chassis_type="1", chassis_version="pc-i440fx-10.0",
          chassis_serial="", board_vendor="", board_name="", board_serial="", board_version="")
    t.pci("0000:00:00.0", "8086", "1237", "agpgart-intel")
    t.pci("0000:00:01.1", "8086", "7010", "ata_piix")
    net = t.pci("0000:00:03.0", "1af4", "1000", "virtio-pci")
    t.mkdir("sys/bus/virtio/drivers/virtio_net")
    t.link(f"{net}/virtio0/driver", t.rel(f"{net}/virtio0", "sys/bus/virtio/drivers/virtio_net"))
    t.write("sys/module/virtio_net/version", "")
    t.nic(f"{net}/virtio0", "eth0", "52:54:00:12:34:56", -1)
    blk = t.pci("0000:00:04.0", "1af4", "1001", "virtio-pci")
    t.mkdir("sys/bus/virtio/drivers/virtio_blk")
    t.link(f"{blk}/virtio1/driver", t.rel(f"{blk}/virtio1", "sys/bus/virtio/drivers/virtio_blk"))
    t.disk(f"{blk}/virtio1", "vda", "254:0", 8 * 1024**3, 1, partitions=[(1, 1024**2), (2, 8 * 1024**3 - 2 * 1024**2)],
           serial="maas-disk-0", serial_in_block=True)
    t.virtual_nic("lo", "00:00:00:00:00:00", kind=772, mtu=65536)
    t.write("proc/net/fib_trie",
            "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n"
            "     +-- 10.0.2.0/24 2 0 2\n        +-- 10.0.2.0/28 2 0 2\n           |-- 10.0.2.0\n"
            "              /24 link UNICAST\n           |-- 10.0.2.15\n              /32 host LOCAL\n"
            "        |-- 10.0.2.255\n           /32 link BROADCAST\n"
            "     +-- 127.0.0.0/8 2 0 2\n        +-- 127.0.0.0/31 1 0 0\n           |-- 127.0.0.0\n"
            "              /8 host LOCAL\n           |-- 127.0.0.1\n              /32 host LOCAL\n"
            "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.2.15\n        /32 host LOCAL\n")
    t.write("proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            "eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
            "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    t.write("proc/net/if_inet6",
            "fe80000000000000505400fffe123456 02 40 20 80     eth0\n"
            "00000000000000000000000000000001 01 80 10 80       lo\n")


def server_2s():
    t = Tree("server-2s")
    t.kernel("r640-07")
    t.write("etc/os-release", 'NAME="MAAS in-memory environment"\nID=maas-ephemeral\nVERSION_ID="0.1"\n')
    # A file, not only directories, so the tree survives git (which keeps no empty dirs).
    t.write("sys/firmware/efi/fw_platform_size", "64\n")
    t.cpus(2, 4, 2, "Intel(R) Xeon(R) Silver 4208 CPU @ 2.10GHz", "GenuineIntel", 2100,
           "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc vmx smx est tm2 ssse3 sdbg fma cx16 avx512f",
           [0, 1], max_khz=3200000, min_khz=800000)
    t.memory(0x80000000, [16, 16], 65_600_000, 63_000_000, hugepages=(1024, 1000, 2048))
    t.dmi(sys_vendor="Dell Inc.", product_name="PowerEdge R640", product_version="Not Specified",
          product_uuid="4C4C4544-0042-3510-8051-B7C04F4E3332", product_serial="7B5QN32",
          product_family="PowerEdge", product_sku="SKU=0716;ModelName=PowerEdge R640",
          bios_vendor="Dell Inc.", bios_version="2.19.1", bios_date="06/05/2023",
          chassis_vendor="Dell Inc.", chassis_type="23", chassis_version="", chassis_serial="7B5QN32",
          board_vendor="Dell Inc.", board_name="0H28RR", board_serial=".7B5QN32.CNFCP0011B00AT.",
          board_version="A06")
    # Two on-board I350 ports (two PCI functions), a ConnectX-4 Lx card with SR-IOV (two functions).
    for function, (name, mac, speed, carrier) in enumerate([("eno1", "e4:43:4b:a1:00:10", 1000, 1),
                                                            ("eno2", "e4:43:4b:a1:00:11", -1, 0)]):
        base = t.pci(f"0000:01:00.{function}", "8086", "1521", "igb", numa=0, iommu=20 + function,
                     bridge="pci0000:00/0000:00:1c.0")
        t.nic(base, name, mac, speed, carrier)
    t.write("sys/module/igb/version", "5.10.0-k")
    for function, (name, mac, speed) in enumerate([("ens1f0np0", "0c:42:a1:5e:77:40", 25000),
                                                   ("ens1f1np1", "0c:42:a1:5e:77:41", 25000)]):
        base = t.pci(f"0000:3b:00.{function}", "15b3", "1015", "mlx5_core", numa=1, iommu=40 + function,
                     bridge="pci0000:3a/0000:3a:00.0", extra={"sriov_totalvfs": "8", "sriov_numvfs": "0"})
        t.nic(base, name, mac, speed, 1, mtu=9000)
    t.virtual_nic("lo", "00:00:00:00:00:00", kind=772, mtu=65536)
    t.virtual_nic("br0", "e4:43:4b:a1:00:10")
    # Six SATA disks behind the AHCI controller: four spinning, two SSDs; a removable SD card reader;
    # two NVMe drives.
    ahci = t.pci("0000:00:17.0", "8086", "a182", "ahci", numa=0, iommu=5)
    sata = [
        ("sda", "8:0", 4000787030016, 1, "ST4000NM0035-1V4", "ZC1B2K8Q", "TN04", "0x5000c500a1b2c3d4"),
        ("sdb", "8:16", 4000787030016, 1, "ST4000NM0035-1V4", "ZC1B2K9R", "TN04", "0x5000c500a1b2c3d5"),
        ("sdc", "8:32", 4000787030016, 1, "ST4000NM0035-1V4", "ZC1B2KA0", "TN04", "0x5000c500a1b2c3d6"),
        ("sdd", "8:48", 4000787030016, 1, "ST4000NM0035-1V4", "ZC1B2KB1", "TN04", "0x5000c500a1b2c3d7"),
        ("sde", "8:64", 480103981056, 0, "SAMSUNG MZ7LH480HAHQ-00005", "S45PNA0M712345", "HXT7904Q", "0x5002538e40a1b2c3"),
        ("sdf", "8:80", 480103981056, 0, "SAMSUNG MZ7LH480HAHQ-00005", "S45PNA0M712346", "HXT7904Q", "0x5002538e40a1b2c4"),
    ]
    for port, (name, mm, size, rot, model, serial, rev, wwn) in enumerate(sata):
        dev = f"{ahci}/ata{port + 1}/host{port}/target{port}:0:0/{port}:0:0:0"
        t.write(f"{dev}/vendor", "ATA")
        t.write(f"{dev}/vpd_pg80", bytes([0, 0x80, 0, len(serial)]) + serial.encode())
        parts = [(1, 1024**2), (2, size - 2 * 1024**2)] if name == "sde" else []
        t.disk(dev, name, mm, size, rot, partitions=parts, model=model, firmware=rev,
               wwid=f"naa.{wwn[2:]}",
               by_id=[f"ata-{model.replace(' ', '_')}_{serial}", f"wwn-{wwn}"],
               by_path=f"pci-0000:00:17.0-ata-{port + 1}")
    usb = "sys/devices/pci0000:00/0000:00:14.0/usb1/1-3"
    t.write(f"{usb}/idVendor", "0bda")
    t.write(f"{usb}/idProduct", "0328")
    t.write(f"{usb}/busnum", "1")
    t.write(f"{usb}/devnum", "2")
    t.write(f"{usb}/speed", "480")
    t.write(f"{usb}/manufacturer", "Generic")
    t.write(f"{usb}/product", "USB3.0-CRW")
    t.link("sys/bus/usb/devices/1-3", t.rel("sys/bus/usb/devices", usb))
    t.pci("0000:00:14.0", "8086", "a1af", "xhci_hcd", numa=0, iommu=3)
    reader = f"{usb}/1-3:1.0/host8/target8:0:0/8:0:0:0"
    t.disk(reader, "sdg", "8:96", 0, 0, model="SD/MMC CRW", removable=1, firmware="1.00",
           by_id=["usb-Generic-_SD_MMC_CRW_28203008282014000-0:0"], by_path="pci-0000:00:14.0-usb-0:3:1.0-scsi-0:0:0:0")
    for index, (serial, address) in enumerate([("S4EMNX0R123456", "0000:5e:00.0"), ("S4EMNX0R123457", "0000:5f:00.0")]):
        ctrl = t.pci(address, "144d", "a808", "nvme", numa=1 if index else 0, iommu=60 + index,
                     bridge="pci0000:5d/0000:5d:00.0")
        dev = f"{ctrl}/nvme/nvme{index}"
        t.disk(dev, f"nvme{index}n1", f"259:{index * 4}", 1600321314816, 0, model="Samsung SSD 970 EVO Plus 2TB",
               serial=serial, firmware="2B2QEXM7", firmware_key="firmware_rev",
               wwid=f"eui.0025385{index}91b0{index}2{index}4", numa=1 if index else 0,
               partitions=[(1, 512 * 1024**2), (2, 1600321314816 - 513 * 1024**2)] if index == 0 else [],
               by_id=[f"nvme-Samsung_SSD_970_EVO_Plus_2TB_{serial}", f"nvme-eui.0025385{index}91b0{index}2{index}4"],
               by_path=f"pci-{address}-nvme-1")
    t.write("proc/net/fib_trie",
            "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.20.0.57\n        /32 host LOCAL\n     |-- 127.0.0.1\n        /32 host LOCAL\n")
    t.write("proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
            "eno1\t00000000\t0100140A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
            "eno1\t0000140A\t00000000\t0001\t0\t0\t0\t00F0FFFF\t0\t0\t0\n")
    t.write("proc/net/if_inet6", "")


if __name__ == "__main__":
    qemu_vm()
    server_2s()
    print("fixtures written under", HERE, file=sys.stderr)
