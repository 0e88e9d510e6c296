"""WMT16 preparation on small archives in the real on-disk format (statmt.org's tgz members, WMT SGM
files), the reference's cleaning and BPE, the verify_dataset.sh MD5 of the BLEU reference, tiny
data, one-line errors."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from harness.benchmarks import REPO_ROOT
from harness.errors import DatasetError
from translation import moses, wmt
from translation.bpe import BOS_ID, EOS_ID
from translation.gnmt import dataset

ENGLISH = ["The house is old.", "He failed to turn up.", "", "Be careful, the bag is heavy.", "Life is hectic.",
           " ".join(["word"] * 81), "The café is open.", "Tea costs 3 €."]
GERMAN = ["Das Haus ist alt.", "Er erschien nicht.", "Leer", "Pass auf, die Tasche ist schwer.", "Das Leben ist hektisch.",
          "zu lang", "Das Café ist offen.", "Tee kostet 3 €."]
# kept per corpus: 0, 1, 3, 4, 6 (2: an empty side; 5: 81 words; 7: "€" is not Latin-1)
KEPT = [0, 1, 3, 4, 6]
TEST_EN = ["Gutach: Increased safety for pedestrians", "They are not even 100 metres apart: On Tuesday, the new B 33."]
TEST_DE = ["Gutach: Noch mehr Sicherheit für Fußgänger", "Sie stehen keine 100 Meter voneinander entfernt: Am Dienstag ist die neue B 33."]


def tgz(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def text(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


def sgm(kind: str, setid: str, language: str, segments: list[str]) -> bytes:
    """A WMT SGM file as dev.tgz ships them (one <seg> per line; the first spread over lines)."""
    head = (f'<srcset setid="{setid}" srclang="any">' if kind == "src" else
            f'<refset setid="{setid}" srclang="any" trglang="{language}">')
    body = ['<doc sysid="ref" docid="1012-bbc" genre="news" origlang="en">', "<p>",
            f'<seg id="1">\n{segments[0]}</seg>',
            *(f'<seg id="{n}"> {segment} </seg>' for n, segment in enumerate(segments[1:], start=2)), "</p>", "</doc>"]
    return "\n".join([head, *body, f"</{kind}set>" if kind == "src" else "</refset>", ""]).encode()


@pytest.fixture
def sources(tmp_path, monkeypatch):
    """Archives laid out as statmt.org's (Europarl at the top, News Commentary in a sub-folder, the
    SGM files under dev/ and test/) served from file:// URLs."""
    web = tmp_path / "web"
    web.mkdir()
    layout = {"europarl-v7": "", "commoncrawl": "", "news-commentary-v11": "training-parallel-nc-v11/"}
    corpora = []
    for corpus in dataset.TRAIN_CORPORA:
        folder = layout[corpus.name]
        tgz(web / corpus.archive_name, {folder + corpus.english: text(ENGLISH), folder + corpus.german: text(GERMAN),
                                        folder + "README": b"other files are read through\n"})
        corpora.append(wmt.Corpus(corpus.name, (web / corpus.archive_name).as_uri(), corpus.english, corpus.german))
    tgz(web / "dev.tgz", {"dev/newstest2014-deen-src.de.sgm": sgm("src", "newstest2014", "de", TEST_DE),
                          "dev/newstest2014-deen-ref.en.sgm": sgm("ref", "newstest2014", "en", TEST_EN),
                          "dev/newstest2015-deen-src.de.sgm": sgm("src", "newstest2015", "de", GERMAN[:2]),
                          "dev/newstest2015-deen-ref.en.sgm": sgm("ref", "newstest2015", "en", ENGLISH[:2])})
    tgz(web / "test.tgz", {"test/newstest2016-deen-src.de.sgm": sgm("src", "newstest2016", "de", GERMAN[3:5]),
                           "test/newstest2016-deen-ref.en.sgm": sgm("ref", "newstest2016", "en", ENGLISH[3:5])})

    def sgm_corpus(corpus, archive):
        return wmt.Corpus(corpus.name, (web / archive).as_uri(), corpus.english, corpus.german)

    monkeypatch.setattr(dataset, "TRAIN_CORPORA", tuple(corpora))
    monkeypatch.setattr(dataset, "TEST_SGM", sgm_corpus(dataset.TEST_SGM, "dev.tgz"))
    monkeypatch.setattr(dataset, "DEV_SGM", (sgm_corpus(dataset.DEV_SGM[0], "dev.tgz"), sgm_corpus(dataset.DEV_SGM[1], "test.tgz")))
    monkeypatch.setattr(dataset, "MERGES", 60)
    return web


def expected_bleu_reference_md5() -> str:
    return hashlib.md5(text(TEST_DE)).hexdigest()


