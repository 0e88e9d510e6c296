"""GNMT's parameters: names, shapes and initial values, the same in both frameworks.

Names are the PyTorch state_dict's (pytorch/model.py, the reference's module names:
seq2seq/models/gnmt.py, encoder.py, decoder.py, attention.py, with the shared embedding held once
at the top as `embedder`); tensorflow/convert.py maps them one to one onto the Keras variables.
Initial values are drawn here in NumPy from the seed, so both frameworks start from the same numbers,
with the reference's initializers:

- embedding, LSTM input-hidden and hidden-hidden weights, LSTM input-hidden biases, attention
  query/key projections and attention vector, classifier weight and bias: uniform(-0.1, 0.1)
  (utils.init_lstm_, init_weight=0.1);
- LSTM hidden-hidden biases: zeros (init_lstm_);
- the attention's normalize_scalar: 1 / sqrt(hidden_size), normalize_bias: zeros (reset_parameters).

PyTorch's LSTM gate order (input, forget, cell, output) is Keras's (i, f, c, o); both keep two
biases (tensorflow/model.py's LSTM cell splits Keras's one into bias_ih + bias_hh).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

LSTM_SUFFIXES = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def _lstm(prefix: str, input_size: int, hidden: int, bidirectional: bool = False) -> Iterator[tuple[str, tuple[int, ...]]]:
    for direction in ("", "_reverse") if bidirectional else ("",):
        yield f"{prefix}.weight_ih_l0{direction}", (4 * hidden, input_size)
        yield f"{prefix}.weight_hh_l0{direction}", (4 * hidden, hidden)
        yield f"{prefix}.bias_ih_l0{direction}", (4 * hidden,)
        yield f"{prefix}.bias_hh_l0{direction}", (4 * hidden,)


def weight_shapes(vocab_size: int, hidden: int, layers: int) -> dict[str, tuple[int, ...]]:
    """{state_dict name: shape} in the order of pytorch/model.py's state_dict (nn.Linear weights are (out, in))."""
    shapes = {"embedder.weight": (vocab_size, hidden)}
    shapes.update(_lstm("encoder.rnn_layers.0", hidden, hidden, bidirectional=True))
    shapes.update(_lstm("encoder.rnn_layers.1", 2 * hidden, hidden))
    for n in range(2, layers):
        shapes.update(_lstm(f"encoder.rnn_layers.{n}", hidden, hidden))
    shapes.update(_lstm("decoder.att_rnn.rnn", hidden, hidden))
    shapes["decoder.att_rnn.attn.linear_att"] = (hidden,)
    shapes["decoder.att_rnn.attn.normalize_scalar"] = (1,)
    shapes["decoder.att_rnn.attn.normalize_bias"] = (hidden,)
    shapes["decoder.att_rnn.attn.linear_q.weight"] = (hidden, hidden)
    shapes["decoder.att_rnn.attn.linear_k.weight"] = (hidden, hidden)
    for n in range(layers - 1):
        shapes.update(_lstm(f"decoder.rnn_layers.{n}", 2 * hidden, hidden))
    shapes["decoder.classifier.classifier.weight"] = (vocab_size, hidden)
    shapes["decoder.classifier.classifier.bias"] = (vocab_size,)
    return shapes


def parameter_count(vocab_size: int, hidden: int, layers: int) -> int:
    """Trainable parameters, written out from the architecture (not from a model). An LSTM from
    `i` inputs to `h` units has 4h(i + h) weights and two biases of 4h. Encoder: a bidirectional
    LSTM h->h, an LSTM 2h->h, layers-2 LSTMs h->h. Decoder: the attention LSTM h->h, the attention
    (q and k projections h x h, the vector, its scalar and bias), layers-1 LSTMs 2h->h, the
    classifier h->vocab with bias. The shared embedding vocab x h, once."""
    def lstm(inputs: int) -> int:
        return 4 * hidden * (inputs + hidden) + 8 * hidden

    encoder = 2 * lstm(hidden) + lstm(2 * hidden) + (layers - 2) * lstm(hidden)
    attention = 2 * hidden * hidden + hidden + 1 + hidden
    decoder = lstm(hidden) + attention + (layers - 1) * lstm(2 * hidden) + hidden * vocab_size + vocab_size
    return vocab_size * hidden + encoder + decoder


def initial_weights(vocab_size: int, hidden: int, layers: int, seed: int, init_weight: float = 0.1,
                    dtype=np.float32) -> dict[str, np.ndarray]:
    """The reference initialisation drawn from `seed` (module doc)."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape in weight_shapes(vocab_size, hidden, layers).items():
        if name.endswith(("bias_hh_l0", "bias_hh_l0_reverse", "normalize_bias")):
            value = np.zeros(shape)
        elif name.endswith("normalize_scalar"):
            value = np.full(shape, 1.0 / math.sqrt(hidden))
        else:
            value = rng.uniform(-init_weight, init_weight, shape)
        weights[name] = value.astype(dtype)
    return weights
