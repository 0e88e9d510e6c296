"""WMT16 English-German for GNMT: download, verify, preprocess as the reference, tiny data; both frameworks.

Sources and steps are the MLPerf GNMT reference's (mlcommons/training rnn_translator/
download_dataset.sh, verify_dataset.sh, pytorch/scripts/filter_dataset.py), each step through the
translation toolkit:

1. training text = Europarl v7 + Common Crawl + News Commentary v11 (de-en), concatenated in that
   order; newstest2014 (BLEU set) from WMT16 `dev.tgz`, newstest2015 from `dev.tgz` and newstest2016
   from `test.tgz` (the development set), their SGM files converted to text (translation/moses.py);
2. Moses tokenization of every file (`-l en` / `-l de`);
3. clean-corpus-n 1-80 on the training and development pairs (not on newstest2014);
4. pairs that a side of cannot be encoded in Latin-1 are dropped (filter_dataset.py; training
   and development sets);
5. one BPE of 32,000 merges learned on the cleaned German then English training text, applied to
   every tokenized file (translation/bpe.py, subword-nmt);
6. the vocabulary: every BPE token of the training text, most frequent first.

The prepared folder holds the reference's files under the reference's names (so
verify_dataset.sh's MD5s can be compared: `REFERENCE_MD5`) plus the training pairs encoded as
[BOS] + ids + [EOS] in NumPy (translation/batching.Encoded), meta.json and MANIFEST.json:

    train.tok.clean.bpe.32000.en  .de      BPE training text
    newstest_dev.tok.clean.bpe.32000.en .de  development set (newstest2015 + newstest2016)
    newstest2014.tok.bpe.32000.en .de      BPE test set: the source the model translates
    newstest2014.en  newstest2014.de       raw test set: newstest2014.de is what BLEU compares against
    bpe.32000  vocab.bpe.32000             BPE codes, vocabulary
    train.en.ids.npy .offsets.npy  train.de.ids.npy .offsets.npy

Pairs longer than `max_length` tokens (with BOS and EOS) are discarded at training time
(reference LazyParallelDataset, max 50), logged as max_sequence_length with method discard.

Tiny data (`make_tiny`): the real English-German pairs of translation/tiny_corpus.py (gettext
catalogs, trans-de-en) split into train / dev / test, through steps 2-6 above with a smaller BPE,
into the same layout (the test pairs stand in for newstest2014, the dev pairs for newstest_dev).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from harness.datasets import file_digest, verify_manifest, write_manifest
from harness.errors import ConfigError, DatasetError
from harness.progress import info
from translation import moses, tiny_corpus, wmt
from translation.batching import Encoded, keep_within
from translation.bpe import BpeVocabulary, Segmenter, learn_codes, vocabulary_tokens

FORMAT_VERSION = 1
META_FILE = "meta.json"
MERGES = 32000  # download_dataset.sh `for merge_ops in 32000`
TINY_MERGES = 2000
LATIN1 = "latin1"

STATMT = "http://www.statmt.org/"
WMT16 = "http://data.statmt.org/wmt16/translation-task/"
# download_dataset.sh's URLs, in its concatenation order. statmt.org publishes no checksums for
# them: archives are read to the end and every corpus must have equal line counts (translation/wmt.py).
TRAIN_CORPORA = (
    wmt.Corpus("europarl-v7", STATMT + "europarl/v7/de-en.tgz", "europarl-v7.de-en.en", "europarl-v7.de-en.de"),
    wmt.Corpus("commoncrawl", STATMT + "wmt13/training-parallel-commoncrawl.tgz",
               "commoncrawl.de-en.en", "commoncrawl.de-en.de"),
    wmt.Corpus("news-commentary-v11", WMT16 + "training-parallel-nc-v11.tgz",
               "news-commentary-v11.de-en.en", "news-commentary-v11.de-en.de"),
)
# the SGM pairs (English reference file, German source file) of the de-en direction, as the script converts them
TEST_SGM = wmt.Corpus("newstest2014", WMT16 + "dev.tgz", "newstest2014-deen-ref.en.sgm", "newstest2014-deen-src.de.sgm")
DEV_SGM = (
    wmt.Corpus("newstest2015", WMT16 + "dev.tgz", "newstest2015-deen-ref.en.sgm", "newstest2015-deen-src.de.sgm"),
    wmt.Corpus("newstest2016", WMT16 + "test.tgz", "newstest2016-deen-ref.en.sgm", "newstest2016-deen-src.de.sgm"),
)

# mlcommons/training rnn_translator/verify_dataset.sh: MD5s of the reference's processed files.
# newstest2014.de (the BLEU reference) must match; the BPE files depend on tokenizer and BPE code
# versions (sacremoses and subword-nmt here, tokenizer.perl 8c5eaa1a and subword-nmt 48ba99e6
# there), so their match is recorded in meta.json and reported, not required.
BLEU_REFERENCE_MD5 = {"newstest2014.de": "f6c3818b477e4a25cad68b61cc883c17"}
REFERENCE_MD5 = {
    "train.tok.clean.bpe.32000.en": "b7482095b787264a310d4933d197a134",
    "train.tok.clean.bpe.32000.de": "409064aedaef5b7c458ff19a7beda462",
    "newstest_dev.tok.clean.bpe.32000.en": "704c4ba8c8b63df1f6678d32b91438b5",
    "newstest_dev.tok.clean.bpe.32000.de": "d27f5a64c839e20c5caa8b9d60075dde",
    "newstest2014.tok.bpe.32000.en": "cb014e2509f86cd81d5a87c240c07464",
    "newstest2014.tok.bpe.32000.de": "d616740f6026dc493e66efdf9ac1cb04",
    **BLEU_REFERENCE_MD5,
}


@dataclasses.dataclass(frozen=True)
class Layout:
    """The prepared folder's file names for a BPE of `merges` merge operations."""

    data_dir: Path
    merges: int

    def bpe(self, stem: str, language: str) -> Path:
        return self.data_dir / f"{stem}.bpe.{self.merges}.{language}"

    @property
    def train(self) -> tuple[Path, Path]:
        return self.bpe("train.tok.clean", "en"), self.bpe("train.tok.clean", "de")

    @property
    def dev(self) -> tuple[Path, Path]:
        return self.bpe("newstest_dev.tok.clean", "en"), self.bpe("newstest_dev.tok.clean", "de")

    @property
    def test(self) -> tuple[Path, Path]:
        return self.bpe("newstest2014.tok", "en"), self.bpe("newstest2014.tok", "de")

    @property
    def test_raw(self) -> tuple[Path, Path]:
        return self.data_dir / "newstest2014.en", self.data_dir / "newstest2014.de"

    @property
    def codes(self) -> Path:
        return self.data_dir / f"bpe.{self.merges}"

    @property
    def vocabulary(self) -> Path:
        return self.data_dir / f"vocab.bpe.{self.merges}"

    def encoded(self, language: str) -> tuple[Path, Path]:
        return self.data_dir / f"train.{language}.ids.npy", self.data_dir / f"train.{language}.offsets.npy"