def test_prepare_runs_the_references_pipeline(sources, tmp_path, monkeypatch):
    # this miniature's newstest2014.de stands in for the real one (whose md5 the reference publishes)
    monkeypatch.setattr(dataset, "BLEU_REFERENCE_MD5", {"newstest2014.de": expected_bleu_reference_md5()})
    monkeypatch.setattr(dataset, "REFERENCE_MD5", {**dataset.REFERENCE_MD5, "newstest2014.de": expected_bleu_reference_md5()})
    data = dataset.prepare(tmp_path / "downloads", tmp_path / "full", progress=False, processes=1)
    meta = json.loads((data / "meta.json").read_text())
    assert meta["train_pairs"] == 3 * len(KEPT) and meta["dev_pairs"] == 4 and meta["test_pairs"] == 2
    assert meta["reference_md5_match"]["newstest2014.de"] is True
    assert meta["reference_md5_match"]["train.tok.clean.bpe.32000.en"] is False  # other data, other md5
    files = set(json.loads((data / "MANIFEST.json").read_text())["files"])
    assert {"train.tok.clean.bpe.60.en", "newstest_dev.tok.clean.bpe.60.de", "newstest2014.tok.bpe.60.en", "bpe.60",
            "vocab.bpe.60", "newstest2014.de", "train.de.ids.npy"} <= files
    # the raw BLEU reference is the SGM text; the model's test input is tokenized and BPE-segmented
    assert (data / "newstest2014.de").read_text(encoding="utf-8") == text(TEST_DE).decode()
    segmented = (data / "newstest2014.tok.bpe.60.en").read_text(encoding="utf-8").splitlines()
    assert [line.replace("@@ ", "") for line in segmented] == [moses.tokenize(line, "en") for line in TEST_EN]
    # training text: Europarl, Common Crawl, News Commentary in order, tokenized, cleaned, Latin-1 only
    training = (data / "train.tok.clean.bpe.60.de").read_text(encoding="utf-8").splitlines()
    assert [line.replace("@@ ", "") for line in training] == [moses.tokenize(GERMAN[i], "de") for i in KEPT] * 3
    prepared = dataset.load_prepared(data, "full")
    first = prepared.train_target.sequence(0)
    assert first[0] == BOS_ID and first[-1] == EOS_ID
    assert prepared.vocabulary.decode([first[1:]]) == ["Das Haus ist alt."]
    assert prepared.test_references == TEST_DE and len(prepared.test_source) == 2


def test_a_bleu_reference_other_than_the_benchmarks_stops_preparation(sources, tmp_path):
    with pytest.raises(DatasetError, match="newstest2014.de: md5 .*verify_dataset.sh publishes f6c3818b477e4a25cad68b61cc883c17") as error:
        dataset.prepare(tmp_path / "downloads", tmp_path / "full", progress=False, processes=1)
    assert "\n" not in str(error.value)


def test_sgm_pairs_that_do_not_align_are_one_line(sources, tmp_path):
    tgz(sources / "test.tgz", {"test/newstest2016-deen-src.de.sgm": sgm("src", "newstest2016", "de", GERMAN[3:5]),
                               "test/newstest2016-deen-ref.en.sgm": sgm("ref", "newstest2016", "en", ENGLISH[3:4]) + b"\n"})
    with pytest.raises(DatasetError, match="ref.en.sgm: 1 segments but .*src.de.sgm has 2"):
        dataset.prepare(tmp_path / "downloads", tmp_path / "full", progress=False, processes=1)


def test_tiny_data_is_deterministic_in_the_reference_layout(tiny_data, tmp_path):
    again = dataset.make_tiny(tmp_path / "again", seed=0)
    assert (again / "MANIFEST.json").read_text() == (tiny_data / "MANIFEST.json").read_text()
    meta = json.loads((tiny_data / "meta.json").read_text())
    assert meta["bpe_merges"] == dataset.TINY_MERGES and meta["test_pairs"] == 500
    for name in ("train.tok.clean.bpe.2000.en", "newstest_dev.tok.clean.bpe.2000.de", "newstest2014.tok.bpe.2000.en",
                 "newstest2014.de", "bpe.2000", "vocab.bpe.2000"):
        assert (tiny_data / name).is_file(), name
    prepared = dataset.load_prepared(tiny_data, "full")
    lengths = prepared.train_source.lengths
    assert len(prepared.train_indices) == int(((lengths <= 50) & (prepared.train_target.lengths <= 50)).sum())
    assert np.all(prepared.train_source.tokens[prepared.train_source.offsets[:-1]] == BOS_ID)
    # the Latin-1 filter ran on the training text (the test set keeps everything, as newstest2014)
    assert all(line.encode("latin1") for line in (tiny_data / "train.tok.clean.bpe.2000.de").read_text().splitlines())
    assert meta["train_pairs"] < meta["splits"]["train"]["pairs"]


def test_corrupt_prepared_files_are_one_line(tiny_data, tmp_path):
    import shutil

    copy = shutil.copytree(tiny_data, tmp_path / "copy")
    (copy / "train.de.ids.npy").write_bytes((copy / "train.de.ids.npy").read_bytes()[:-8])
    with pytest.raises(DatasetError, match="train.de.ids.npy: size"):
        dataset.load_prepared(copy, "full")
    (copy / "vocab.bpe.2000").unlink()
    with pytest.raises(DatasetError, match="vocab.bpe.2000: vocabulary missing"):
        dataset.load_prepared(copy, "off")


def test_truncated_download_through_the_command_line(tmp_path):
    """`python -m harness data gnmt --source DIR` with a truncated download: one line, exit 2."""
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    archive = tgz(tmp_path / "whole.tgz", {"europarl-v7.de-en.en": text(ENGLISH * 50)})
    (downloads / "de-en.tgz").write_bytes(archive.read_bytes()[:100])
    completed = subprocess.run([sys.executable, "-m", "harness", "data", "gnmt", "--source", str(downloads),
                                "--data-dir", str(tmp_path / "out")], cwd=REPO_ROOT, capture_output=True, text=True,
                               check=False)
    assert completed.returncode == 2
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "de-en.tgz: corrupt or truncated archive" in last
