"""python-libmaas (PyPI, unchanged) against a running region.

The runner (crates/cli/tests/e2e.rs) starts `maas start` on a free port,
creates an admin and passes:
  MAAS_TEST_URL       http://127.0.0.1:PORT/MAAS/
  MAAS_TEST_APIKEY    the admin's API key
  MAAS_TEST_USER, MAAS_TEST_PASSWORD  the admin's login
"""

import os
import uuid

import pytest
from maas.client import connect, login
from maas.client.bones import CallError
from maas.client.enum import NodeStatus, PowerState

URL = os.environ["MAAS_TEST_URL"]
APIKEY = os.environ["MAAS_TEST_APIKEY"]
USER = os.environ["MAAS_TEST_USER"]
PASSWORD = os.environ["MAAS_TEST_PASSWORD"]


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def unique_mac():
    raw = uuid.uuid4().bytes[:5]
    return "52:" + ":".join(f"{b:02x}" for b in raw)


@pytest.fixture(scope="module")
def client():
    return connect(URL, apikey=APIKEY)


def test_connect_with_key_and_version(client):
    version = client.version.get()
    assert version.version == "3.5.0"
    assert "authenticate-api" in version.capabilities
    assert version.version_info[0] == 3


def test_login_with_password():
    by_password = login(URL, username=USER, password=PASSWORD)
    me = by_password.users.whoami()
    assert me.username == USER
    assert me.is_admin is True


def test_bad_password_is_refused():
    with pytest.raises(Exception):
        login(URL, username=USER, password="not-the-password")


def test_whoami_and_users(client):
    me = client.users.whoami()
    assert me.username == USER
    name = unique("user")
    created = client.users.create(name, "pw-" + name, email=f"{name}@example.com", is_admin=False)
    assert created.username == name
    assert created.is_admin is False
    names = [u.username for u in client.users.list()]
    assert USER in names and name in names


def test_machines_create_list_read_update_delete(client):
    hostname = unique("node")
    mac = unique_mac()
    machine = client.machines.create(
        "amd64/generic",
        [mac],
        "ipmi",
        {"power_address": "10.0.0.9", "power_user": "root", "power_pass": "secret"},
        hostname=hostname,
    )
    assert machine.hostname == hostname
    assert machine.fqdn == hostname + ".maas"
    assert machine.architecture == "amd64/generic"
    assert machine.status == NodeStatus.COMMISSIONING
    assert machine.status_name == "Commissioning"
    assert machine.power_type == "ipmi"
    assert machine.power_state == PowerState.UNKNOWN
    assert machine.zone.name == "default"
    assert machine.pool.name == "default"
    assert machine.domain.name == "maas"
    assert machine.owner.username == USER  # commissioning is owned by whoever started it
    assert machine.locked is False
    assert machine.netboot is True
    assert machine.disable_ipv4 is False
    assert machine.cpus == 0 or machine.cpus is not None
    assert machine.memory == 0
    assert [i.mac_address for i in machine.interfaces] == [mac]
    assert machine.boot_interface.mac_address == mac
    assert machine.boot_interface.type.value == "physical"
    assert list(machine.tags) == []
    assert machine.owner_data == {}

    same = client.machines.get(machine.system_id)
    assert same.system_id == machine.system_id
    listed = client.machines.list(hostnames=[hostname])
    assert [m.system_id for m in listed] == [machine.system_id]
    # An FQDN is cut to its host name.
    listed = client.machines.list(hostnames=[hostname + ".maas"])
    assert [m.system_id for m in listed] == [machine.system_id]
    assert machine.system_id in [m.system_id for m in client.machines.list()]

    params = client.machines.get_power_parameters_for([machine.system_id])
    assert params[machine.system_id]["power_address"] == "10.0.0.9"

    machine.hostname = hostname + "-renamed"
    machine.save()
    again = client.machines.get(machine.system_id)
    assert again.hostname == hostname + "-renamed"

    again.delete()
    with pytest.raises(CallError):
        client.machines.get(machine.system_id)


