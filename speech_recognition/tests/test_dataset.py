"""The LibriSpeech data path on data in the real on-disk format: archives, checksums, manifests, errors."""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import soundfile

from harness.benchmarks import REPO_ROOT
from harness.errors import DatasetError
from speech_recognition import dataset
from speech_recognition.dataset import CORPUS_DIR, REQUIRED_SPLITS, TINY_SPLITS


def _manifest_rows(folder: Path, split: str) -> list[dict]:
    with open(dataset.manifest_path(folder, split), newline="") as handle:
        return list(csv.DictReader(handle))


def test_tiny_data_has_the_librispeech_layout(tiny_librispeech):
    for split in TINY_SPLITS:
        rows = _manifest_rows(tiny_librispeech, split)
        assert len(rows) == len(TINY_SPLITS[split]) * dataset.TINY_UTTERANCES_PER_SPEAKER[split]
        for row in rows:
            reader, chapter, utterance = Path(row["audio"]).stem.split("-")
            assert row["audio"] == f"{CORPUS_DIR}/{split}/{reader}/{chapter}/{reader}-{chapter}-{utterance}.flac"
            assert len(utterance) == 4 and row["transcript"] == row["transcript"].upper()
            info = soundfile.info(str(tiny_librispeech / row["audio"]))
            assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "FLAC", "PCM_16")
            assert float(row["duration_s"]) == pytest.approx(info.frames / 16000, abs=1e-6)
        durations = [float(row["duration_s"]) for row in rows]
        assert durations == sorted(durations)  # the reference's manifests are sorted by duration
        transcripts = (tiny_librispeech / rows[0]["audio"]).parent.glob("*.trans.txt")
        assert len(list(transcripts)) == 1


def test_speakers_are_kept_apart_between_training_and_evaluation(tiny_librispeech):
    readers = {split: {Path(row["audio"]).stem.split("-")[0] for row in _manifest_rows(tiny_librispeech, split)}
               for split in TINY_SPLITS}
    voices = {split: {speaker.voice for speaker in TINY_SPLITS[split]} for split in TINY_SPLITS}
    for evaluation in ("dev-clean", "dev-other"):
        assert not readers["train-clean-100"] & readers[evaluation]
        assert not voices["train-clean-100"] & voices[evaluation]


def test_tiny_data_is_deterministic_from_its_seed(tiny_librispeech, tmp_path):
    dataset.make_tiny(tmp_path / "again", seed=0, librivox=None)
    for split in TINY_SPLITS:
        assert dataset.manifest_path(tmp_path / "again", split).read_bytes() == \
            dataset.manifest_path(tiny_librispeech, split).read_bytes()
    # every audio file, byte for byte: the breath-noise voices (f2, f3, f5) draw from eSpeak NG's generator,
    # which the clock seeds unless synth.seed sets it; a few files would not show that (15 voices, 3 affected)
    files = sorted(path.relative_to(tiny_librispeech) for split in TINY_SPLITS
                   for path in (tiny_librispeech / CORPUS_DIR / split).rglob("*.flac"))
    assert len(files) == sum(len(TINY_SPLITS[split]) * dataset.TINY_UTTERANCES_PER_SPEAKER[split] for split in TINY_SPLITS)
    differ = [str(name) for name in files if (tmp_path / "again" / name).read_bytes() != (tiny_librispeech / name).read_bytes()]
    assert differ == []


@pytest.mark.skipif(not (dataset.POCKETSPHINX_LIBRIVOX / "transcription").is_file(),
                    reason="Debian's pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata): "
                           "its five real LibriVox clips are the tiny data's test-clean split")
def test_real_librivox_clips_go_through_the_pipeline(tiny_librispeech):
    from speech_recognition.batches import BatchSource

    utterances = dataset.load_split(tiny_librispeech, "test-clean")
    assert len(utterances) == 5 and utterances[0].transcript == "HE WAS NOT AN ILL DISPOSED YOUNG MAN"
    batch = BatchSource(utterances, 5, training=False).batch(0)
    assert batch.features.shape[:2] == (5, 161) and batch.frames.max() == 1 + int(7.1 * 16000) // 160


# -- the real data path: openslr archives ------------------------------------------------------------
def _fake_archives(tiny: Path, source: Path, splits=REQUIRED_SPLITS) -> dict[str, str]:
    """An openslr-shaped archive per split (LibriSpeech/<split>/<reader>/<chapter>/...), each holding one
    chapter of the tiny data; returns their MD5s."""
    chapter = sorted((tiny / CORPUS_DIR / "dev-clean").glob("*/*"))[0]
    source.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for split in splits:
        archive = source / f"{split}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(chapter, arcname=f"{CORPUS_DIR}/{split}/{chapter.parent.name}/{chapter.name}")
            tar.add(tiny / "MANIFEST.json", arcname=f"{CORPUS_DIR}/README.TXT")  # top-level files are skipped
        md5[split] = hashlib.md5(archive.read_bytes()).hexdigest()
    return md5


