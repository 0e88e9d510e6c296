"""The Transformer's parameters: names, shapes and initial values, the same in both frameworks.

Names are the PyTorch state_dict's (pytorch/model.py); tensorflow/convert.py maps them one to one
onto the Keras variables (tensorflow/model.py uses the same layer names). Initial values are drawn
here in NumPy from the seed, so both frameworks start from the same numbers:

- the shared embedding / pre-softmax matrix: normal(0, hidden_size^-0.5) (reference
  embedding_layer.py, `random_normal_initializer(0., hidden_size ** -0.5)`);
- every dense kernel: Glorot uniform, i.e. variance scaling with gain 1.0, fan_avg, uniform
  (reference transformer.py, `variance_scaling_initializer(initializer_gain=1.0, "fan_avg", "uniform")`);
- dense biases zero, layer-norm scales one and biases zero.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

ATTENTION_PROJECTIONS = ("q", "k", "v", "output_transform")  # reference attention_layer.py names, no biases


def _attention(prefix: str, hidden: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield f"{prefix}.layer_norm.weight", (hidden,)
    yield f"{prefix}.layer_norm.bias", (hidden,)
    for name in ATTENTION_PROJECTIONS:
        yield f"{prefix}.layer.{name}.weight", (hidden, hidden)


def _ffn(prefix: str, hidden: int, filter_size: int) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield f"{prefix}.layer_norm.weight", (hidden,)
    yield f"{prefix}.layer_norm.bias", (hidden,)
    yield f"{prefix}.layer.filter_layer.weight", (filter_size, hidden)
    yield f"{prefix}.layer.filter_layer.bias", (filter_size,)
    yield f"{prefix}.layer.output_layer.weight", (hidden, filter_size)
    yield f"{prefix}.layer.output_layer.bias", (hidden,)


def weight_shapes(vocab_size: int, hidden: int, layers: int, filter_size: int) -> dict[str, tuple[int, ...]]:
    """{state_dict name: shape} in the module order of pytorch/model.py (nn.Linear weights are (out, in))."""
    shapes = {"embedding_softmax_layer.shared_weights": (vocab_size, hidden)}
    for n in range(layers):
        shapes.update(_attention(f"encoder_stack.layers.{n}.self_attention", hidden))
        shapes.update(_ffn(f"encoder_stack.layers.{n}.ffn", hidden, filter_size))
    shapes["encoder_stack.output_normalization.weight"] = (hidden,)
    shapes["encoder_stack.output_normalization.bias"] = (hidden,)
    for n in range(layers):
        shapes.update(_attention(f"decoder_stack.layers.{n}.self_attention", hidden))
        shapes.update(_attention(f"decoder_stack.layers.{n}.encdec_attention", hidden))
        shapes.update(_ffn(f"decoder_stack.layers.{n}.ffn", hidden, filter_size))
    shapes["decoder_stack.output_normalization.weight"] = (hidden,)
    shapes["decoder_stack.output_normalization.bias"] = (hidden,)
    return shapes


def parameter_count(vocab_size: int, hidden: int, layers: int, filter_size: int) -> int:
    """Trainable parameters, written out from the architecture (not from a model): the shared
    embedding, per encoder layer 4 attention projections + FFN + 2 layer norms, per decoder layer 8
    projections + FFN + 3 layer norms, and the two final layer norms."""
    attention = 4 * hidden * hidden
    ffn = 2 * hidden * filter_size + filter_size + hidden
    norm = 2 * hidden
    encoder_layer = attention + ffn + 2 * norm
    decoder_layer = 2 * attention + ffn + 3 * norm
    return vocab_size * hidden + layers * (encoder_layer + decoder_layer) + 2 * norm


def initial_weights(vocab_size: int, hidden: int, layers: int, filter_size: int, seed: int,
                    dtype=np.float32) -> dict[str, np.ndarray]:
    """The reference initialisation drawn from `seed` (module doc), as float32 arrays by default."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(vocab_size, hidden, layers, filter_size).items():
        if name.endswith("shared_weights"):
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(hidden ** -0.5)
        elif "layer_norm" in name or "output_normalization" in name:
            value = np.ones(shape, np.float32) if name.endswith("weight") else np.zeros(shape, np.float32)
        elif name.endswith("bias"):
            value = np.zeros(shape, np.float32)
        else:  # dense kernel (out, in): Glorot uniform
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            value = rng.uniform(-limit, limit, shape).astype(np.float32)
        weights[name] = value.astype(dtype, copy=False)
    return weights
