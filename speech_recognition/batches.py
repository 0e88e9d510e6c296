"""Batches of utterances as NumPy arrays: the one input pipeline both frameworks consume.

As the reference's AudioDataLoader over its duration-sorted manifest (train.py builds it without a
sampler or shuffling): batches are consecutive runs of `global_batch_size` utterances in manifest
order, the same every epoch, the last one possibly short. Each utterance is decoded (soundfile),
perturbed in training (features.augment, drawn from a generator seeded by (seed, epoch, utterance
index), so the same on every machine and in every worker), turned into features (features.features)
and zero-padded to the longest of its batch, as the reference's `_collate_fn`. Under data
parallelism rank r takes the utterances r, r + world, ... of every global batch.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from speech_recognition.architecture import MIN_INPUT_FRAMES, output_frames
from speech_recognition.audio import read_audio
from speech_recognition.dataset import Utterance
from speech_recognition.features import NUM_BINS, Augmentation, augment, features
from speech_recognition.text import encode


@dataclasses.dataclass(frozen=True)
class Batch:
    features: np.ndarray  # (N, 161, frames) float32, zero-padded
    frames: np.ndarray  # (N,) int32 input frames of each utterance
    output_frames: np.ndarray  # (N,) int32 model output frames of each utterance
    targets: np.ndarray  # (N, longest target) int32, zero-padded (0 is the blank: never a target label)
    target_lengths: np.ndarray  # (N,) int32
    transcripts: tuple[str, ...]
    global_count: int  # utterances in the global batch (all ranks)

    def __len__(self) -> int:
        return len(self.transcripts)


def collate(spectrograms: Sequence[np.ndarray], transcripts: Sequence[str], global_count: int) -> Batch:
    longest = max(MIN_INPUT_FRAMES, max(spect.shape[1] for spect in spectrograms))
    inputs = np.zeros((len(spectrograms), NUM_BINS, longest), np.float32)
    for row, spect in enumerate(spectrograms):
        inputs[row, :, :spect.shape[1]] = spect
    frames = np.array([spect.shape[1] for spect in spectrograms], np.int32)
    encoded = [encode(text) for text in transcripts]
    targets = np.zeros((len(encoded), max(1, max(len(e) for e in encoded))), np.int32)
    for row, labels in enumerate(encoded):
        targets[row, :len(labels)] = labels
    return Batch(inputs, frames, output_frames(frames), targets, np.array([len(e) for e in encoded], np.int32),
                 tuple(transcripts), global_count)


class BatchSource:
    """Global batch `index` of an epoch, this rank's share, as a `Batch` (see the module docstring)."""

    def __init__(self, utterances: Sequence[Utterance], global_batch_size: int, *, training: bool,
                 augmentation: Augmentation | None = None, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.utterances = list(utterances)
        self.global_batch_size = global_batch_size
        self.training = training
        self.augmentation = augmentation or Augmentation()
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 1

    def __len__(self) -> int:
        return -(-len(self.utterances) // self.global_batch_size)

    def indices(self, index: int) -> tuple[list[int], int]:
        first = index * self.global_batch_size
        members = list(range(first, min(first + self.global_batch_size, len(self.utterances))))
        return members[self.rank::self.world_size], len(members)

    def utterance_features(self, position: int, epoch: int) -> np.ndarray:
        utterance = self.utterances[position]
        audio = read_audio(utterance.audio)
        if self.training and (self.augmentation.tempo_and_gain or self.augmentation.noise_dir):
            audio = augment(audio, self.augmentation, np.random.default_rng([self.seed, epoch, position]))
        return features(audio)

    def batch(self, index: int, epoch: int | None = None) -> Batch:
        epoch = self.epoch if epoch is None else epoch
        members, global_count = self.indices(index)
        spectrograms = [self.utterance_features(position, epoch) for position in members]
        return collate(spectrograms, [self.utterances[p].transcript for p in members], global_count)

    def __getitem__(self, index: int) -> Batch:  # torch.utils.data.Dataset protocol
        return self.batch(index)

    def iterate(self, epoch: int, workers: int = 1, prefetch: int = 4) -> Iterator[Batch]:
        """The epoch's batches in order, prepared `prefetch` ahead on `workers` threads (NumPy's FFT and
        libsndfile release the GIL)."""
        if workers <= 0:
            for index in range(len(self)):
                yield self.batch(index, epoch)
            return
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            pending = [pool.submit(self.batch, index, epoch) for index in range(min(prefetch, len(self)))]
            for index in range(len(self)):
                batch = pending.pop(0).result()
                if index + prefetch < len(self):
                    pending.append(pool.submit(self.batch, index + prefetch, epoch))
                yield batch
