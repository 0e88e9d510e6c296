"""Transformer weights between PyTorch and Keras, one to one (the layer names are the same in both models).

The interchange format is the PyTorch `state_dict` as NumPy arrays (weights.py names and layouts):
the shared embedding is the same array in both frameworks; an nn.Linear `weight` is (out, in) where
a Dense `kernel` is (in, out), so it is transposed; biases and layer-norm scales (`weight` ->
`gamma`) and offsets (`bias` -> `beta`) are copied.

    state = keras_to_torch_layout(keras_model)        # {"encoder_stack.layers.0.ffn.layer.filter_layer.weight": ...}
    load_torch_layout(keras_model, state)              # the other way
    torch_to_keras(torch_model, keras_model), keras_to_torch(keras_model, torch_model)

    python -m translation.transformer.tensorflow.convert model.pt model.weights.h5   # a state_dict or a harness payload

Nothing here imports torch at module level, so the TensorFlow image needs no PyTorch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harness.convert import DENSE, Row, Table, command_line

if TYPE_CHECKING:
    import keras


def _norm(prefix: str, layer) -> Iterator[Row]:
    yield Row(f"{prefix}.weight", layer.gamma)
    yield Row(f"{prefix}.bias", layer.beta)


def _wrapper(prefix: str, wrapper) -> Iterator[Row]:
    yield from _norm(f"{prefix}.layer_norm", wrapper.layer_norm)
    inner = wrapper.layer
    if hasattr(inner, "q"):  # attention: four bias-free projections
        for name in ("q", "k", "v", "output_transform"):
            yield Row(f"{prefix}.layer.{name}.weight", getattr(inner, name).kernel, DENSE)
    else:  # FFN
        for name in ("filter_layer", "output_layer"):
            dense = getattr(inner, name)
            yield Row(f"{prefix}.layer.{name}.weight", dense.kernel, DENSE)
            yield Row(f"{prefix}.layer.{name}.bias", dense.bias)


def _variables(model: keras.Model) -> Iterator[Row]:
    """The name table (harness/convert.py): every parameter in PyTorch's order (weights.py)."""
    yield Row("embedding_softmax_layer.shared_weights", model.embedding_softmax_layer.shared_weights)
    for n, layer in enumerate(model.encoder_stack.stack):
        yield from _wrapper(f"encoder_stack.layers.{n}.self_attention", layer.self_attention)
        yield from _wrapper(f"encoder_stack.layers.{n}.ffn", layer.ffn)
    yield from _norm("encoder_stack.output_normalization", model.encoder_stack.output_normalization)
    for n, layer in enumerate(model.decoder_stack.stack):
        yield from _wrapper(f"decoder_stack.layers.{n}.self_attention", layer.self_attention)
        yield from _wrapper(f"decoder_stack.layers.{n}.encdec_attention", layer.encdec_attention)
        yield from _wrapper(f"decoder_stack.layers.{n}.ffn", layer.ffn)
    yield from _norm("decoder_stack.output_normalization", model.decoder_stack.output_normalization)


TRANSFORMER_WEIGHTS = Table("Transformer", _variables, dtype=np.float32)  # keras_to_torch_layout in float32 unless asked
keras_to_torch_layout, load_torch_layout = TRANSFORMER_WEIGHTS.keras_to_torch_layout, TRANSFORMER_WEIGHTS.load_torch_layout
torch_to_keras, keras_to_torch = TRANSFORMER_WEIGHTS.torch_to_keras, TRANSFORMER_WEIGHTS.keras_to_torch


def sizes_from_state(state: dict[str, np.ndarray]) -> dict:
    """The Transformer constructor arguments a state_dict implies (heads cannot be read from weights);
    a KeyError, ValueError or AttributeError where it is not a Transformer state_dict."""
    vocab_size, hidden = state["embedding_softmax_layer.shared_weights"].shape
    layers = 1 + max(int(name.split(".")[2]) for name in state if name.startswith("encoder_stack.layers."))
    filter_size = state["encoder_stack.layers.0.ffn.layer.filter_layer.weight"].shape[0]
    return {"vocab_size": int(vocab_size), "hidden_size": int(hidden), "num_hidden_layers": int(layers),
            "filter_size": int(filter_size)}


def convert_file(source: str | Path, destination: str | Path, num_heads: int) -> Path:
    """`.pt` (a state_dict or a harness torch payload) -> Keras `.weights.h5` (the number of heads is
    not in the weights: give the model's)."""
    from translation.transformer.tensorflow.model import Transformer

    return TRANSFORMER_WEIGHTS.convert_file(source, destination, functools.partial(Transformer, num_heads=num_heads),
                                            sizes_from_state)


def main(argv: list[str] | None = None) -> int:
    return command_line(argv, "python -m translation.transformer.tensorflow.convert", __doc__, convert_file, options={
        "--num-heads": {"type": int, "default": 16, "help": "attention heads (not recorded in the weights)"}})


if __name__ == "__main__":
    raise SystemExit(main())
