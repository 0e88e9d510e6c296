"""DeepSpeech2's shape arithmetic, shared by both frameworks' model.py and the input pipelines.

The v0.5 reference (mlcommons/training speech_recognition/pytorch/model.py) convolves the
(161 frequency bins x frames) spectrogram without padding:
    Conv2d(1, C, kernel (41, 11), stride (2, 2)) -> BatchNorm2d -> Hardtanh(0, 20)
    Conv2d(C, C, kernel (21, 11), stride (2, 1)) -> BatchNorm2d -> Hardtanh(0, 20)
so 161 bins become 61 then 21, and the GRU input is C * 21 (672 for C = 32: "GRU(672, 2560)").
"""

from __future__ import annotations

import numpy as np

from speech_recognition.features import NUM_BINS

CONV1_KERNEL, CONV1_STRIDE = (41, 11), (2, 2)  # (frequency, time)
CONV2_KERNEL, CONV2_STRIDE = (21, 11), (2, 1)
HARDTANH_MAX = 20.0


def _conv_out(size, kernel: int, stride: int):
    return (size - kernel) // stride + 1


def rnn_input_size(conv_channels: int) -> int:
    """Channels x remaining frequency bins, in that order (the reference's view(N, C*F, T))."""
    bins = _conv_out(_conv_out(NUM_BINS, CONV1_KERNEL[0], CONV1_STRIDE[0]), CONV2_KERNEL[0], CONV2_STRIDE[0])
    return conv_channels * bins


def output_frames(frames):
    """Output frames of the convolutions for `frames` input frames (an int or an int array).

    Only frames computed from the utterance's own input count: the reference scaled the padded
    batch's output length by each utterance's share of the longest one (README.md, "Differences")."""
    out = _conv_out(_conv_out(np.asarray(frames), CONV1_KERNEL[1], CONV1_STRIDE[1]), CONV2_KERNEL[1], CONV2_STRIDE[1])
    return np.maximum(out, 0).astype(np.int32)


MIN_INPUT_FRAMES = 31  # the shortest input that gives one output frame: (31 - 11) // 2 + 1 - 10 = 1
