"""Transformer weights between PyTorch and Keras, one to one (the layer names are the same in both models).

The interchange format is the PyTorch `state_dict` as NumPy arrays (weights.py names and layouts):
the shared embedding is the same array in both frameworks; an nn.Linear `weight` is (out, in) where
a Dense `kernel` is (in, out), so it is transposed; biases and layer-norm scales (`weight` ->
`gamma`) and offsets (`bias` -> `beta`) are copied.

    state = keras_to_torch_layout(keras_model)        # {"encoder_stack.layers.0.ffn.layer.filter_layer.weight": ...}
    load_torch_layout(keras_model, state)              # the other way
    torch_to_keras(torch_model, keras_model), keras_to_torch(keras_model, torch_model)

    python -m translation.transformer.tensorflow.convert model.pt model.weights.h5   # a state_dict or a
    python -m translation.transformer.tensorflow.convert model.weights.h5 model.pt   # harness payload

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


def _norm(prefix: str, layer) -> Iterator[tuple[str, object, bool]]:
    yield f"{prefix}.weight", layer.gamma, False
    yield f"{prefix}.bias", layer.beta, False


def _wrapper(prefix: str, wrapper) -> Iterator[tuple[str, object, bool]]:
    yield from _norm(f"{prefix}.layer_norm", wrapper.layer_norm)
    inner = wrapper.layer
    if hasattr(inner, "q"):  # attention: four bias-free projections
        for name in ("q", "k", "v", "output_transform"):
            yield f"{prefix}.layer.{name}.weight", getattr(inner, name).kernel, True
    else:  # FFN
        for name in ("filter_layer", "output_layer"):
            dense = getattr(inner, name)
            yield f"{prefix}.layer.{name}.weight", dense.kernel, True
            yield f"{prefix}.layer.{name}.bias", dense.bias, False


def _variables(model: keras.Model) -> Iterator[tuple[str, object, bool]]:
    """(state_dict name, Keras variable, transposed?) for every parameter, in PyTorch's order (weights.py)."""
    yield "embedding_softmax_layer.shared_weights", model.embedding_softmax_layer.shared_weights, False
    for n, layer in enumerate(model.encoder_stack.stack):
        yield from _wrapper(f"encoder_stack.layers.{n}.self_attention", layer.self_attention)
        yield from _wrapper(f"encoder_stack.layers.{n}.ffn", layer.ffn)
    yield from _norm("encoder_stack.output_normalization", model.encoder_stack.output_normalization)
    for n, layer in enumerate(model.decoder_stack.stack):
        yield from _wrapper(f"decoder_stack.layers.{n}.self_attention", layer.self_attention)
        yield from _wrapper(f"decoder_stack.layers.{n}.encdec_attention", layer.encdec_attention)
        yield from _wrapper(f"decoder_stack.layers.{n}.ffn", layer.ffn)
    yield from _norm("decoder_stack.output_normalization", model.decoder_stack.output_normalization)


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
        raise UserError(f"Transformer weights: missing {missing[:3]}, unexpected {unknown[:3]}")
    for name, variable, transposed in _variables(model):
        value = np.asarray(state[name])
        value = value.T if transposed else value
        if tuple(value.shape) != tuple(variable.shape):
            raise UserError(f"Transformer weights: {name} has shape {tuple(np.shape(state[name]))}, the model needs "
                            f"{tuple(variable.shape[::-1] if transposed else variable.shape)}")
        variable.assign(value.astype(variable.dtype))


def torch_to_keras(torch_model, keras_model: keras.Model) -> None:
    """Copy a PyTorch Transformer (pytorch/model.py) into a Keras Transformer of the same sizes."""
    load_torch_layout(keras_model, {name: tensor.detach().cpu().numpy() for name, tensor in torch_model.state_dict().items()})


def keras_to_torch(keras_model: keras.Model, torch_model) -> None:
    """Copy a Keras Transformer into a PyTorch Transformer of the same sizes (its `load_numpy`)."""
    torch_model.load_numpy(keras_to_torch_layout(keras_model, np.float64))


def sizes_from_state(state: dict[str, np.ndarray]) -> dict:
    """The Transformer constructor arguments a state_dict implies (heads cannot be read from weights)."""
    try:
        vocab_size, hidden = state["embedding_softmax_layer.shared_weights"].shape
        layers = 1 + max(int(name.split(".")[2]) for name in state if name.startswith("encoder_stack.layers."))
        filter_size = state["encoder_stack.layers.0.ffn.layer.filter_layer.weight"].shape[0]
    except (KeyError, ValueError, AttributeError) as error:
        raise UserError(f"not a Transformer state_dict ({error})") from None
    return {"vocab_size": int(vocab_size), "hidden_size": int(hidden), "num_hidden_layers": int(layers),
            "filter_size": int(filter_size)}


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


def convert_file(source: str | Path, destination: str | Path, num_heads: int) -> Path:
    """`.pt` (a state_dict or a harness torch payload) -> Keras `.weights.h5`, or the reverse (the
    Keras file's sizes are read from its `.pt` twin's layout: give the same sizes back)."""
    from translation.transformer.tensorflow.model import Transformer

    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if source.suffix == ".pt" and destination.name.endswith(".weights.h5"):
        state = _read_torch_file(source)
        model = Transformer(num_heads=num_heads, **sizes_from_state(state))
        model.build()
        load_torch_layout(model, state)
        model.save_weights(destination)
    else:
        raise UserError(f"convert {source} -> {destination}: expected .pt -> .weights.h5 "
                        "(the other way: keras_to_torch in Python, the Keras model gives its sizes)")
    return destination


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m translation.transformer.tensorflow.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a PyTorch .pt (state_dict or harness payload)")
    parser.add_argument("destination", help="a Keras .weights.h5")
    parser.add_argument("--num-heads", type=int, default=16, help="attention heads (not recorded in the weights)")
    args = parser.parse_args(argv)
    print(convert_file(args.source, args.destination, args.num_heads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
