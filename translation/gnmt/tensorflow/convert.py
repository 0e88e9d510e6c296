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

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.errors import UserError, exit_on_user_error

if TYPE_CHECKING:
    import keras


def _lstm(prefix: str, layer, suffix: str = "") -> Iterator[tuple[str, object, bool]]:
    cell = layer.cell
    yield f"{prefix}.weight_ih_l0{suffix}", cell.kernel, True
    yield f"{prefix}.weight_hh_l0{suffix}", cell.recurrent_kernel, True
    yield f"{prefix}.bias_ih_l0{suffix}", cell.bias_ih, False
    yield f"{prefix}.bias_hh_l0{suffix}", cell.bias_hh, False


def _variables(model: keras.Model) -> Iterator[tuple[str, object, bool]]:
    """(state_dict name, Keras variable, transposed?) for every parameter, in PyTorch's order (weights.py)."""
    yield "embedder.weight", model.embedder.embeddings, False
    encoder = model.encoder.rnn_layers
    yield from _lstm("encoder.rnn_layers.0", encoder[0].forward_layer)
    yield from _lstm("encoder.rnn_layers.0", encoder[0].backward_layer, "_reverse")
    for n, layer in enumerate(encoder[1:], start=1):
        yield from _lstm(f"encoder.rnn_layers.{n}", layer)
    att_rnn = model.decoder.att_rnn
    yield from _lstm("decoder.att_rnn.rnn", att_rnn.rnn)
    attn = att_rnn.attn
    yield "decoder.att_rnn.attn.linear_att", attn.linear_att, False
    yield "decoder.att_rnn.attn.normalize_scalar", attn.normalize_scalar, False
    yield "decoder.att_rnn.attn.normalize_bias", attn.normalize_bias, False
    yield "decoder.att_rnn.attn.linear_q.weight", attn.linear_q.kernel, True
    yield "decoder.att_rnn.attn.linear_k.weight", attn.linear_k.kernel, True
    for n, layer in enumerate(model.decoder.rnn_layers):
        yield from _lstm(f"decoder.rnn_layers.{n}", layer)
    yield "decoder.classifier.classifier.weight", model.decoder.classifier.kernel, True
    yield "decoder.classifier.classifier.bias", model.decoder.classifier.bias, False


def keras_to_torch_layout(model: keras.Model, dtype=np.float32) -> dict[str, np.ndarray]:
    """The Keras model's weights as a PyTorch state_dict of NumPy arrays."""
    state = {}
    for name, variable, transposed in _variables(model):
        value = np.asarray(variable.numpy(), dtype=dtype)
        state[name] = np.ascontiguousarray(value.T) if transposed else value
    return state


def load_torch_layout(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Assign PyTorch-layout arrays to the Keras model; every name must be there, with its shape."""
    expected = [name for name, _, _ in _variables(model)]
    if set(state) != set(expected):
        missing, unknown = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise UserError(f"GNMT weights: missing {missing[:3]}, unexpected {unknown[:3]}")
    for name, variable, transposed in _variables(model):
        value = np.asarray(state[name])
        value = value.T if transposed else value
        if tuple(value.shape) != tuple(variable.shape):
            raise UserError(f"GNMT weights: {name} has shape {tuple(np.shape(state[name]))}, the model needs "
                            f"{tuple(variable.shape[::-1] if transposed else variable.shape)}")
        variable.assign(value.astype(variable.dtype))


def torch_to_keras(torch_model, keras_model: keras.Model) -> None:
    """Copy a PyTorch GNMT (pytorch/model.py) into a Keras GNMT of the same sizes."""
    load_torch_layout(keras_model, {name: tensor.detach().cpu().numpy() for name, tensor in torch_model.state_dict().items()})


def keras_to_torch(keras_model: keras.Model, torch_model) -> None:
    """Copy a Keras GNMT into a PyTorch GNMT of the same sizes (its `load_numpy`)."""
    torch_model.load_numpy(keras_to_torch_layout(keras_model, np.float64))


def sizes_from_state(state: dict[str, np.ndarray]) -> dict:
    """The GNMT constructor arguments a state_dict implies."""
    try:
        vocab_size, hidden = state["embedder.weight"].shape
        layers = 1 + max(int(name.split(".")[2]) for name in state if name.startswith("encoder.rnn_layers."))
    except (KeyError, ValueError, AttributeError) as error:
        raise UserError(f"not a GNMT state_dict ({error})") from None
    return {"vocab_size": int(vocab_size), "hidden_size": int(hidden), "num_layers": int(layers)}


def _read_torch_file(path: Path) -> dict[str, np.ndarray]:
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as error:
        raise UserError(f"{path}: not a PyTorch file ({error})") from None
    state = payload.get("model", payload) if isinstance(payload, dict) else None  # harness payload or state_dict
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds no state_dict")
    return {name: tensor.detach().cpu().float().numpy() for name, tensor in state.items()}


def convert_file(source: str | Path, destination: str | Path) -> Path:
    """`.pt` (a state_dict or a harness torch payload) -> Keras `.weights.h5`."""
    from translation.gnmt.tensorflow.model import GNMT

    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if not (source.suffix == ".pt" and destination.name.endswith(".weights.h5")):
        raise UserError(f"convert {source} -> {destination}: expected .pt -> .weights.h5 "
                        "(the other way: keras_to_torch in Python, the Keras model gives its sizes)")
    state = _read_torch_file(source)
    model = GNMT(**sizes_from_state(state))
    model.build()
    load_torch_layout(model, state)
    model.save_weights(destination)
    return destination


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m translation.gnmt.tensorflow.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a PyTorch .pt (state_dict or harness payload)")
    parser.add_argument("destination", help="a Keras .weights.h5")
    args = parser.parse_args(argv)
    print(convert_file(args.source, args.destination))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
