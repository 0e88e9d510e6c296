"""DeepSpeech2 in PyTorch, as the MLPerf Training v0.5 reference code builds it.

mlcommons/training (tag v0.5) speech_recognition/pytorch/model.py with train.py's arguments
(`DeepSpeech(rnn_hidden_size=2560, nb_layers=3, rnn_type=nn.GRU, bidirectional=False, bias=True)`),
after the August 2018 change "going from 5 layers to 3, 800 hidden units to 2560, bi-directional to
uni-directional, and removing batch normalization between layers" (its README still shows 5
bidirectional layers and 13 MFCCs; README.md here says what the code does):

    conv1     Conv2d(1, 32, (41, 11), stride (2, 2)), with bias    } on (N, 1, 161 bins, frames)
    conv1_bn  BatchNorm2d(32), Hardtanh(0, 20)                     }
    conv2     Conv2d(32, 32, (21, 11), stride (2, 1)), with bias   }
    conv2_bn  BatchNorm2d(32), Hardtanh(0, 20)                     } -> (N, frames', 32 x 21 = 672)
    rnns.0-2  GRU(672 -> 2560), GRU(2560 -> 2560) x 2, unidirectional, with biases, no batch norm between
    fc_bn     BatchNorm1d(2560) over every (utterance, frame)
    fc        Linear(2560 -> 29), no bias

The forward returns logits (N, frames', 29); training applies log-softmax inside the CTC loss, as the
reference's warp-ctc did, and evaluation takes log-softmax (the reference's InferenceBatchLogSoftmax).
Initialization is PyTorch's default for each layer (the reference sets none).
"""

from __future__ import annotations

import torch
from torch import nn

from speech_recognition.architecture import (
    CONV1_KERNEL,
    CONV1_STRIDE,
    CONV2_KERNEL,
    CONV2_STRIDE,
    HARDTANH_MAX,
    rnn_input_size,
)
from speech_recognition.text import NUM_CLASSES


class DeepSpeech2(nn.Module):
    def __init__(self, conv_channels: int = 32, rnn_hidden_size: int = 2560, rnn_layers: int = 3,
                 num_classes: int = NUM_CLASSES):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv_channels, CONV1_KERNEL, CONV1_STRIDE)
        self.conv1_bn = nn.BatchNorm2d(conv_channels)
        self.conv2 = nn.Conv2d(conv_channels, conv_channels, CONV2_KERNEL, CONV2_STRIDE)
        self.conv2_bn = nn.BatchNorm2d(conv_channels)
        sizes = [rnn_input_size(conv_channels)] + [rnn_hidden_size] * rnn_layers
        self.rnns = nn.ModuleList(nn.GRU(sizes[i], sizes[i + 1], batch_first=True, bias=True)
                                  for i in range(rnn_layers))
        self.fc_bn = nn.BatchNorm1d(rnn_hidden_size)
        self.fc = nn.Linear(rnn_hidden_size, num_classes, bias=False)

    def forward(self, spectrograms: torch.Tensor) -> torch.Tensor:
        """(N, 1, 161, frames) -> logits (N, output frames, 29)."""
        x = nn.functional.hardtanh(self.conv1_bn(self.conv1(spectrograms)), 0.0, HARDTANH_MAX)
        x = nn.functional.hardtanh(self.conv2_bn(self.conv2(x)), 0.0, HARDTANH_MAX)
        n, channels, bins, frames = x.shape
        x = x.reshape(n, channels * bins, frames).transpose(1, 2)  # (N, frames, C*F), channel-major features
        for rnn in self.rnns:
            x, _ = rnn(x)
        x = self.fc_bn(x.transpose(1, 2)).transpose(1, 2)  # BatchNorm1d over (N x frames) positions
        return self.fc(x)


def build_model(cfg_model, seed: int | None = None) -> DeepSpeech2:
    """The configured network; `seed` makes its initial weights reproducible on their own."""
    if cfg_model.rnn_type != "gru" or cfg_model.rnn_bidirectional:
        from harness.errors import ConfigError

        raise ConfigError(f"model: the v0.5 DeepSpeech2 has unidirectional GRUs (rnn_type={cfg_model.rnn_type}, "
                          f"rnn_bidirectional={cfg_model.rnn_bidirectional})")
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return DeepSpeech2(cfg_model.conv_channels, cfg_model.rnn_hidden_size, cfg_model.rnn_layers)
    return DeepSpeech2(cfg_model.conv_channels, cfg_model.rnn_hidden_size, cfg_model.rnn_layers)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
