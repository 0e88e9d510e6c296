"""GNMT weights between PyTorch and Keras, one to one (the layer names are the same in both models).

The interchange format is the PyTorch `state_dict` as NumPy arrays (weights.py names and layouts):

- an nn.LSTM's `weight_ih_l0` (4h, in) / `weight_hh_l0` (4h, h) are the transposes of the Keras
  cell's `kernel` (in, 4h) / `recurrent_kernel` (h, 4h), gates in the same order (i, f, c/g, o);
  `bias_ih_l0` / `bias_hh_l0` are the cell's `bias_ih` / `bias_hh`; `_reverse` is the backward LSTM;
- an nn.Linear `weight` (out, in) is the transpose of a Dense `kernel` (in, out);
- the embedding, the attention vector, scalar and bias are the same arrays.

    state = keras_to_torch_layout(keras_model)        # {"encoder.rnn_layers.0.weight_ih_l0": ...}
    load_torch_layout(keras_model, state)              # the other way
    python -m translation.gnmt.tensorflow.convert model.pt model.weights.h5

Nothing here imports torch at module level, so the TensorFlow image needs no PyTorch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.convert import DENSE, Row, Table, command_line

if TYPE_CHECKING:
    import keras


def _lstm(prefix: str, layer, suffix: str = "") -> Iterator[Row]:
    cell = layer.cell
    yield Row(f"{prefix}.weight_ih_l0{suffix}", cell.kernel, DENSE)
    yield Row(f"{prefix}.weight_hh_l0{suffix}", cell.recurrent_kernel, DENSE)
    yield Row(f"{prefix}.bias_ih_l0{suffix}", cell.bias_ih)
    yield Row(f"{prefix}.bias_hh_l0{suffix}", cell.bias_hh)


def _variables(model: keras.Model) -> Iterator[Row]:
    """The name table (harness/convert.py): every parameter in PyTorch's order (weights.py)."""
    yield Row("embedder.weight", model.embedder.embeddings)
    encoder = model.encoder.rnn_layers
    yield from _lstm("encoder.rnn_layers.0", encoder[0].forward_layer)
    yield from _lstm("encoder.rnn_layers.0", encoder[0].backward_layer, "_reverse")
    for n, layer in enumerate(encoder[1:], start=1):
        yield from _lstm(f"encoder.rnn_layers.{n}", layer)
    att_rnn = model.decoder.att_rnn
    yield from _lstm("decoder.att_rnn.rnn", att_rnn.rnn)
    attn = att_rnn.attn
    yield Row("decoder.att_rnn.attn.linear_att", attn.linear_att)
    yield Row("decoder.att_rnn.attn.normalize_scalar", attn.normalize_scalar)
    yield Row("decoder.att_rnn.attn.normalize_bias", attn.normalize_bias)
    yield Row("decoder.att_rnn.attn.linear_q.weight", attn.linear_q.kernel, DENSE)
    yield Row("decoder.att_rnn.attn.linear_k.weight", attn.linear_k.kernel, DENSE)
    for n, layer in enumerate(model.decoder.rnn_layers):
        yield from _lstm(f"decoder.rnn_layers.{n}", layer)
    yield Row("decoder.classifier.classifier.weight", model.decoder.classifier.kernel, DENSE)
    yield Row("decoder.classifier.classifier.bias", model.decoder.classifier.bias)


GNMT_WEIGHTS = Table("GNMT", _variables, dtype=np.float32)  # keras_to_torch_layout in float32 unless asked
keras_to_torch_layout, load_torch_layout = GNMT_WEIGHTS.keras_to_torch_layout, GNMT_WEIGHTS.load_torch_layout
torch_to_keras, keras_to_torch = GNMT_WEIGHTS.torch_to_keras, GNMT_WEIGHTS.keras_to_torch


def sizes_from_state(state: dict[str, np.ndarray]) -> dict:
    """The GNMT constructor arguments a state_dict implies; a KeyError, ValueError or AttributeError
    where it is not a GNMT state_dict."""
    vocab_size, hidden = state["embedder.weight"].shape
    layers = 1 + max(int(name.split(".")[2]) for name in state if name.startswith("encoder.rnn_layers."))
    return {"vocab_size": int(vocab_size), "hidden_size": int(hidden), "num_layers": int(layers)}


def convert_file(source: str | Path, destination: str | Path) -> Path:
    """`.pt` (a state_dict or a harness torch payload) -> Keras `.weights.h5`."""
    from translation.gnmt.tensorflow.model import GNMT

    return GNMT_WEIGHTS.convert_file(source, destination, GNMT, sizes_from_state)


def main(argv: list[str] | None = None) -> int:
    return command_line(argv, "python -m translation.gnmt.tensorflow.convert", __doc__, convert_file)


if __name__ == "__main__":
    raise SystemExit(main())
