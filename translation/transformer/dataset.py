"""WMT17 English-German for the Transformer: download, verify, preprocess, tiny data; both frameworks.

Sources, as the MLPerf reference (mlcommons/training translation/tensorflow/transformer/
data_download.py, `_TRAIN_DATA_SOURCES` / `_EVAL_DATA_SOURCES`, and translation/download_data.sh):
training = News Commentary v12 + Common Crawl + Europarl v7 (de-en), dev = newstest2013, BLEU set
= newstest2014 (the two files the reference downloads from tensorflow/models, with the MD5s of its
verify_dataset.sh). statmt.org publishes no checksums for the training archives: they are read to
the end (a truncated or corrupt archive is named in one line) and both sides of every corpus must
have the same number of lines; their SHA-256 go into meta.json, the prepared files' into
MANIFEST.json.

Preprocessing: the corpora are concatenated in the reference's order (pairs with an empty side
dropped), a shared sentencepiece BPE vocabulary of 32,768 pieces is learned on both sides
(translation/vocabulary.py; the reference's t2t subword vocabulary had 33,708), and every pair is
encoded to ids ending in EOS. Pairs longer than 256 tokens are discarded at training time
(`data.max_length`, logged as max_sequence_length with method discard), as the reference's input
pipeline does.

Prepared layout (`data_dir/`), identical for the full and the tiny data:

    train.en train.de  dev.en dev.de  test.en test.de     text, one sentence per line (translation/wmt.py)
    vocab.spm.model                                        the sentencepiece model
    train.en.ids.npy train.en.offsets.npy                  encoded training source (translation/batching.Encoded)
    train.de.ids.npy train.de.offsets.npy                  encoded training target
    meta.json                                              counts, vocabulary size, sources, seed
    MANIFEST.json                                          sizes and SHA-256 of everything above
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from harness.datasets import file_digest, verify_manifest, write_manifest
from harness.errors import ConfigError, DatasetError
from harness.progress import info
from translation import tiny_corpus, wmt
from translation.batching import Encoded, keep_within
from translation.vocabulary import MODEL_FILE, Vocabulary, train_vocabulary

FORMAT_VERSION = 1
META_FILE = "meta.json"
VOCAB_SIZE = 32768  # reference data_download.py _TARGET_VOCAB_SIZE
TINY_VOCAB_SIZE = 2000
# sentencepiece holds its training sentences in memory: above this many, an evenly spaced subset
# (deterministic) trains the vocabulary; every pair is still encoded and trained on
VOCAB_TRAINING_SENTENCES = 4_000_000

STATMT_WMT17 = "http://data.statmt.org/wmt17/translation-task/"
STATMT_WMT13 = "http://www.statmt.org/wmt13/"
TEST_DATA = "https://raw.githubusercontent.com/tensorflow/models/master/official/transformer/test_data/"

TRAIN_CORPORA = (
    wmt.Corpus("news-commentary-v12", STATMT_WMT17 + "training-parallel-nc-v12.tgz",
               "news-commentary-v12.de-en.en", "news-commentary-v12.de-en.de"),
    wmt.Corpus("commoncrawl", STATMT_WMT13 + "training-parallel-commoncrawl.tgz",
               "commoncrawl.de-en.en", "commoncrawl.de-en.de"),
    wmt.Corpus("europarl-v7", STATMT_WMT13 + "training-parallel-europarl-v7.tgz",
               "europarl-v7.de-en.en", "europarl-v7.de-en.de"),
)
DEV_CORPUS = wmt.Corpus("newstest2013", STATMT_WMT17 + "dev.tgz", "newstest2013.en", "newstest2013.de")
# MD5s: mlcommons/training translation/verify_dataset.sh (the files of translation/download_data.sh)
TEST_CORPUS = wmt.Corpus("newstest2014", TEST_DATA + "newstest2014.en", "newstest2014.en", "newstest2014.de",
                         plain=True, german_url=TEST_DATA + "newstest2014.de",
                         english_md5="dabf51a9c02b2235632f3cee75c72d49",
                         german_md5="f6c3818b477e4a25cad68b61cc883c17")


def _encoded_files(data_dir: Path, language: str) -> tuple[Path, Path]:
    return data_dir / f"train.{language}.ids.npy", data_dir / f"train.{language}.offsets.npy"


def encode_and_write(data_dir: str | os.PathLike, vocabulary_size: int, *, meta: dict) -> dict:
    """From the text files of `data_dir`: learn the vocabulary on the training text, encode the
    training pairs, write meta.json and the manifest. Returns meta."""
    data_dir = Path(data_dir)
    english, german = wmt.read_split(data_dir, "train")
    step = max(1, -(-2 * len(english) // VOCAB_TRAINING_SENTENCES))
    info(f"learning a {vocabulary_size}-piece BPE vocabulary on {2 * len(english[::step]):,} sentences")
    train_vocabulary([*english[::step], *german[::step]], data_dir / MODEL_FILE, vocabulary_size)
    vocabulary = Vocabulary(data_dir / MODEL_FILE)
    counts = {}
    for language, lines in (("en", english), ("de", german)):
        info(f"encoding {len(lines):,} {language} training sentences")
        encoded = Encoded.from_sequences(vocabulary.encode(lines))
        ids_file, offsets_file = _encoded_files(data_dir, language)
        np.save(ids_file, encoded.tokens)
        np.save(offsets_file, encoded.offsets)
        counts[language] = int(encoded.tokens.size)
    dev = len(wmt.read_split(data_dir, "dev")[0])
    test = len(wmt.read_split(data_dir, "test")[0])
    meta = {"format": FORMAT_VERSION, "vocab_size": vocabulary.size, "vocab_file": MODEL_FILE,
            "train_pairs": len(english), "train_tokens": counts, "dev_pairs": dev, "test_pairs": test, **meta}
    (data_dir / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    write_manifest(data_dir)
    return meta


def prepare(source_dir: str | os.PathLike | None, data_dir: str | os.PathLike, seed: int = 0,
            *, progress: bool = True) -> Path:
    """The full dataset: fetch and verify the WMT17 sources (into `source_dir`, default
    `<data_dir>/../downloads`; a rerun resumes), write the text layout, learn the vocabulary, encode."""
    data_dir = Path(data_dir)
    source = Path(source_dir) if source_dir else data_dir.parent / "downloads"
    train_files = [wmt.fetch_corpus(corpus, source, progress=progress) for corpus in TRAIN_CORPORA]
    dev_files = wmt.fetch_corpus(DEV_CORPUS, source, progress=progress)
    test_files = wmt.fetch_corpus(TEST_CORPUS, source, progress=progress)
    info(f"writing the text layout to {data_dir}")
    wmt.write_split(data_dir, "train", wmt.concatenate(train_files))
    wmt.write_split(data_dir, "dev", wmt.concatenate([dev_files], skip_empty=False))
    wmt.write_split(data_dir, "test", wmt.concatenate([test_files], skip_empty=False))
    archives = {corpus.archive_name: file_digest(source / corpus.archive_name) for corpus in (*TRAIN_CORPORA, DEV_CORPUS)}
    meta = encode_and_write(data_dir, VOCAB_SIZE, meta={"source": "wmt17", "seed": seed, "archives_sha256": archives})
    info(f"{meta['train_pairs']:,} training pairs, vocabulary of {meta['vocab_size']:,}; wrote {data_dir}")
    return data_dir


def make_tiny(data_dir: str | os.PathLike, seed: int = 0, *, vocab_size: int = TINY_VOCAB_SIZE, test: int = 500,
              dev: int = 300, train: int | None = None) -> Path:
    """Tiny data in the prepared layout from the real English-German pairs of this machine
    (translation/tiny_corpus.py: gettext catalogs, trans-de-en): 500 test, 300 dev, the rest train
    (fewer for the tests' quick runs)."""
    data_dir = Path(data_dir)
    pairs = tiny_corpus.collect_pairs()
    splits = tiny_corpus.split_pairs(pairs, seed, test=test, dev=dev, train=train)
    for name, subset in (("train", splits.train), ("dev", splits.dev), ("test", splits.test)):
        wmt.write_split(data_dir, name, [(pair.english, pair.german) for pair in subset])
    encode_and_write(data_dir, vocab_size, meta={"source": "tiny", "seed": seed, "splits": splits.counts(),
                                                 "pairs_sha256": tiny_corpus.pairs_digest(pairs)})
    return data_dir


# -- loading ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Prepared:
    """A prepared dataset loaded for training (the same arrays in both frameworks)."""

    vocabulary: Vocabulary
    train_source: Encoded
    train_target: Encoded
    train_indices: np.ndarray  # the pairs within max_length (the others are discarded)
    test_source: Encoded  # newstest2014.en encoded
    test_references: list[str]  # newstest2014.de, raw: what BLEU compares against

    @property
    def vocab_size(self) -> int:
        return self.vocabulary.size


def _load_encoded(data_dir: Path, language: str) -> Encoded:
    ids_file, offsets_file = _encoded_files(data_dir, language)
    try:
        tokens, offsets = np.load(ids_file, allow_pickle=False), np.load(offsets_file, allow_pickle=False)
    except FileNotFoundError as error:
        raise DatasetError(f"{error.filename}: missing; prepare the dataset with `invoke data transformer` (or --tiny)") from None
    except (OSError, ValueError) as error:
        raise DatasetError(f"{ids_file}: unreadable ({error}); prepare the dataset again") from None
    if tokens.ndim != 1 or offsets.ndim != 1 or offsets[0] != 0 or offsets[-1] != tokens.size or np.any(np.diff(offsets) <= 0):
        raise DatasetError(f"{ids_file}: token ids and {offsets_file.name} do not fit together")
    return Encoded(tokens.astype(np.int32, copy=False), offsets.astype(np.int64, copy=False))


def load_prepared(data_dir: str | os.PathLike, verify: str = "off", max_length: int = 256) -> Prepared:
    """Load (optionally verify against MANIFEST.json first) the prepared dataset; DatasetError if bad."""
    data_dir = Path(data_dir)
    verify_manifest(data_dir, verify)
    try:
        meta = json.loads((data_dir / META_FILE).read_text())
        vocab_size = int(meta["vocab_size"])
    except FileNotFoundError:
        raise DatasetError(f"{data_dir / META_FILE}: missing; prepare the dataset with `invoke data transformer` "
                           "(or --tiny)") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{data_dir / META_FILE}: unreadable ({error})") from None
    vocabulary = Vocabulary(data_dir / MODEL_FILE)
    if vocabulary.size != vocab_size:
        raise DatasetError(f"{data_dir / MODEL_FILE}: {vocabulary.size} pieces, {META_FILE} says {vocab_size}")
    source, target = _load_encoded(data_dir, "en"), _load_encoded(data_dir, "de")
    if len(source) != len(target):
        raise DatasetError(f"{data_dir}: {len(source)} encoded English sentences but {len(target)} German")
    for name, encoded in (("en", source), ("de", target)):
        if encoded.tokens.size and (encoded.tokens.min() < 0 or encoded.tokens.max() >= vocab_size):
            raise DatasetError(f"{_encoded_files(data_dir, name)[0]}: token ids outside 0..{vocab_size - 1}")
    test_english, test_german = wmt.read_split(data_dir, "test")
    keep = keep_within(source.lengths, target.lengths, max_length)
    if keep.size == 0:
        raise DatasetError(f"{data_dir}: no training pair has at most {max_length} tokens per side")
    return Prepared(vocabulary, source, target, keep, Encoded.from_sequences(vocabulary.encode(test_english)),
                    test_german)


def load_for_training(cfg, replicas: int) -> Prepared:
    """The prepared dataset of `cfg.run.data_dir`, verified once (a corrupt file stops the run here,
    in one line) and checked against the config. Both frameworks call it."""
    if replicas < 1:
        raise ConfigError(f"{replicas} replicas")
    return load_prepared(cfg.run.data_dir, cfg.run.verify_data, cfg.data.max_length)


def epoch_batches(prepared: Prepared, cfg, epoch: int, rank: int = 0, world_size: int = 1) -> list[np.ndarray]:
    """This replica's batches of `epoch` (translation/batching.py: the reference's length buckets of at
    most `data.max_tokens_per_replica` tokens, drawn from (seed, epoch) alone: the same in both frameworks)."""
    from translation.batching import shard_batches, token_batches

    batches = token_batches(prepared.train_source.lengths, prepared.train_target.lengths,
                            cfg.data.max_tokens_per_replica, cfg.data.max_length, cfg.run.seed, epoch,
                            indices=prepared.train_indices)
    return shard_batches(batches, rank, world_size)
