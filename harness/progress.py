"""Human progress on stderr (rich), on rank 0 only; never mixed into the MLLOG stream."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True, highlight=False)


def _enabled(enabled: bool) -> bool:
    return enabled and int(os.environ.get("RANK", "0")) == 0 and not os.environ.get("MLBENCH_NO_PROGRESS")


def info(message: str) -> None:
    """One line of human output on stderr, rank 0 only."""
    if int(os.environ.get("RANK", "0")) == 0:
        console.print(message)


@contextlib.contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Progress | None]:
    """A rich Progress on stderr with ETA and throughput, or None where disabled / not rank 0."""
    if not _enabled(enabled):
        yield None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}")]
    with Progress(*columns, console=console, transient=not sys.stderr.isatty(),
                  disable=False) as progress:
        yield progress


def track(items: Iterable[T], description: str, total: int | None = None,
          enabled: bool = True) -> Iterator[T]:
    """Iterate with a progress bar on stderr (rank 0), e.g. `for batch in track(loader, "epoch 3")`."""
    if not _enabled(enabled):
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_bar(enabled) as progress:
        task = progress.add_task(description, total=total, status="")
        for item in items:
            yield item
            progress.advance(task)
