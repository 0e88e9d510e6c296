"""LibriSpeech (openslr resource 12) for both frameworks: verify, extract, check, manifests, a tiny twin.

`prepare(source_dir, data_dir)` starts from the official archives (https://www.openslr.org/12/, also
what the v0.5 reference's data/librispeech.py downloads; `wget -c` them, README.md "Data"):

    train-clean-100.tar.gz train-clean-360.tar.gz train-other-500.tar.gz   the 960 h the reference trains on
    dev-clean.tar.gz dev-other.tar.gz                                        its validation set (both)
    test-clean.tar.gz test-other.tar.gz                                      optional: prepared when present

verifies each against the MD5 openslr publishes beside the downloads (its md5sum.txt; ARCHIVE_MD5
below), extracts each split into a staging folder renamed into place when complete (an interrupted
run resumes at the first unfinished split; a verified archive is not hashed again), and writes

    <data_dir>/LibriSpeech/<split>/<reader>/<chapter>/<reader>-<chapter>-<utt>.flac   (as in the archive)
    <data_dir>/LibriSpeech/<split>/<reader>/<chapter>/<reader>-<chapter>.trans.txt
    <data_dir>/manifests/<split>.csv    audio,duration_s,transcript: one row per utterance, sorted by duration
    <data_dir>/MANIFEST.json            size and SHA-256 of every file

The reference converted every FLAC to WAV with sox and wrote one transcript file per utterance, then
listed (wav, txt) pairs sorted by `soxi -D` duration (data/utils.py create_manifest, ordered=True);
here the FLAC stays (decoded by soundfile) and the manifest carries the duration and the upper-cased
transcript. Every FLAC is decoded once while the manifests are written: a corrupt file, an audio file
without a transcript line or a transcript line without its audio stops preparation with one line
naming the file.

`make_tiny(data_dir, seed)` writes the same layout from speech synthesized with eSpeak NG (synth.py):
train-clean-100, dev-clean and dev-other, each split with its own voices (speakers never shared between
training and evaluation), plus, where Debian's pocketsphinx-testdata is installed, its five real
LibriVox clips (LibriSpeech's own source) as test-clean.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import shutil
import tarfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.datasets import MANIFEST_NAME, verify_file, write_manifest
from harness.errors import DatasetError
from harness.progress import info, progress_bar
from speech_recognition.audio import read_audio
from speech_recognition.features import SAMPLE_RATE
from speech_recognition.text import normalize_transcript

# openslr.org/12 md5sum.txt (the checksums published with the archives)
ARCHIVE_MD5: Mapping[str, str] = {
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
}
DOWNLOAD_URL = "https://www.openslr.org/resources/12/{split}.tar.gz"
# The reference's LIBRI_SPEECH_URLS "train" and "val" lists: what training and evaluation need.
REQUIRED_SPLITS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other")
OPTIONAL_SPLITS = ("test-clean", "test-other")
CORPUS_DIR = "LibriSpeech"
MANIFEST_DIR = "manifests"
_STATE_DIR = ".prepare"


@dataclass(frozen=True)
class Utterance:
    audio: str  # path of the FLAC file
    duration_s: float
    transcript: str  # upper case, LibriSpeech's form

    @property
    def utterance_id(self) -> str:
        return Path(self.audio).stem


# -- reading a prepared folder (both frameworks) -----------------------------------------------
def manifest_path(data_dir: str | os.PathLike, split: str) -> Path:
    return Path(data_dir) / MANIFEST_DIR / f"{split}.csv"


def load_split(data_dir: str | os.PathLike, split: str) -> list[Utterance]:
    path = manifest_path(data_dir, split)
    if not path.is_file():
        raise DatasetError(f"{path}: missing; prepare the data with `invoke data speech_recognition` (or --tiny), "
                           "or name the splits it has in data.train_splits / data.eval_splits")
    utterances = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                utterances.append(Utterance(str(Path(data_dir) / row["audio"]), float(row["duration_s"]),
                                            row["transcript"]))
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{path}:{line}: malformed manifest row") from None
    if not utterances:
        raise DatasetError(f"{path}: no utterances")
    return utterances


def load_splits(data_dir: str | os.PathLike, splits: Sequence[str]) -> list[Utterance]:
    """The splits' utterances merged and sorted by duration, as the reference's one manifest over its
    train (or val) folder (ties broken by file name, so the order is the same on every machine)."""
    utterances = [u for split in splits for u in load_split(data_dir, split)]
    return sorted(utterances, key=lambda u: (u.duration_s, u.utterance_id))


# -- the manifests (real and tiny data alike) ----------------------------------------------------
def _split_utterances(split_dir: Path) -> list[tuple[Path, str]]:
    """(flac, transcript) of every utterance under a LibriSpeech split folder, checked both ways."""
    pairs = []
    for transcript_file in sorted(split_dir.rglob("*.trans.txt")):
        chapter = transcript_file.parent
        listed = set()
        for number, line in enumerate(transcript_file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            utterance_id, _, text = line.strip().partition(" ")
            text = normalize_transcript(text)
            if not text:
                raise DatasetError(f"{transcript_file}:{number}: utterance {utterance_id} has an empty transcript")
            audio = chapter / f"{utterance_id}.flac"
            if not audio.is_file():
                raise DatasetError(f"{transcript_file}:{number}: transcript line without audio ({audio.name} is missing)")
            listed.add(audio.name)
            pairs.append((audio, text))
        for audio in sorted(chapter.glob("*.flac")):
            if audio.name not in listed:
                raise DatasetError(f"{audio}: audio without a transcript line in {transcript_file.name}")
    stray = sorted(path for path in split_dir.rglob("*.flac") if not any(path.parent.glob("*.trans.txt")))
    if stray:
        raise DatasetError(f"{stray[0]}: audio without a .trans.txt in its folder")
    if not pairs:
        raise DatasetError(f"{split_dir}: no .trans.txt transcripts (not a LibriSpeech split folder)")
    return pairs


def _decoded_duration(path: str) -> float:
    """Decode the whole file (a truncated or corrupt FLAC fails here) and return its length in seconds."""
    return len(read_audio(path)) / SAMPLE_RATE


def write_split_manifest(data_dir: str | os.PathLike, split: str, workers: int = 1,
                         progress: bool = True) -> Path:
    """Decode every utterance of `split` once and write its manifest, sorted by duration."""
    data_dir = Path(data_dir)
    pairs = _split_utterances(data_dir / CORPUS_DIR / split)
    paths = [str(audio) for audio, _ in pairs]
    durations: list[float] = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"decode {split}", total=len(paths), status="") if bar else None
        if workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                for duration in pool.map(_decoded_duration, paths, chunksize=64):
                    durations.append(duration)
                    if bar:
                        bar.advance(task)
        else:
            for path in paths:
                durations.append(_decoded_duration(path))
                if bar:
                    bar.advance(task)
    rows = sorted(((duration, Path(audio).stem, audio.relative_to(data_dir).as_posix(), text)
                   for (audio, text), duration in zip(pairs, durations)))
    target = manifest_path(data_dir, split)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_suffix(".tmp")
    with open(staging, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "duration_s", "transcript"])
        for duration, _, audio, text in rows:
            writer.writerow([audio, f"{duration:.6f}", text])
    os.replace(staging, target)
    return target


# -- the real data -----------------------------------------------------------------------------
def _extract_split(archive: Path, split: str, data_dir: Path, state: Path) -> None:
    """Extract LibriSpeech/<split>/ of an archive into a staging folder, then rename it into place."""
    staging = state / f"{split}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    prefix = f"{CORPUS_DIR}/{split}/"
    try:
        with tarfile.open(archive, "r:gz") as tar, progress_bar() as bar:
            task = bar.add_task(f"extract {split}", total=None, status="") if bar else None
            for member in tar:
                if not member.name.startswith(prefix) or not (member.isfile() or member.isdir()):
                    continue
                tar.extract(member, staging, filter="data")
                if bar:
                    bar.advance(task)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise DatasetError(f"{archive}: cannot be extracted ({error}); download it again") from None
    extracted = staging / CORPUS_DIR / split
    if not extracted.is_dir():
        raise DatasetError(f"{archive}: holds no {prefix} folder (not the openslr {split} archive)")
    final = data_dir / CORPUS_DIR / split
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(extracted, final)
    shutil.rmtree(staging, ignore_errors=True)


def prepare(source_dir: str | os.PathLike | None, data_dir: str | os.PathLike, workers: int | None = None) -> Path:
    """Verify, extract and index the LibriSpeech archives in `source_dir` (see the module docstring)."""
    if source_dir is None:
        urls = " ".join(DOWNLOAD_URL.format(split=split) for split in REQUIRED_SPLITS)
        raise DatasetError(f"LibriSpeech: pass --source DIR holding the openslr archives (wget -c {urls})")
    source, data_dir = Path(source_dir), Path(data_dir)
    missing = [f"{split}.tar.gz" for split in REQUIRED_SPLITS
               if not (source / f"{split}.tar.gz").is_file() and not (data_dir / CORPUS_DIR / split).is_dir()]
    if missing:
        raise DatasetError(f"{source / missing[0]}: missing (download it from {DOWNLOAD_URL.format(split=missing[0][:-7])})"
                           + (f"; also missing: {', '.join(missing[1:])}" if len(missing) > 1 else ""))
    state = data_dir / _STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    splits = [split for split in (*REQUIRED_SPLITS, *OPTIONAL_SPLITS)
              if (source / f"{split}.tar.gz").is_file() or (data_dir / CORPUS_DIR / split).is_dir()]
    for split in splits:
        if (data_dir / CORPUS_DIR / split).is_dir():
            continue  # extracted by an earlier run
        archive = source / f"{split}.tar.gz"
        marker = state / f"{split}.md5-ok"
        if not marker.is_file():
            info(f"verifying {archive} (md5)")
            verify_file(archive, ARCHIVE_MD5[split], "md5")
            marker.write_text(ARCHIVE_MD5[split])
        _extract_split(archive, split, data_dir, state)
    for split in splits:
        write_split_manifest(data_dir, split, workers=workers or os.cpu_count() or 1)
    shutil.rmtree(state, ignore_errors=True)
    return write_manifest(data_dir)


# -- tiny data -------------------------------------------------------------------------------------
# Spoken digit strings, as TIDIGITS (Leonard 1984), the classic first task of a speech recognizer: eleven
# words ("zero" to "nine", and "oh"), three to six to an utterance. A small model learns it from a few
# hundred utterances in minutes, which the smoke test needs, and held-out voices still test hearing.
_DIGITS = ("ZERO", "OH", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")


def tiny_sentence(rng: np.random.Generator) -> str:
    return " ".join(_DIGITS[int(index)] for index in rng.integers(len(_DIGITS), size=int(rng.integers(3, 7))))


@dataclass(frozen=True)
class TinySpeaker:
    reader: int  # LibriSpeech reader id
    voice: str  # eSpeak NG language + variant
    snr_db: tuple[float, float]  # white-noise signal-to-noise range


# Speakers (eSpeak voice variants) never shared between splits: evaluation is on held-out voices.
TINY_SPLITS: Mapping[str, tuple[TinySpeaker, ...]] = {
    "train-clean-100": tuple(TinySpeaker(100 + i, voice, (20.0, 35.0)) for i, voice in enumerate(
        ("en-us+m1", "en-us+m2", "en-us+m3", "en-us+f1", "en-us+f2", "en+m4", "en+f3", "en-gb-scotland+m5",
         "en-us+klatt", "en+m6"))),
    "dev-clean": tuple(TinySpeaker(200 + i, voice, (25.0, 35.0)) for i, voice in enumerate(
        ("en-us+m7", "en-us+f4", "en+m8"))),
    "dev-other": tuple(TinySpeaker(300 + i, voice, (12.0, 18.0)) for i, voice in enumerate(
        ("en-us+f5", "en+klatt2"))),
}
TINY_UTTERANCES_PER_SPEAKER = {"train-clean-100": 24, "dev-clean": 10, "dev-other": 10}
TINY_RATE_WPM = (150, 200)
TINY_PITCH = (35, 65)
POCKETSPHINX_LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def _resample_to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    from math import gcd

    from scipy.signal import resample_poly

    if rate == SAMPLE_RATE:
        return samples
    divisor = gcd(SAMPLE_RATE, rate)
    return resample_poly(samples, SAMPLE_RATE // divisor, rate // divisor).astype(np.float32)


def _write_flac(path: Path, samples: np.ndarray) -> None:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(samples, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="FLAC")


def _synthesize_split(data_dir: Path, split: str, seed: int) -> int:
    from speech_recognition.synth import synthesizer

    synth = synthesizer()
    count = 0
    for speaker in TINY_SPLITS[split]:
        rng = np.random.default_rng([seed, speaker.reader])
        synth.seed(seed * 1000 + speaker.reader)  # the breath noise of f2, f3, f5 ... (synth.py): reproducible
        chapter = 1000 + speaker.reader
        folder = data_dir / CORPUS_DIR / split / str(speaker.reader) / str(chapter)
        lines = []
        for index in range(TINY_UTTERANCES_PER_SPEAKER[split]):
            text = tiny_sentence(rng)
            raw = synth.synthesize(text.lower(), speaker.voice, rate=int(rng.integers(*TINY_RATE_WPM)),
                                   pitch=int(rng.integers(*TINY_PITCH)))
            audio = _resample_to_16k(raw.astype(np.float32) / 32768.0, synth.sample_rate)
            peak = float(np.abs(audio).max()) or 1.0
            audio = audio / peak * float(rng.uniform(0.3, 0.9))  # a level per utterance, like real recordings
            snr_db = rng.uniform(*speaker.snr_db)
            noise_rms = np.sqrt(np.mean(audio ** 2)) / 10 ** (snr_db / 20)
            audio = audio + rng.normal(0.0, noise_rms, audio.shape).astype(np.float32)
            utterance_id = f"{speaker.reader}-{chapter}-{index:04d}"
            _write_flac(folder / f"{utterance_id}.flac", audio)
            lines.append(f"{utterance_id} {text}\n")
            count += 1
        (folder / f"{speaker.reader}-{chapter}.trans.txt").write_text("".join(lines), encoding="utf-8")
    return count


def _synthesize_splits(data_dir: str, seed: int) -> list[int]:
    return [_synthesize_split(Path(data_dir), split, seed) for split in TINY_SPLITS]


def _librivox_clips(data_dir: Path, source: Path = POCKETSPHINX_LIBRIVOX) -> int:
    """pocketsphinx-testdata's five LibriVox clips (16 kHz WAV + a `transcription` file) as test-clean."""
    transcription = source / "transcription"
    if not transcription.is_file():
        return 0
    reader, chapter = 4000, 870  # a reader id LibriSpeech does not use for these recordings
    folder = data_dir / CORPUS_DIR / "test-clean" / str(reader) / str(chapter)
    lines = []
    for index, line in enumerate(transcription.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        words, _, name = line.rpartition("(")
        text = normalize_transcript(words.replace("<s>", " ").replace("</s>", " "))
        wav = source / f"{name.strip().rstrip(')')}.wav"
        utterance_id = f"{reader}-{chapter}-{index:04d}"
        _write_flac(folder / f"{utterance_id}.flac", read_audio(wav))
        lines.append(f"{utterance_id} {text}\n")
    (folder / f"{reader}-{chapter}.trans.txt").write_text("".join(lines), encoding="utf-8")
    return len(lines)


def make_tiny(data_dir: str | os.PathLike, seed: int = 0, librivox: Path | None = POCKETSPHINX_LIBRIVOX) -> Path:
    """Synthesize the tiny LibriSpeech (module docstring) into `data_dir`; returns its MANIFEST.json."""
    data_dir = Path(data_dir)
    if (data_dir / CORPUS_DIR).exists():
        shutil.rmtree(data_dir / CORPUS_DIR)
    shutil.rmtree(data_dir / MANIFEST_DIR, ignore_errors=True)
    # eSpeak NG carries state from one synthesis to the next (even across espeak_Terminate), so the
    # same calls give the same audio only from a fresh library: synthesize in a new process.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        counts = pool.submit(_synthesize_splits, str(data_dir), seed).result()
    splits = list(TINY_SPLITS)
    for split, count in zip(splits, counts):
        info(f"{split}: {count} synthesized utterances")
    if librivox is not None and _librivox_clips(data_dir, librivox):
        splits.append("test-clean")
        info("test-clean: the LibriVox clips of pocketsphinx-testdata")
    for split in splits:
        write_split_manifest(data_dir, split, progress=False)
    return write_manifest(data_dir)


def splits_in(data_dir: str | os.PathLike) -> list[str]:
    return sorted(path.stem for path in (Path(data_dir) / MANIFEST_DIR).glob("*.csv"))


__all__ = ["ARCHIVE_MD5", "REQUIRED_SPLITS", "Utterance", "load_split", "load_splits", "prepare", "make_tiny",
           "write_split_manifest", "splits_in", "MANIFEST_NAME"]
