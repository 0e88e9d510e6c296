"""WMT English-German: download, verification, extraction and the prepared text layout.

Both translation benchmarks read the same kind of sources (tar.gz archives of parallel text from
statmt.org, plus single text files), each with its own list (`translation/<model>/dataset.py`:
WMT17 for the Transformer, WMT16 for GNMT). This module fetches them (resumable, with progress),
verifies what has a published checksum (`harness.datasets.verify_file`; the primary source of each
value is named where it is declared), reads archives to the end (a truncated or corrupt archive is
one `DatasetError` line naming it), checks that the two sides of a corpus have the same number of
lines, and writes the text files of the prepared layout:

    train.en  train.de     the training corpora concatenated (one sentence per line, UTF-8)
    dev.en    dev.de       the development set (newstest2013 for both benchmarks)
    test.en   test.de      the BLEU set (newstest2014): the source and the raw reference file

Encoded ids, the vocabulary and meta.json are the model's business (its dataset.py), and
`harness.datasets.write_manifest` seals the folder.
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from harness.datasets import verify_file
from harness.download import download
from harness.errors import DatasetError
from harness.progress import info

LANGUAGES = ("en", "de")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """One parallel corpus: its English and German files, found by file name inside `archive`
    (anywhere in the tree, as the reference's `find_file`), or plain files downloaded as they are."""

    name: str  # e.g. news-commentary-v12
    url: str  # the archive, or the English file when `plain`
    english: str  # file name of the English side (inside the archive)
    german: str
    archive_md5: str | None = None  # published checksum of the archive (None where nobody publishes one)
    plain: bool = False  # two plain text files: url is the English one, german_url the German one
    german_url: str = ""
    english_md5: str | None = None  # published checksums of plain files
    german_md5: str | None = None

    @property
    def archive_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def fetch(url: str, destination: Path, md5: str | None, progress: bool) -> Path:
    """`destination`, downloaded (resuming a partial file) unless present; checked against `md5` if published."""
    if not destination.is_file():
        info(f"downloading {url} to {destination}")
        download(url, destination, progress=progress)
    if md5:
        verify_file(destination, md5, "md5")
    return destination


def _extract(archive: Path, wanted: dict[str, Path]) -> None:
    """Stream through the whole archive (every member is read, so truncation anywhere is found) and
    write the members whose base name is in `wanted` to their paths (atomically, via .partial)."""
    found: set[str] = set()
    try:
        with tarfile.open(archive, mode="r|gz") as stream:
            for member in stream:
                name = os.path.basename(member.name)
                source = stream.extractfile(member) if member.isfile() else None
                if source is None:
                    continue
                if name in wanted and name not in found:
                    target = wanted[name]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    partial = target.with_name(target.name + ".partial")
                    with open(partial, "wb") as handle:
                        while chunk := source.read(1 << 22):
                            handle.write(chunk)
                    os.replace(partial, target)
                    found.add(name)
                else:
                    while source.read(1 << 22):  # read through: a corrupt member fails here, not later
                        pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DatasetError(f"{archive}: corrupt or truncated archive ({error or type(error).__name__}); "
                           "delete it and download it again") from None
    missing = sorted(set(wanted) - found)
    if missing:
        raise DatasetError(f"{archive}: has no {missing[0]}; is it the right archive?")


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 22), b""))


def fetch_corpus(corpus: Corpus, source_dir: str | os.PathLike, *, progress: bool = True) -> tuple[Path, Path]:
    """(English file, German file) of `corpus` under `source_dir`, fetched, verified and extracted
    once (a rerun skips what is done: resumable), with equal line counts."""
    source_dir = Path(source_dir)
    english, german = source_dir / "extracted" / corpus.english, source_dir / "extracted" / corpus.german
    if corpus.plain:
        fetch(corpus.url, english, corpus.english_md5, progress)
        fetch(corpus.german_url, german, corpus.german_md5, progress)
    elif not (english.is_file() and german.is_file()):
        archive = fetch(corpus.url, source_dir / corpus.archive_name, corpus.archive_md5, progress)
        info(f"extracting {corpus.english} and {corpus.german} from {archive}")
        _extract(archive, {corpus.english: english, corpus.german: german})
    lines = count_lines(english), count_lines(german)
    if lines[0] != lines[1] or lines[0] == 0:
        raise DatasetError(f"{english}: {lines[0]} lines but {german} has {lines[1]}: the corpus {corpus.name} "
                           "is damaged; delete both and prepare again")
    return english, german


def read_lines(path: str | os.PathLike) -> list[str]:
    """Lines without their line ends (the reference reads text files line by line, stripped)."""
    try:
        with open(path, encoding="utf-8", newline="\n") as handle:
            return [line.rstrip("\r\n") for line in handle]
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; prepare the dataset (`invoke data BENCH` or --tiny)") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: unreadable text ({error})") from None


def write_lines(path: str | os.PathLike, lines: Iterable[str]) -> Path:
    """One sentence per line, UTF-8 with '\\n' line ends; written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(line + "\n")
    os.replace(partial, path)
    return path


def concatenate(pairs: Iterable[tuple[Path, Path]], skip_empty: bool = True) -> Iterator[tuple[str, str]]:
    """The (English, German) lines of several corpora in order; pairs with an empty side are dropped
    (the reference's compile_files writes every line, and its tokenizer drops empty examples)."""
    for english, german in pairs:
        for en, de in zip(read_lines(english), read_lines(german), strict=True):
            en, de = en.strip(), de.strip()
            if skip_empty and (not en or not de):
                continue
            yield en, de


def split_files(data_dir: str | os.PathLike, split: str) -> tuple[Path, Path]:
    """(English file, German file) of a split (train, dev, test) in the prepared layout."""
    data_dir = Path(data_dir)
    return data_dir / f"{split}.en", data_dir / f"{split}.de"


def write_split(data_dir: str | os.PathLike, split: str, pairs: Iterable[tuple[str, str]]) -> int:
    """Write a split's two text files; returns the number of pairs."""
    pairs = list(pairs)
    english, german = split_files(data_dir, split)
    write_lines(english, (en for en, _ in pairs))
    write_lines(german, (de for _, de in pairs))
    return len(pairs)


def read_split(data_dir: str | os.PathLike, split: str) -> tuple[list[str], list[str]]:
    """(English lines, German lines) of a prepared split; DatasetError if missing or unequal."""
    english_file, german_file = split_files(data_dir, split)
    english, german = read_lines(english_file), read_lines(german_file)
    if len(english) != len(german):
        raise DatasetError(f"{english_file}: {len(english)} lines but {german_file} has {len(german)}")
    return english, german
