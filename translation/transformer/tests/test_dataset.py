"""WMT17 preparation on small archives in the real on-disk format, tiny data, one-line errors."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile

import pytest

from harness.benchmarks import REPO_ROOT
from harness.errors import DatasetError
from translation import wmt
from translation.transformer import dataset

ENGLISH = ["The house is old.", "He failed to turn up.", "", "Be careful, the bag is heavy.", "Life is hectic."] * 8
GERMAN = ["Das Haus ist alt.", "Er erschien nicht.", "Leer", "Pass auf, die Tasche ist schwer.", "Das Leben ist hektisch."] * 8


def tgz(path, members: dict[str, list[str]]):
    with tarfile.open(path, "w:gz") as archive:
        for name, lines in members.items():
            data = "".join(line + "\n" for line in lines).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """Archives laid out as statmt.org's (members in sub-folders, as training-parallel-*.tgz) served
    from file:// URLs, and the plain newstest2014 files with their MD5s."""
    web = tmp_path / "web"
    web.mkdir()
    corpora = []
    for corpus in dataset.TRAIN_CORPORA:
        tgz(web / corpus.archive_name, {f"training/{corpus.english}": ENGLISH, f"training/{corpus.german}": GERMAN,
                                        "training/README": ["other files are read through"]})
        corpora.append(wmt.Corpus(corpus.name, (web / corpus.archive_name).as_uri(), corpus.english, corpus.german))
    tgz(web / "dev.tgz", {"dev/newstest2013.en": ENGLISH[:5], "dev/newstest2013.de": GERMAN[:5]})
    (web / "newstest2014.en").write_text("".join(s + "\n" for s in ENGLISH[:4]), encoding="utf-8")
    (web / "newstest2014.de").write_text("".join(s + "\n" for s in GERMAN[:4]), encoding="utf-8")

    def md5(path):
        return hashlib.md5(path.read_bytes()).hexdigest()

    monkeypatch.setattr(dataset, "TRAIN_CORPORA", tuple(corpora))
    monkeypatch.setattr(dataset, "DEV_CORPUS", wmt.Corpus("newstest2013", (web / "dev.tgz").as_uri(),
                                                          "newstest2013.en", "newstest2013.de"))
    monkeypatch.setattr(dataset, "TEST_CORPUS", wmt.Corpus(
        "newstest2014", (web / "newstest2014.en").as_uri(), "newstest2014.en", "newstest2014.de", plain=True,
        german_url=(web / "newstest2014.de").as_uri(), english_md5=md5(web / "newstest2014.en"),
        german_md5=md5(web / "newstest2014.de")))
    monkeypatch.setattr(dataset, "VOCAB_SIZE", 320)  # 256 byte pieces + merges
    return web


def test_prepare_downloads_verifies_and_writes_the_layout(sources, tmp_path):
    data = dataset.prepare(tmp_path / "downloads", tmp_path / "full", progress=False)
    meta = json.loads((data / "meta.json").read_text())
    assert meta["train_pairs"] == 3 * 32  # the pairs with an empty side are dropped (3 corpora x 40 - 8)
    assert meta["test_pairs"] == 4 and meta["vocab_size"] == 320
    manifest = json.loads((data / "MANIFEST.json").read_text())["files"]
    assert {"vocab.spm.model", "train.en.ids.npy", "test.de", "meta.json"} <= set(manifest)
    assert (data / "test.de").read_text(encoding="utf-8").splitlines() == GERMAN[:4]  # the raw reference
    prepared = dataset.load_prepared(data, "full")
    assert prepared.vocabulary.decode([prepared.train_target.sequence(0)]) == ["Das Haus ist alt."]
    again = dataset.prepare(tmp_path / "downloads", tmp_path / "again", progress=False)  # nothing downloaded twice
    assert json.loads((again / "MANIFEST.json").read_text()) == json.loads((data / "MANIFEST.json").read_text())


def test_truncated_archive_is_one_line(sources, tmp_path):
    victim = sources / dataset.TRAIN_CORPORA[1].archive_name
    victim.write_bytes(victim.read_bytes()[:-200])
    with pytest.raises(DatasetError, match="corrupt or truncated archive") as error:
        dataset.prepare(tmp_path / "downloads", tmp_path / "full", progress=False)
    assert str(error.value).startswith(str(tmp_path / "downloads" / victim.name)) and "\n" not in str(error.value)


def test_wrong_checksum_and_unequal_sides_are_one_line(sources, tmp_path):
    (sources / "newstest2014.de").write_text("tampered\n")
    with pytest.raises(DatasetError, match="md5 checksum mismatch"):
        dataset.prepare(tmp_path / "downloads", tmp_path / "full", progress=False)
    tgz(sources / dataset.TRAIN_CORPORA[0].archive_name.split("/")[-1],
        {f"x/{dataset.TRAIN_CORPORA[0].english}": ENGLISH, f"x/{dataset.TRAIN_CORPORA[0].german}": GERMAN[:-1]})
    with pytest.raises(DatasetError, match="40 lines but .* has 39"):
        dataset.prepare(tmp_path / "downloads2", tmp_path / "full2", progress=False)


def test_tiny_data_is_deterministic_and_loads(tmp_path):
    first = dataset.make_tiny(tmp_path / "a", seed=0)
    second = dataset.make_tiny(tmp_path / "b", seed=0)
    assert (first / "MANIFEST.json").read_text() == (second / "MANIFEST.json").read_text()
    prepared = dataset.load_prepared(first, "full")
    assert len(prepared.test_references) == 500 and len(prepared.test_source) == 500
    assert prepared.vocab_size == dataset.TINY_VOCAB_SIZE
    (first / "train.de.ids.npy").write_bytes((first / "train.de.ids.npy").read_bytes()[:-8])
    with pytest.raises(DatasetError, match="train.de.ids.npy: size"):
        dataset.load_prepared(first, "full")


def test_missing_archive_content_through_the_command_line(tmp_path):
    """`python -m harness data transformer --source DIR` with a truncated download: one line, exit 2."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    archive = tgz(tmp_path / "whole.tgz", {"training/news-commentary-v12.de-en.en": ENGLISH})
    (downloads / "training-parallel-nc-v12.tgz").write_bytes(archive.read_bytes()[:100])
    completed = subprocess.run([sys.executable, "-m", "harness", "data", "transformer", "--source", str(downloads),
                                "--data-dir", str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True,
                               check=False)
    assert completed.returncode == 2
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "training-parallel-nc-v12.tgz: corrupt or truncated archive" in last
