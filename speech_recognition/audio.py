"""Reading audio files: FLAC (LibriSpeech) and WAV through soundfile, one clear line when a file is bad."""

from __future__ import annotations

import os

import numpy as np

from harness.errors import DatasetError
from speech_recognition.features import SAMPLE_RATE


def read_audio(path: str | os.PathLike, expected_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 samples in [-1, 1]; DatasetError naming the file if it does not decode or is not 16 kHz."""
    import soundfile

    try:
        samples, rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable audio file ({error}); replace it or prepare the dataset again") from None
    if rate != expected_rate:
        raise DatasetError(f"{path}: sample rate {rate} Hz, expected {expected_rate} Hz")
    return samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]


def duration_s(path: str | os.PathLike) -> float:
    """Length in seconds from the header (what the reference's `soxi -D` reads)."""
    import soundfile

    try:
        info = soundfile.info(os.fspath(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise DatasetError(f"{path}: not a readable audio file ({error})") from None
    return info.frames / info.samplerate