# -- the reference's preprocessing -------------------------------------------------------------
def _tokenize_chunk(arguments: tuple[list[str], str]) -> list[str]:
    lines, language = arguments
    return [moses.tokenize(line, language) for line in lines]


def tokenize(lines: Sequence[str], language: str, processes: int = 1, chunk: int = 2000) -> list[str]:
    """tokenizer.perl -l LANGUAGE over many lines, in order (worker processes for the full data)."""
    if processes <= 1 or len(lines) <= chunk:
        return _tokenize_chunk((list(lines), language))
    chunks = [(list(lines[start:start + chunk]), language) for start in range(0, len(lines), chunk)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return [line for part in pool.imap(_tokenize_chunk, chunks) for line in part]


def latin1_filter(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """filter_dataset.py: keep the pairs whose both sides encode in Latin-1."""
    kept = []
    for english, german in pairs:
        try:
            english.encode(LATIN1)
            german.encode(LATIN1)
        except UnicodeEncodeError:
            continue
        kept.append((english, german))
    return kept


def clean(english: Sequence[str], german: Sequence[str]) -> list[tuple[str, str]]:
    """clean-corpus-n.perl CORPUS de en CLEAN 1 80 (German first, as the script is called), then the
    Latin-1 filter: the kept (English, German) pairs."""
    kept = [(en, de) for de, en in moses.clean_corpus(zip(german, english, strict=True))]
    return latin1_filter(kept)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def preprocess(data_dir: str | os.PathLike, train: tuple[list[str], list[str]], dev_parts: list[tuple[list[str], list[str]]],
               test: tuple[list[str], list[str]], merges: int, *, processes: int = 1, meta: dict) -> dict:
    """Steps 2-6 of the module doc from raw (English, German) lines into `data_dir`; returns meta."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    layout = Layout(data_dir, merges)
    info(f"tokenizing {len(train[0]):,} training pairs (Moses, sacremoses)")
    train_pairs = clean(tokenize(train[0], "en", processes), tokenize(train[1], "de", processes))
    dev_pairs = [pair for english, german in dev_parts
                 for pair in clean(tokenize(english, "en", processes), tokenize(german, "de", processes))]
    test_tok = tokenize(test[0], "en", processes), tokenize(test[1], "de", processes)
    if not train_pairs:
        raise DatasetError(f"{data_dir}: no training pair is left after cleaning")

    info(f"learning a BPE of {merges:,} merges on {len(train_pairs):,} cleaned pairs (subword-nmt)")
    learn_codes([*(de for _, de in train_pairs), *(en for en, _ in train_pairs)], layout.codes, merges)
    segmenter = Segmenter(layout.codes)
    train_bpe = [list(segmenter.segment_lines(en for en, _ in train_pairs)),
                 list(segmenter.segment_lines(de for _, de in train_pairs))]
    dev_bpe = [list(segmenter.segment_lines(en for en, _ in dev_pairs)),
               list(segmenter.segment_lines(de for _, de in dev_pairs))]
    test_bpe = [list(segmenter.segment_lines(lines)) for lines in test_tok]
    for paths, sides in ((layout.train, train_bpe), (layout.dev, dev_bpe), (layout.test, test_bpe)):
        for path, lines in zip(paths, sides):
            wmt.write_lines(path, lines)
    for path, lines in zip(layout.test_raw, test):
        wmt.write_lines(path, lines)
    wmt.write_lines(layout.vocabulary, vocabulary_tokens([*train_bpe[0], *train_bpe[1]]))

    vocabulary = BpeVocabulary(layout.vocabulary)
    for language, lines in (("en", train_bpe[0]), ("de", train_bpe[1])):
        encoded = Encoded.from_sequences(vocabulary.encode(lines))
        ids_file, offsets_file = layout.encoded(language)
        np.save(ids_file, encoded.tokens)
        np.save(offsets_file, encoded.offsets)
    meta = {"format": FORMAT_VERSION, "bpe_merges": merges, "vocab_size": vocabulary.size,
            "train_pairs": len(train_pairs), "dev_pairs": len(dev_pairs), "test_pairs": len(test[0]), **meta}
    (data_dir / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    write_manifest(data_dir)
    return meta


def compare_with_reference(data_dir: Path, merges: int = MERGES) -> dict[str, bool]:
    """MD5 of each file verify_dataset.sh checks against its published value: {file: matches}.
    The BLEU reference newstest2014.de must match (DatasetError), the others are reported."""
    matches = {}
    for name, expected in REFERENCE_MD5.items():
        actual = md5(data_dir / name.replace(".32000.", f".{merges}."))
        matches[name] = actual == expected
        if name in BLEU_REFERENCE_MD5 and not matches[name]:
            raise DatasetError(f"{data_dir / name}: md5 {actual}, the reference's verify_dataset.sh publishes {expected}: "
                               "this BLEU reference is not the benchmark's; delete the downloads and prepare again")
        info(f"{name}: {'matches' if matches[name] else 'differs from'} the reference's md5 (verify_dataset.sh)")
    return matches


def _sgm_pair(corpus: wmt.Corpus, source_dir: Path, progress: bool) -> tuple[list[str], list[str]]:
    english_sgm, german_sgm = wmt.fetch_corpus(corpus, source_dir, progress=progress)
    english, german = moses.input_from_sgm(english_sgm.read_bytes()), moses.input_from_sgm(german_sgm.read_bytes())
    if len(english) != len(german) or not english:
        raise DatasetError(f"{english_sgm}: {len(english)} segments but {german_sgm} has {len(german)}: "
                           f"the {corpus.name} files are damaged; delete them and prepare again")
    return english, german


def prepare(source_dir: str | os.PathLike | None, data_dir: str | os.PathLike, seed: int = 0,
            *, progress: bool = True, processes: int | None = None) -> Path:
    """The full dataset: fetch the WMT16 sources (into `source_dir`, default `<data_dir>/../downloads`;
    a rerun resumes), preprocess as the reference, compare with its MD5s, encode."""
    data_dir = Path(data_dir)
    source = Path(source_dir) if source_dir else data_dir.parent / "downloads"
    train_files = [wmt.fetch_corpus(corpus, source, progress=progress) for corpus in TRAIN_CORPORA]
    test = _sgm_pair(TEST_SGM, source, progress)
    dev = [_sgm_pair(corpus, source, progress) for corpus in DEV_SGM]
    english, german = [], []
    for english_file, german_file in train_files:  # cat, as the script (empty lines go in clean-corpus)
        english.extend(wmt.read_lines(english_file))
        german.extend(wmt.read_lines(german_file))
    archives = {corpus.archive_name: file_digest(source / corpus.archive_name)
                for corpus in (*TRAIN_CORPORA, TEST_SGM, DEV_SGM[1])}
    processes = processes or max(1, (os.cpu_count() or 1))
    preprocess(data_dir, (english, german), dev, test, MERGES, processes=processes,
               meta={"source": "wmt16", "seed": seed, "archives_sha256": archives})
    matches = compare_with_reference(data_dir, MERGES)
    meta = json.loads((data_dir / META_FILE).read_text())
    meta["reference_md5_match"] = matches
    (data_dir / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    write_manifest(data_dir)
    info(f"{meta['train_pairs']:,} training pairs, vocabulary of {meta['vocab_size']:,}; wrote {data_dir}")
    return data_dir


def make_tiny(data_dir: str | os.PathLike, seed: int = 0, *, merges: int = TINY_MERGES, train_pairs: int | None = None) -> Path:
    """Tiny data in the prepared layout from the real English-German pairs of this machine
    (translation/tiny_corpus.py): 500 test pairs, 300 dev pairs, the rest (or `train_pairs` of them:
    the tests' smaller set) for training."""
    data_dir = Path(data_dir)
    pairs = tiny_corpus.collect_pairs()
    splits = tiny_corpus.split_pairs(pairs, seed, train=train_pairs)

    def sides(subset):
        return [pair.english for pair in subset], [pair.german for pair in subset]

    preprocess(data_dir, sides(splits.train), [sides(splits.dev)], sides(splits.test), merges,
               meta={"source": "tiny", "seed": seed, "splits": splits.counts(),
                     "pairs_sha256": tiny_corpus.pairs_digest(pairs)})
    return data_dir


# -- loading ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Prepared:
    """A prepared dataset loaded for training (the same arrays in both frameworks)."""

    vocabulary: BpeVocabulary
    train_source: Encoded  # [BOS] + ids + [EOS]
    train_target: Encoded
    train_indices: np.ndarray  # the pairs within max_length (the others are discarded)
    test_source: Encoded  # newstest2014.tok.bpe.en encoded
    test_references: list[str]  # newstest2014.de, raw: what BLEU compares against

    @property
    def vocab_size(self) -> int:
        return self.vocabulary.size


def _load_encoded(layout: Layout, language: str) -> Encoded:
    ids_file, offsets_file = layout.encoded(language)
    try:
        tokens, offsets = np.load(ids_file, allow_pickle=False), np.load(offsets_file, allow_pickle=False)
    except FileNotFoundError as error:
        raise DatasetError(f"{error.filename}: missing; prepare the dataset with `invoke data gnmt` (or --tiny)") from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{ids_file}: unreadable ({error}); prepare the dataset again") from None
    if tokens.ndim != 1 or offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != tokens.size or np.any(np.diff(offsets) <= 0):
        raise DatasetError(f"{ids_file}: token ids and {offsets_file.name} do not fit together")
    return Encoded(tokens.astype(np.int32, copy=False), offsets.astype(np.int64, copy=False))


def load_prepared(data_dir: str | os.PathLike, verify: str = "off", max_length: int = 50) -> Prepared:
    """Load (optionally verify against MANIFEST.json first) the prepared dataset; DatasetError if bad."""
    data_dir = Path(data_dir)
    verify_manifest(data_dir, verify)
    try:
        meta = json.loads((data_dir / META_FILE).read_text())
        merges, vocab_size = int(meta["bpe_merges"]), int(meta["vocab_size"])
    except FileNotFoundError:
        raise DatasetError(f"{data_dir / META_FILE}: missing; prepare the dataset with `invoke data gnmt` (or --tiny)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{data_dir / META_FILE}: unreadable ({error})") from None
    layout = Layout(data_dir, merges)
    vocabulary = BpeVocabulary(layout.vocabulary)
    if vocabulary.size != vocab_size:
        raise DatasetError(f"{layout.vocabulary}: {vocabulary.size} tokens with the 4 special ones, {META_FILE} says {vocab_size}")
    source, target = _load_encoded(layout, "en"), _load_encoded(layout, "de")
    if len(source) != len(target):
        raise DatasetError(f"{data_dir}: {len(source)} encoded English sentences but {len(target)} German")
    for language, encoded in (("en", source), ("de", target)):
        if encoded.tokens.size and (encoded.tokens.min() < 0 or encoded.tokens.max() >= vocab_size):
            raise DatasetError(f"{layout.encoded(language)[0]}: token ids outside 0..{vocab_size - 1}")
    test_source = wmt.read_lines(layout.test[0])
    references = wmt.read_lines(layout.test_raw[1])
    if len(test_source) != len(references) or not references:
        raise DatasetError(f"{layout.test[0]}: {len(test_source)} lines but {layout.test_raw[1]} has {len(references)}")
    keep = keep_within(source.lengths, target.lengths, max_length)
    if keep.size == 0:
        raise DatasetError(f"{data_dir}: no training pair has at most {max_length} tokens per side")
    return Prepared(vocabulary, source, target, keep, Encoded.from_sequences(vocabulary.encode(test_source)), references)


def load_for_training(cfg, replicas: int) -> Prepared:
    """The prepared dataset of `cfg.run.data_dir`, verified once (a corrupt file stops the run here,
    in one line) and checked against the config. Both frameworks call it."""
    if replicas < 1:
        raise ConfigError(f"{replicas} replicas")
    return load_prepared(cfg.run.data_dir, cfg.run.verify_data, cfg.data.max_length)


def epoch_batches(prepared: Prepared, cfg, epoch: int, world_size: int = 1) -> list[np.ndarray]:
    """All replicas' batches of `epoch` (translation/batching.sentence_batches: the reference's
    buckets, drawn from (seed, epoch) alone: the same in both frameworks); replica r's are
    `shard_batches(batches, r, world_size)`."""
    from translation.batching import sentence_batches

    return sentence_batches(prepared.train_source.lengths, prepared.train_target.lengths, cfg.data.batch_size_per_replica,
                            cfg.run.seed, epoch, max_length=cfg.data.max_length, world_size=world_size,
                            buckets=cfg.data.buckets, indices=prepared.train_indices)


def steps_per_epoch(prepared: Prepared, cfg, world_size: int = 1) -> int:
    """Optimizer steps per epoch (every epoch the same: whole global batches per bucket)."""
    return len(epoch_batches(prepared, cfg, 1, world_size)) // world_size
