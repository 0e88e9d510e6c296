"""Dataset verification: checksum manifests, written once after preparation, checked before training.

A manifest (`MANIFEST.json` in the dataset folder) lists every file with its size and SHA-256.
`verify_manifest` checks a prepared folder before any training starts and raises `DatasetError`
naming the first missing, extra-sized or corrupt file. Downloaded archives are checked against
their published checksums with `verify_file` (MD5 for ImageNet and MovieLens, as published).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.errors import DatasetError

MANIFEST_NAME = "MANIFEST.json"
_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (hashlib releases the GIL: threads scale)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike, expected: str, algorithm: str = "md5") -> None:
    """Check one downloaded file against its published checksum; DatasetError names it if not."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: missing (expected a file with {algorithm} {expected})")
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise DatasetError(f"{path}: {algorithm} checksum mismatch (expected {expected}, found {actual}); "
                           "the file is corrupt or incomplete: download it again")


def _dataset_files(root: Path) -> Iterable[Path]:
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.parent == root and name == MANIFEST_NAME:
                continue
            yield path


def write_manifest(root: str | os.PathLike, threads: int = 8) -> Path:
    """Hash every file under `root` and write `root/MANIFEST.json`."""
    root = Path(root)
    files = sorted(_dataset_files(root))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        digests = list(pool.map(file_digest, files))
    entries = {path.relative_to(root).as_posix(): {"size": path.stat().st_size, "sha256": digest}
               for path, digest in zip(files, digests)}
    manifest = root / MANIFEST_NAME
    temporary = manifest.with_suffix(".tmp")
    temporary.write_text(json.dumps({"algorithm": "sha256", "files": entries}, indent=1, sort_keys=True))
    os.replace(temporary, manifest)
    return manifest


def verify_manifest(root: str | os.PathLike, mode: str = "full", threads: int = 8) -> int:
    """Check `root` against its manifest; returns the number of files checked.

    mode: "full" hashes every file, "size" only compares sizes (for huge datasets on trusted
    storage), "off" skips the check. Raises DatasetError with one line naming the bad file.
    """
    if mode == "off":
        return 0
    if mode not in ("full", "size"):
        raise DatasetError(f"run.verify_data: unknown mode '{mode}' (full, size or off)")
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found; prepare it with `invoke data BENCH` "
                           "(or `--tiny`) or point run.data_dir at it")
    manifest = root / MANIFEST_NAME
    try:
        entries = json.loads(manifest.read_text())["files"]
    except FileNotFoundError:
        raise DatasetError(f"{manifest}: no checksum manifest; re-run the dataset preparation") from None
    except (ValueError, KeyError, TypeError, OSError) as error:
        raise DatasetError(f"{manifest}: unreadable manifest ({error})") from None
    paths = []
    for relative, entry in sorted(entries.items()):
        path = root / relative
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DatasetError(f"{path}: missing from the dataset (listed in {MANIFEST_NAME})") from None
        if size != entry["size"]:
            raise DatasetError(f"{path}: size {size} bytes, manifest says {entry['size']}: file is corrupt")
        paths.append((path, entry["sha256"]))
    if mode == "full":
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for (path, expected), actual in zip(paths, pool.map(lambda item: file_digest(item[0]), paths)):
                if actual != expected:
                    raise DatasetError(f"{path}: sha256 checksum mismatch (expected {expected}, "
                                       f"found {actual}): file is corrupt; prepare the dataset again")
    return len(paths)
