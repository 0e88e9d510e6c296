"""The speed bench's FLOP count against PyTorch's own counter (convolutions and output layer)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from speech_recognition.bench import REDUCED, forward_macs
from speech_recognition.pytorch.model import DeepSpeech2


def test_forward_macs_match_torch_flop_counter():
    model = DeepSpeech2(**REDUCED).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(2, 1, 161, 301))
    counted = {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}
    ours = forward_macs(301, **REDUCED)
    convolution = sum(flops for op, flops in counted.items() if "convolution" in op)
    matmul = sum(flops for op, flops in counted.items() if op.endswith(("mm", "addmm", "matmul", "linear")))
    assert convolution == 2 * 2 * (ours["conv1"] + ours["conv2"])  # 2 FLOPs a multiply-add, batch of 2
    # the output layer is the only matrix product torch counts here (the GRU is one fused aten op)
    assert matmul in (2 * 2 * ours["fc"], 2 * 2 * ours["fc"] + 2 * 2 * ours["gru"])
