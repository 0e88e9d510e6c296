"""Resumable HTTP(S) downloads with a progress bar, for every benchmark's `prepare()`.

    download(url, "downloads/archive.tgz")   # resumes downloads/archive.tgz.part with a Range request

A failed request is a `DatasetError` in one line naming the URL and what to do (retry, or place
the file yourself). Checksums are checked by the caller with `harness.datasets.verify_file`.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from harness.errors import DatasetError
from harness.progress import progress_bar


def download(url: str, destination: str | os.PathLike, *, progress: bool = True,
             chunk_size: int = 1 << 20) -> Path:
    """Fetch `url` to `destination`, resuming a partial `<destination>.part` with an HTTP Range request.

    A server that ignores the Range header (status 200, or a file:// URL) is read from the start.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the partial file is already complete
            os.replace(partial, destination)
            return destination
        raise DatasetError(f"{url}: download failed (HTTP {error.code}); retry, or place the file at "
                           f"{destination} yourself") from None
    except (urllib.error.URLError, OSError) as error:
        raise DatasetError(f"{url}: download failed ({error}); retry, or place the file at "
                           f"{destination} yourself") from None
    with response:
        resumed = have and getattr(response, "status", None) == 206
        length = response.headers.get("Content-Length")
        total = (int(length) + (have if resumed else 0)) if length else None
        try:
            with open(partial, "ab" if resumed else "wb") as handle, progress_bar(progress) as bar:
                task = bar.add_task(f"download {destination.name}", total=total, status="",
                                    completed=have if resumed else 0) if bar else None
                while chunk := response.read(chunk_size):
                    handle.write(chunk)
                    if bar:
                        bar.advance(task, len(chunk))
        except OSError as error:  # connection reset mid-file: the .part stays for the next try
            raise DatasetError(f"{url}: download interrupted ({error}); run the same command again to resume") from None
    os.replace(partial, destination)
    return destination