def test_duplicate_mac_is_a_call_error(client):
    mac = unique_mac()
    client.machines.create("amd64/generic", [mac], "manual")
    with pytest.raises(CallError) as error:
        client.machines.create("amd64/generic", [mac], "manual")
    assert error.value.status == 400


def test_zones(client):
    name = unique("zone")
    zone = client.zones.create(name, description="first rack")
    assert zone.name == name and zone.description == "first rack"
    assert client.zones.get(name).id == zone.id
    assert name in [z.name for z in client.zones.list()]
    zone.delete()
    assert name not in [z.name for z in client.zones.list()]


def test_resource_pools(client):
    name = unique("pool")
    pool = client.resource_pools.create(name, description="GPUs")
    assert client.resource_pools.get(pool.id).name == name
    assert name in [p.name for p in client.resource_pools.list()]
    pool.delete()
    assert name not in [p.name for p in client.resource_pools.list()]


def test_tags_on_machines(client):
    name = unique("tag")
    tag = client.tags.create(name, comment="accelerators")
    assert tag.name == name and tag.comment == "accelerators"
    assert name in [t.name for t in client.tags.list()]
    machine = client.machines.create("amd64/generic", [unique_mac()], "manual")
    machine.tags.add(tag)
    assert name in [t.name for t in client.machines.get(machine.system_id).tags]
    machine.tags.remove(tag)
    assert name not in [t.name for t in client.machines.get(machine.system_id).tags]
    client.tags.get(name).delete()
    assert name not in [t.name for t in client.tags.list()]


def test_fabrics_vlans_and_subnets(client):
    default = client.fabrics.get_default()
    assert default.id == 0
    assert default.name == "fabric-0"
    untagged = default.vlans.get_default()
    assert untagged.vid == 0 and untagged.id == 5001
    fabric = client.fabrics.create(name=unique("fabric"))
    vlan = fabric.vlans.create(100, name="storage", mtu=9000)
    assert vlan.vid == 100 and vlan.mtu == 9000 and vlan.fabric.id == fabric.id
    assert vlan.space is None or vlan.space.name == "undefined" or vlan.space == "undefined"
    cidr = "10.%d.%d.0/24" % (uuid.uuid4().bytes[0], uuid.uuid4().bytes[1])
    subnet = client.subnets.create(cidr, vlan, gateway_ip=cidr.replace("0/24", "1"), dns_servers=["10.0.0.2"])
    assert subnet.cidr == cidr
    assert subnet.vlan.id == vlan.id
    assert subnet.gateway_ip == cidr.replace("0/24", "1")
    assert subnet.dns_servers == ["10.0.0.2"]
    assert client.subnets.get(subnet.id).cidr == cidr
    assert cidr in [s.cidr for s in client.subnets.list()]
    assert fabric.id in [f.id for f in client.fabrics.list()]
    subnet.delete()
    vlan.delete()
    fabric.delete()


def test_events_query_and_paging(client):
    for _ in range(3):
        client.machines.create("amd64/generic", [unique_mac()], "manual")
    events = client.events.query(limit=2)
    assert len(events) == 2
    first = list(events)
    assert first[0].event_id > first[1].event_id
    assert first[0].level.name == "INFO"
    assert first[0].event_type == "Commissioning"
    assert first[0].created.year >= 2024
    older = events.prev()
    assert len(older) >= 1
    assert all(e.event_id < first[1].event_id for e in older)
    newer = older.next()
    assert any(e.event_id == first[1].event_id for e in newer)


def test_config(client):
    assert client.maas.get_default_distro_series() == "noble"
    client.maas.set_name("region-under-test")
    assert client.maas.get_name() == "region-under-test"
    assert client.maas.get_enable_disk_erasing_on_release() is False


def test_account_credentials(client):
    credentials = client.account.create_credentials()
    other = connect(URL, apikey=str(credentials))
    assert other.users.whoami().username == USER
    client.account.delete_credentials(credentials)
    with pytest.raises(CallError) as error:
        connect(URL, apikey=str(credentials)).users.whoami()
    assert error.value.status == 401
