"""python-libmaas's boot resources, sources and selections against a running region.

The region is the one crates/cli/tests/e2e.rs starts (see test_libmaas.py). It never
imports here: its default source is the public stream, which tests must not reach.
"""

import hashlib
import io
import os
import uuid

import pytest
from maas.client import connect
from maas.client.bones import CallError
from maas.client.viscera.boot_resources import BootResourceFileType

URL = os.environ["MAAS_TEST_URL"]
APIKEY = os.environ["MAAS_TEST_APIKEY"]


@pytest.fixture(scope="module")
def client():
    return connect(URL, apikey=APIKEY)


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_chunked_upload(client):
    # Nine MiB and a bit: three 4 MiB chunks, the last one short.
    data = os.urandom(9 * 1024 * 1024 + 12345)
    name = "custom/" + unique("libmaas")
    progress = []
    resource = client.boot_resources.create(
        name,
        "amd64/generic",
        io.BytesIO(data),
        title="From python-libmaas",
        filetype=BootResourceFileType.DDTGZ,
        progress_callback=progress.append,
    )
    assert len(progress) == 3
    assert progress[-1] == pytest.approx(1.0)

    resource = client.boot_resources.get(resource.id)
    assert resource.type == "Uploaded"
    assert resource.name == name.split("/", 1)[1]
    assert resource.architecture == "amd64/generic"
    newest = resource.sets[max(resource.sets)]
    assert newest.complete is True
    assert newest.label == "uploaded"
    assert newest.size == len(data)
    (rfile,) = newest.files.values()
    assert rfile.complete is True
    assert rfile.filetype == "root-dd"
    assert rfile.sha256 == hashlib.sha256(data).hexdigest()
    assert rfile.size == len(data)
    assert resource.id in [r.id for r in client.boot_resources.list()]

    # The same content again: the region has it, so nothing is sent.
    progress.clear()
    again = client.boot_resources.create(
        name,
        "amd64/generic",
        io.BytesIO(data),
        filetype=BootResourceFileType.DDTGZ,
        progress_callback=progress.append,
    )
    assert progress == []
    assert again.id == resource.id
    assert len(again.sets) == 2

    resource.delete()
    with pytest.raises(CallError):
        client.boot_resources.get(resource.id)


def test_boot_sources_and_selections(client):
    url = f"http://{unique('mirror')}.example.com/ephemeral-v3/stable/"
    source = client.boot_sources.create(url, keyring_data=io.BytesIO(b"\x99\x01keyring"))
    assert source.url == url
    assert source.keyring_filename == ""
    assert url in [s.url for s in client.boot_sources.list()]
    # The facade has no selections; the origin has them by handler name.
    origin = client._origin
    selection = origin.BootSourceSelections.create(
        source, "ubuntu", "jammy", arches=["amd64", "arm64"]
    )
    assert selection.os == "ubuntu"
    assert selection.release == "jammy"
    assert selection.arches == ["amd64", "arm64"]
    assert selection.subarches == ["*"]
    listed = origin.BootSourceSelections.read(source)
    assert [s.id for s in listed] == [selection.id]
    read = origin.BootSourceSelection.read(source, selection.id)
    assert read.release == "jammy"
    selection.delete()
    assert list(origin.BootSourceSelections.read(source)) == []
    source.delete()
    assert url not in [s.url for s in client.boot_sources.list()]


def test_is_importing_and_stop(client):
    client.boot_resources.stop_import()