def test_prepare_verifies_extracts_and_indexes_the_archives(tiny_librispeech, tmp_path, monkeypatch):
    md5 = _fake_archives(tiny_librispeech, tmp_path / "downloads")
    monkeypatch.setattr(dataset, "ARCHIVE_MD5", {**dataset.ARCHIVE_MD5, **md5})
    manifest = dataset.prepare(tmp_path / "downloads", tmp_path / "data", workers=1)
    assert manifest.name == "MANIFEST.json"
    for split in REQUIRED_SPLITS:
        rows = _manifest_rows(tmp_path / "data", split)
        assert len(rows) == dataset.TINY_UTTERANCES_PER_SPEAKER["dev-clean"]
        assert rows[0]["audio"].startswith(f"{CORPUS_DIR}/{split}/")
    assert not (tmp_path / "data" / CORPUS_DIR / "README.TXT").exists()
    assert not (tmp_path / "data" / ".prepare").exists()
    train = dataset.load_splits(tmp_path / "data", REQUIRED_SPLITS[:3])
    assert len(train) == 30 and [u.duration_s for u in train] == sorted(u.duration_s for u in train)
    # resumable: a second run finds every split extracted and needs no archive
    for archive in (tmp_path / "downloads").glob("*.tar.gz"):
        archive.unlink()
    dataset.prepare(tmp_path / "downloads", tmp_path / "data", workers=1)


def test_a_corrupt_archive_is_one_line_naming_it(tiny_librispeech, tmp_path):
    _fake_archives(tiny_librispeech, tmp_path / "downloads")  # the real checksums: none matches
    completed = subprocess.run([sys.executable, "-m", "harness", "data", "speech_recognition", "--source",
                                str(tmp_path / "downloads"), "--data-dir", str(tmp_path / "data")],
                               cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert completed.returncode == 2
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "train-clean-100.tar.gz: md5 checksum mismatch" in errors[0], completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_missing_archive_is_one_line_naming_it(tmp_path):
    (tmp_path / "downloads").mkdir()
    with pytest.raises(DatasetError, match=r"train-clean-100.tar.gz: missing \(download it from https://www.openslr.org"):
        dataset.prepare(tmp_path / "downloads", tmp_path / "data")


def _split_copy(tiny: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "copy"
    shutil.copytree(tiny / CORPUS_DIR / "dev-clean", folder / CORPUS_DIR / "dev-clean")
    return folder


def test_a_corrupt_flac_is_one_line_naming_it(tiny_librispeech, tmp_path):
    folder = _split_copy(tiny_librispeech, tmp_path)
    victim = sorted(folder.rglob("*.flac"))[3]
    victim.write_bytes(victim.read_bytes()[:len(victim.read_bytes()) // 2])  # truncated
    with pytest.raises(DatasetError, match=rf"^{victim}: not a readable audio file") as error:
        dataset.write_split_manifest(folder, "dev-clean", progress=False)
    assert "\n" not in str(error.value)


def test_a_transcript_line_without_audio_is_one_line_naming_it(tiny_librispeech, tmp_path):
    folder = _split_copy(tiny_librispeech, tmp_path)
    victim = sorted(folder.rglob("*.flac"))[0]
    victim.unlink()
    transcripts = next(victim.parent.glob("*.trans.txt"))
    with pytest.raises(DatasetError, match=rf"^{transcripts}:\d+: transcript line without audio \({victim.name} is missing\)"):
        dataset.write_split_manifest(folder, "dev-clean", progress=False)


def test_audio_without_a_transcript_line_is_one_line_naming_it(tiny_librispeech, tmp_path):
    folder = _split_copy(tiny_librispeech, tmp_path)
    transcripts = next(folder.rglob("*.trans.txt"))
    lines = transcripts.read_text().splitlines(keepends=True)
    transcripts.write_text("".join(lines[1:]))
    orphan = transcripts.parent / f"{lines[0].split()[0]}.flac"
    with pytest.raises(DatasetError, match=rf"^{orphan}: audio without a transcript line"):
        dataset.write_split_manifest(folder, "dev-clean", progress=False)


def test_a_corrupt_flac_after_preparation_stops_training_with_one_line(tiny_librispeech, tmp_path):
    from harness.datasets import verify_manifest

    folder = tmp_path / "data"
    shutil.copytree(tiny_librispeech, folder)
    victim = sorted((folder / CORPUS_DIR / "dev-other").rglob("*.flac"))[0]
    data = bytearray(victim.read_bytes())
    data[-100] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=rf"^{victim}: sha256 checksum mismatch"):
        verify_manifest(folder, "full")
    # with verification off, decoding names the file (soundfile detects the frame's CRC)
    from speech_recognition.audio import read_audio

    with pytest.raises(DatasetError, match=rf"^{victim}: not a readable audio file"):
        read_audio(victim)
