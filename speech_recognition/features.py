"""Audio to the network's input, one implementation for both frameworks' input pipelines (NumPy).

As the v0.5 reference's `SpectrogramParser.parse_audio` (mlcommons/training speech_recognition/data/
data_loader.py, with params.py's audio settings):
- 16 kHz mono samples as floats in [-1, 1] (soundfile's scale; see README.md "Features" on the scale);
- `librosa.stft(y, n_fft=320, hop_length=160, win_length=320, window=scipy.signal.hamming)`: a 20 ms
  Hamming window (the symmetric one: librosa calls a window function with the length alone), a 10 ms
  hop, frames centred on t * hop with the signal reflect-padded by n_fft // 2 on both sides (librosa's
  default then), 161 frequency bins;
- log(1 + |STFT|), then per utterance (x - mean) / std over all bins and frames (torch's std, with
  Bessel's correction).

Augmentation, as the reference: `augment` draws a tempo factor in [0.85, 1.15] and a gain in [-6, 8] dB
per utterance (its `load_randomly_augmented_audio`, which calls `sox tempo ... gain ...`); here the
tempo change is a WSOLA time stretch (what sox's `tempo` effect does: duration scales, pitch stays)
written in NumPy, so no sox binary is needed. Noise injection (its `NoiseInjection`, off in the
reference config: `noise_dir = None`) adds, with probability `noise_prob`, a noise recording from
`noise_dir` scaled by a level drawn from [noise_min, noise_max], looped from a random offset.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path

import numpy as np

from harness.errors import DatasetError

SAMPLE_RATE = 16_000
WINDOW_SIZE_S = 0.02  # params.window_size
WINDOW_STRIDE_S = 0.01  # params.window_stride
N_FFT = int(SAMPLE_RATE * WINDOW_SIZE_S)  # 320 samples
HOP = int(SAMPLE_RATE * WINDOW_STRIDE_S)  # 160 samples
NUM_BINS = N_FFT // 2 + 1  # 161
TEMPO_RANGE = (0.85, 1.15)  # data_loader.load_randomly_augmented_audio
GAIN_RANGE_DB = (-6.0, 8.0)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """What is drawn per utterance in training (evaluation uses none)."""

    tempo_and_gain: bool = False  # params.augment
    noise_dir: str = ""  # params.noise_dir (None in the reference: no noise injection)
    noise_prob: float = 0.4  # params.noise_prob
    noise_min: float = 0.0  # params.noise_min
    noise_max: float = 0.5  # params.noise_max


@functools.lru_cache(maxsize=4)
def hamming(length: int) -> np.ndarray:
    """The symmetric Hamming window, scipy.signal.hamming(length) (sym=True)."""
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(length) / (length - 1))


def frame_count(samples: int) -> int:
    """STFT frames of a centred transform: 1 + samples // hop."""
    return 1 + samples // HOP


def spectrogram(audio: np.ndarray) -> np.ndarray:
    """log(1 + |STFT|) of float samples: (161 bins, frames), float32."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"spectrogram: expected mono samples, got shape {audio.shape}")
    padded = np.pad(audio, N_FFT // 2, mode="reflect" if audio.size > N_FFT // 2 else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    magnitude = np.abs(np.fft.rfft(frames * hamming(N_FFT), axis=1))
    return np.log1p(magnitude).T.astype(np.float32)


def normalize(spect: np.ndarray) -> np.ndarray:
    """Per-utterance (x - mean) / std over every value (the reference's normalize=True)."""
    mean = spect.mean(dtype=np.float64)
    std = spect.std(dtype=np.float64, ddof=1) if spect.size > 1 else 0.0
    return ((spect - mean) / (std if std > 0 else 1.0)).astype(np.float32)


def features(audio: np.ndarray) -> np.ndarray:
    """The network input of one utterance: normalized log spectrogram, (161, frames) float32."""
    return normalize(spectrogram(audio))


# -- augmentation -------------------------------------------------------------------------------
def gain(audio: np.ndarray, decibels: float) -> np.ndarray:
    return audio * np.float32(10.0 ** (decibels / 20.0))


def tempo(audio: np.ndarray, factor: float, window: int = 480, search: int = 160) -> np.ndarray:
    """Time-stretch by `factor` (> 1 faster, shorter) keeping the pitch: WSOLA (Verhelst & Roelands
    1993), the overlap-add family of sox's `tempo`. Hann windows of `window` samples (30 ms) are
    laid half-overlapping on the output; each is taken from near `factor` times its output position,
    shifted within +-`search` samples to the best match with the natural continuation of the last one.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if factor == 1.0 or audio.size < 2 * window + 2 * search:
        return audio.copy()
    hop = window // 2
    taper = np.hanning(window).astype(np.float32)
    out_length = int(round(audio.size / factor))
    padded = np.pad(audio, (search, window + search + int(hop * factor) + 1))
    positions = range(0, out_length, hop)
    output = np.zeros(out_length + window, dtype=np.float32)
    norm = np.zeros(out_length + window, dtype=np.float32)
    previous_end = 0  # input index (in padded) where the last copied window's natural continuation starts
    for count, out_at in enumerate(positions):
        nominal = int(round(out_at * factor)) + search
        if count == 0:
            start = nominal
        else:
            target = padded[previous_end:previous_end + window]
            region = padded[nominal - search:nominal + search + window]
            scores = np.correlate(region, target, mode="valid")
            start = nominal - search + int(np.argmax(scores))
        output[out_at:out_at + window] += padded[start:start + window] * taper
        norm[out_at:out_at + window] += taper
        previous_end = start + hop
    return (output[:out_length] / np.maximum(norm[:out_length], 1e-3)).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _noise_files(noise_dir: str) -> tuple[str, ...]:
    folder = Path(noise_dir)
    files = tuple(sorted(str(path) for path in folder.rglob("*") if path.suffix.lower() in (".wav", ".flac")))
    if not files:
        raise DatasetError(f"{noise_dir}: data.noise_dir holds no .wav or .flac file")
    return files


def inject_noise(audio: np.ndarray, noise: np.ndarray, level: float, offset_fraction: float) -> np.ndarray:
    """audio + level * noise, the noise looped from `offset_fraction` of its length (NoiseInjection)."""
    if noise.size == 0:
        return audio
    start = int(noise.size * offset_fraction)
    looped = np.resize(np.roll(noise, -start), audio.shape)  # np.resize repeats the array
    return (audio + level * looped).astype(np.float32)


def augment(audio: np.ndarray, options: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """The reference's training-time perturbations of one utterance, drawn from `rng`."""
    if options.tempo_and_gain:
        audio = tempo(audio, float(rng.uniform(*TEMPO_RANGE)))
        audio = gain(audio, float(rng.uniform(*GAIN_RANGE_DB)))
    if options.noise_dir and rng.binomial(1, options.noise_prob):
        from speech_recognition.audio import read_audio

        path = _noise_files(os.fspath(options.noise_dir))[int(rng.integers(len(_noise_files(options.noise_dir))))]
        noise = read_audio(path)
        audio = inject_noise(audio, noise, float(rng.uniform(options.noise_min, options.noise_max)), float(rng.random()))
    return audio
