"""python-libmaas drives a machine through its life while a test agent, in
a thread, plays the booted machine using only the metadata API (as the
in-memory environment does): commission(wait=True), allocate,
deploy(wait=True), release(wait=True).

Run by crates/cli/tests/e2e.rs against a real `maas start` (see
test_libmaas.py for the environment variables).
"""

import io
import json
import os
import pathlib
import tarfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

from maas.client import connect
from maas.client.enum import NodeStatus

URL = os.environ["MAAS_TEST_URL"]
APIKEY = os.environ["MAAS_TEST_APIKEY"]
ROOT = pathlib.Path(__file__).resolve().parents[2]
RESOURCES = (ROOT / "crates/region/tests/data/machine-resources/qemu-vm.json").read_text()
BASE = URL.rstrip("/").rsplit("/MAAS", 1)[0]


class MetadataAgent:
    """The booted machine's side: preseed, maas-scripts, signal, user-data."""

    def __init__(self, system_id):
        self.system_id = system_id
        self.credentials = None

    def fetch_credentials(self):
        url = f"{BASE}/MAAS/metadata/latest/by-id/{self.system_id}/?op=get_preseed"
        preseed = urllib.request.urlopen(url).read().decode()
        values = {}
        for line in preseed.splitlines():
            key, _, value = line.strip().partition(":")
            if key in ("consumer_key", "token_key", "token_secret") and key not in values:
                values[key] = json.loads(value.strip())
        self.credentials = values

    def _auth(self):
        c = self.credentials
        return (
            'OAuth oauth_version="1.0", oauth_signature_method="PLAINTEXT", '
            f'oauth_consumer_key="{c["consumer_key"]}", oauth_token="{c["token_key"]}", '
            f'oauth_signature="%26{c["token_secret"]}", oauth_nonce="{uuid.uuid4()}", '
            f'oauth_timestamp="{int(time.time())}"'
        )

    def get(self, path):
        request = urllib.request.Request(f"{BASE}/MAAS/metadata/{path}", headers={"Authorization": self._auth()})
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def signal(self, status, fields=(), files=()):
        boundary = uuid.uuid4().hex
        body = io.BytesIO()
        def part(name, data, filename=None):
            disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
            body.write(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode())
            body.write(data if isinstance(data, bytes) else data.encode())
            body.write(b"\r\n")
        part("op", "signal")
        part("status", status)
        for name, value in fields:
            part(name, str(value))
        for name, data in files:
            part(name, data, filename=name)
        body.write(f"--{boundary}--\r\n".encode())
        request = urllib.request.Request(
            f"{BASE}/MAAS/metadata/latest/",
            data=body.getvalue(),
            headers={"Authorization": self._auth(), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with urllib.request.urlopen(request) as response:
            assert response.status == 200, response.status

    def scripts(self):
        status, data = self.get("latest/maas-scripts")
        if status == 204:
            return {}
        assert status == 200, status
        archive = tarfile.open(fileobj=io.BytesIO(data))
        index = json.load(archive.extractfile("index.json"))["1.0"]
        return index

    def commission(self, mac):
        resources = RESOURCES.replace("52:54:00:12:34:56", mac)
        index = self.scripts()
        for script in index.get("commissioning_scripts", []):
            name = script["name"]
            output = resources if name == "50-maas-01-commissioning" else f"ran {name}\n"
            self.signal("WORKING", [("name", name), ("script_result_id", script["script_result_id"])])
            self.signal(
                "WORKING",
                [("name", name), ("script_result_id", script["script_result_id"]), ("exit_status", 0)],
                [(name, output.encode()), (name + ".out", output.encode())],
            )
        if index.get("testing_scripts"):
            self.signal("TESTING")
            for script in index["testing_scripts"]:
                self.signal("WORKING", [("name", script["name"]), ("script_result_id", script["script_result_id"]), ("exit_status", 0)])
        self.signal("OK", [("error", "All scripts successfully ran")])


def api_get(path):
    ck, tk, ts = APIKEY.split(":")
    auth = (
        'OAuth oauth_version="1.0", oauth_signature_method="PLAINTEXT", '
        f'oauth_consumer_key="{ck}", oauth_token="{tk}", oauth_signature="%26{ts}", '
        f'oauth_nonce="{uuid.uuid4()}", oauth_timestamp="{int(time.time())}"'
    )
    request = urllib.request.Request(f"{BASE}/MAAS/api/2.0/{path}", headers={"Authorization": auth})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def api_status(system_id):
    """The machine's status over plain HTTP (libmaas's asyncio client can't
    be used from the agent's thread)."""
    ck, tk, ts = APIKEY.split(":")
    auth = (
        'OAuth oauth_version="1.0", oauth_signature_method="PLAINTEXT", '
        f'oauth_consumer_key="{ck}", oauth_token="{tk}", oauth_signature="%26{ts}", '
        f'oauth_nonce="{uuid.uuid4()}", oauth_timestamp="{int(time.time())}"'
    )
    request = urllib.request.Request(f"{BASE}/MAAS/api/2.0/machines/{system_id}/", headers={"Authorization": auth})
    with urllib.request.urlopen(request) as response:
        return json.load(response)["status"]


def wait_status(system_id, status, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if api_status(system_id) == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"{system_id} never reached status {status}")


def wait_for(machine_id, client, status, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        machine = client.machines.get(machine_id)
        if machine.status == status:
            return machine
        time.sleep(0.2)
    raise AssertionError(f"{machine_id} never reached {status}, is {machine.status_name}")


def play(agent, client, status, action):
    """In a thread: once the machine reaches `status`, boot it (fetch the
    credentials it would get at boot) and run `action`."""
    errors = []

    def run():
        try:
            wait_status(agent.system_id, status)
            agent.fetch_credentials()
            action()
        except Exception as error:  # reported by the main thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_commission_allocate_deploy_release_with_wait():
    client = connect(URL, apikey=APIKEY)
    mac = "52:54:02:%02x:%02x:%02x" % tuple(uuid.uuid4().bytes[:3])
    hostname = f"cycle-{uuid.uuid4().hex[:6]}"
    machine = client.machines.create("amd64/generic", [mac], "manual", hostname=hostname)
    agent = MetadataAgent(machine.system_id)

    # Creating it started commissioning; the machine plays it out.
    thread, errors = play(agent, client, NodeStatus.COMMISSIONING, lambda: agent.commission(mac))
    thread.join(60)
    assert not errors, errors
    machine = wait_for(machine.system_id, client, NodeStatus.READY)
    assert (machine.cpus, machine.memory) == (2, 512), api_get(f"nodes/{machine.system_id}/results/?type=commissioning")

    # commission(wait=True) returns once the machine has reported back.
    thread, errors = play(agent, client, NodeStatus.COMMISSIONING, lambda: agent.commission(mac))
    machine = machine.commission(wait=True, wait_interval=0.2, testing_scripts=["none"])
    thread.join(60)
    assert not errors, errors
    assert machine.status == NodeStatus.READY

    allocated = client.machines.allocate(hostname=hostname)
    assert allocated.system_id == machine.system_id
    assert allocated.status == NodeStatus.ALLOCATED

    # Deploy: the installed OS's first fetch of its user data ends it.
    thread, errors = play(agent, client, NodeStatus.DEPLOYING, lambda: agent.get("latest/user-data"))
    deployed = allocated.deploy(distro_series="jammy", wait=True, wait_interval=0.2)
    thread.join(60)
    assert not errors, errors
    assert deployed.status == NodeStatus.DEPLOYED
    assert deployed.distro_series == "jammy"

    released = deployed.release(wait=True, wait_interval=0.2)
    assert released.status == NodeStatus.READY
    assert released.owner is None
