"""harness.pagecache: a file a bench has just written is in memory until it is dropped."""

from __future__ import annotations

import os

import pytest

from harness.pagecache import drop_from_page_cache, resident_fraction


def _filesystem_type(path) -> str:
    """The type of the file system holding `path` (the longest mount point above it)."""
    best, kind = "", ""
    with open("/proc/self/mounts") as mounts:
        for line in mounts:
            _, mount_point, fs_type = line.split()[:3]
            if str(path).startswith(mount_point) and len(mount_point) > len(best):
                best, kind = mount_point, fs_type
    return kind


def test_a_written_file_is_cached_until_dropped_and_cached_again_when_read(tmp_path):
    if _filesystem_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip(f"{tmp_path} is in memory ({_filesystem_type(tmp_path)}): there is no disk to drop to")
    path = tmp_path / "ratings.csv"
    path.write_bytes(os.urandom(8 << 20))
    assert resident_fraction(path) > 0.9  # just written: in the page cache (dirty or clean)
    drop_from_page_cache(path)
    assert resident_fraction(path) < 0.1  # fsync'ed, then dropped: the next read comes from the disk
    with open(path, "rb") as file:
        file.read()
    assert resident_fraction(path) > 0.9  # read: cached again


def test_an_empty_file_has_nothing_resident(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    drop_from_page_cache(path)
    assert resident_fraction(path) == 0.0
