"""Whether a file is read from the disk or from memory: the page cache, for benches that read files.

A bench that writes a file and then times reading it reads it from the page cache, at memory speed,
unless it says otherwise (issue 18). `drop_from_page_cache` makes the next read a cold one: it
flushes the file's dirty pages to the disk (fsync: dirty pages cannot be dropped) and asks the kernel
to drop the clean ones (posix_fadvise POSIX_FADV_DONTNEED, no root needed). The kernel may keep a page
another process has mapped or locked, so benches check `resident_fraction` afterwards and report it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from pathlib import Path


def drop_from_page_cache(path: str | os.PathLike) -> None:
    """fsync the file, then advise the kernel to drop its pages (POSIX_FADV_DONTNEED)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)


def resident_fraction(path: str | os.PathLike) -> float:
    """The fraction of the file's pages in the page cache now: mincore(2) over a read-only mapping
    of it (mapping reads nothing, and mincore faults no page in). 0.0 for an empty file."""
    size = Path(path).stat().st_size
    if size == 0:
        return 0.0
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = (ctypes.c_ubyte * pages)()
    descriptor = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, descriptor, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
        try:
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), f"mincore on {path} failed")
        finally:
            libc.munmap(address, size)
    finally:
        os.close(descriptor)
    return sum(byte & 1 for byte in vector) / pages
