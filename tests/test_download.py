"""harness.download: a complete file, a resumed partial file, one-line errors."""

from __future__ import annotations

import io

import pytest

import harness.download
from harness.download import download
from harness.errors import DatasetError


def test_file_url_is_copied(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 100)
    target = download(source.as_uri(), tmp_path / "out" / "copy.bin", progress=False)
    assert target.read_bytes() == source.read_bytes()
    assert not (tmp_path / "out" / "copy.bin.part").exists()


def test_server_ignoring_range_restarts_from_the_beginning(tmp_path):
    # file:// answers without a status (no 206): the stale partial file is replaced, not appended to
    source = tmp_path / "source.bin"
    source.write_bytes(b"0123456789" * 50)
    (tmp_path / "copy.bin.part").write_bytes(b"garbage")
    assert download(source.as_uri(), tmp_path / "copy.bin", progress=False).read_bytes() == source.read_bytes()


def test_unreachable_url_is_one_line(tmp_path):
    with pytest.raises(DatasetError, match=r"download failed .*place the file at") as error:
        download((tmp_path / "missing.tgz").as_uri(), tmp_path / "x.tgz", progress=False)
    assert "\n" not in str(error.value)


def test_download_resumes_a_partial_file(tmp_path, monkeypatch):
    payload = bytes(range(256)) * 1000
    served = tmp_path / "served.bin"
    served.write_bytes(payload)
    target = tmp_path / "got" / "file.bin"
    target.parent.mkdir()
    (target.parent / "file.bin.part").write_bytes(payload[:1000])
    requests = []

    class Response(io.BytesIO):
        status = 206

        def __init__(self, body: bytes):
            super().__init__(body)
            self.headers = {"Content-Length": str(len(body))}

    def fake_urlopen(request, timeout):
        requests.append(request.get_header("Range"))
        return Response(payload[1000:])

    monkeypatch.setattr(harness.download.urllib.request, "urlopen", fake_urlopen)
    download("https://example.invalid/file.bin", target, progress=False)
    assert requests == ["bytes=1000-"]
    assert target.read_bytes() == payload
    # a server (or file:// URL) that ignores Range sends everything: the partial file is replaced
    (target.parent / "file.bin.part").write_bytes(b"garbage")
    monkeypatch.undo()
    download(served.as_uri(), target, progress=False)
    assert target.read_bytes() == payload
