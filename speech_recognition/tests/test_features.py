"""Features and augmentation, checked against independent computations and physical properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from speech_recognition import features
from speech_recognition.features import HOP, N_FFT, NUM_BINS, SAMPLE_RATE, Augmentation


def _sine(frequency: float, seconds: float) -> np.ndarray:
    return np.sin(2 * np.pi * frequency * np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE).astype(np.float32)


def test_spectrogram_is_log1p_of_a_centred_hamming_stft():
    """Each column against a direct DFT of the reflect-padded frame under scipy's symmetric Hamming
    window (librosa.stft's convention, called with scipy.signal.hamming as the reference does)."""
    audio = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.1
    spect = features.spectrogram(audio)
    assert spect.shape == (NUM_BINS, 1 + len(audio) // HOP) == (161, 101)
    padded = np.pad(audio.astype(np.float64), N_FFT // 2, mode="reflect")
    window = scipy.signal.windows.hamming(N_FFT, sym=True)
    for column in (0, 37, 100):
        frame = padded[column * HOP:column * HOP + N_FFT] * window
        dft = np.abs(np.fft.fft(frame)[:NUM_BINS])  # the full DFT, not rfft: an independent path
        # float32 output: bounded relative to the largest value
        assert np.abs(np.log1p(dft) - spect[:, column]).max() <= 1e-6 * np.abs(spect).max()


def test_a_sine_lands_in_its_bin():
    spect = features.spectrogram(_sine(1000.0, 0.5))
    assert int(np.argmax(spect[:, 10])) == round(1000 / (SAMPLE_RATE / N_FFT))  # bin width 50 Hz


def test_normalization_is_per_utterance_mean_and_unbiased_std():
    spect = np.random.default_rng(1).random((NUM_BINS, 40)).astype(np.float32) * 3 + 2
    out = features.normalize(spect)
    assert abs(float(out.mean(dtype=np.float64))) < 1e-6
    assert float(out.std(dtype=np.float64, ddof=1)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_tempo_changes_duration_not_pitch(factor):
    stretched = features.tempo(_sine(440.0, 1.0), factor)
    assert len(stretched) == round(SAMPLE_RATE / factor)
    spectrum = np.abs(np.fft.rfft(stretched * np.hanning(len(stretched))))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(stretched)
    assert abs(peak_hz - 440.0) <= SAMPLE_RATE / len(stretched)  # within one DFT bin
    # the waveform stays a clean sine (WSOLA splices in phase): little energy away from the peak
    peak = int(np.argmax(spectrum))
    assert (spectrum[peak - 3:peak + 4] ** 2).sum() / (spectrum ** 2).sum() > 0.98


def test_gain_is_in_decibels_and_noise_loops_from_its_offset():
    audio = _sine(300.0, 0.1)
    assert np.allclose(features.gain(audio, 20.0), audio * 10.0, rtol=1e-6)
    noise = np.arange(10, dtype=np.float32)
    mixed = features.inject_noise(np.zeros(25, np.float32), noise, 0.5, 0.3)
    assert mixed.tolist() == [0.5 * v for v in [3, 4, 5, 6, 7, 8, 9, 0, 1, 2] * 2 + [3, 4, 5, 6, 7]]


def test_augmentation_draws_from_the_given_generator_only(tmp_path):
    import soundfile

    audio = _sine(200.0, 1.0) * 0.3
    soundfile.write(str(tmp_path / "noise.flac"), np.random.default_rng(0).standard_normal(8000) * 0.1, SAMPLE_RATE)
    options = Augmentation(tempo_and_gain=True, noise_dir=str(tmp_path), noise_prob=1.0)
    first = features.augment(audio, options, np.random.default_rng([1, 2, 3]))
    second = features.augment(audio, options, np.random.default_rng([1, 2, 3]))
    other = features.augment(audio, options, np.random.default_rng([1, 2, 4]))
    assert np.array_equal(first, second) and not np.array_equal(first, other)
    assert 0.85 <= len(audio) / len(first) <= 1.15 + 1e-3
    assert np.array_equal(features.augment(audio, Augmentation(), np.random.default_rng(0)), audio)


def test_empty_noise_folder_is_one_line(tmp_path):
    from harness.errors import DatasetError

    with pytest.raises(DatasetError, match="holds no .wav or .flac"):
        features.augment(_sine(200.0, 0.5), Augmentation(noise_dir=str(tmp_path), noise_prob=1.0),
                         np.random.default_rng(0))
