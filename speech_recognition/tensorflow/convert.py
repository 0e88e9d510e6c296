"""Weights between the PyTorch and Keras DeepSpeech2, both ways, layer by layer by name.

Layouts: convolution kernels (out, in, h, w) <-> (h, w, in, out); dense (out, in) <-> (in, out);
batch norm weight, bias, running mean and variance <-> gamma, beta, moving mean and variance; GRU
gates PyTorch (r, z, n) in rows <-> Keras (z, r, h) in columns, PyTorch's b_ih and b_hh <-> Keras'
bias rows 0 and 1 (reset_after=True). harness/convert.py does the work from this name table
(strict: every weight there, with its shape; batch norm's `num_batches_tracked` counters ignored).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from harness.convert import Layout, Part, Row, layer_rows, load_torch_layout, torch_layout
from speech_recognition.pytorch.model import DeepSpeech2 as TorchDeepSpeech2
from speech_recognition.tensorflow.model import DeepSpeech2 as KerasDeepSpeech2


def _swap_reset_and_update(matrix: np.ndarray) -> np.ndarray:
    """(3H, ...) rows r, z, n -> z, r, n, and back (the swap is its own inverse)."""
    first, second, new = np.split(matrix, 3, axis=0)
    return np.concatenate([second, first, new], axis=0)


GRU_KERNEL = Layout(lambda weight: _swap_reset_and_update(weight).T, lambda kernel: _swap_reset_and_update(kernel.T))
GRU_BIAS = Layout(_swap_reset_and_update, _swap_reset_and_update)


def named_variables(model: KerasDeepSpeech2) -> Iterator[Row]:
    """The name table: every Keras weight under its PyTorch name, in PyTorch's order."""
    for name in ("conv1", "conv1_bn", "conv2", "conv2_bn"):
        yield from layer_rows(getattr(model, name), name)
    for index, rnn in enumerate(model.rnns):
        prefix, cell = f"rnns.{index}", rnn.cell
        yield Row(f"{prefix}.weight_ih_l0", cell.kernel, GRU_KERNEL)
        yield Row(f"{prefix}.weight_hh_l0", cell.recurrent_kernel, GRU_KERNEL)
        yield Row(f"{prefix}.bias_ih_l0", Part(cell.bias, 0), GRU_BIAS)
        yield Row(f"{prefix}.bias_hh_l0", Part(cell.bias, 1), GRU_BIAS)
    for name in ("fc_bn", "fc"):
        yield from layer_rows(getattr(model, name), name)


def torch_state_from_keras(model: KerasDeepSpeech2) -> dict[str, np.ndarray]:
    """A PyTorch state dict (NumPy arrays) from the Keras model's weights."""
    return torch_layout(named_variables(model))


def torch_to_keras(torch_model: TorchDeepSpeech2, keras_model: KerasDeepSpeech2) -> None:
    load_torch_layout(named_variables(keras_model), torch_model.state_dict(), "DeepSpeech2", ignore_counters=True)


def keras_to_torch(keras_model: KerasDeepSpeech2, torch_model: TorchDeepSpeech2) -> None:
    import torch

    state = torch_model.state_dict()
    converted = torch_state_from_keras(keras_model)
    state.update({name: torch.from_numpy(value).to(state[name].dtype) for name, value in converted.items()})
    torch_model.load_state_dict(state)
