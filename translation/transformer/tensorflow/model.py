"""The Transformer in Keras 3, the mirror of pytorch/model.py (the MLPerf reference's architecture:
shared embedding and pre-softmax weights, sinusoidal positions, layer norm before each sub-layer and
after each stack, bias-free attention projections, FFN with ReLU; see pytorch/model.py's docstring).

Layer names and creation order are pytorch/model.py's module names (`embedding_softmax_layer`,
`encoder_stack` > `layers.N` > `self_attention` > `layer_norm` / `layer` > `q` ...), so
convert.py maps the weights one to one (a Dense kernel is the transpose of an nn.Linear weight).
Initial values come from weights.py, the same draws as the PyTorch model's under one seed.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from translation.vocabulary import PAD_ID

NEG_INF = -1e9  # reference model/transformer.py _NEG_INF
LAYER_NORM_EPSILON = 1e-6


def position_encoding(length, hidden_size: int, dtype=tf.float32, min_timescale: float = 1.0,
                      max_timescale: float = 1.0e4) -> tf.Tensor:
    """(length, hidden_size): sines then cosines (model_utils.get_position_encoding), computed in float64."""
    position = tf.cast(tf.range(length), tf.float64)
    num_timescales = hidden_size // 2
    increment = math.log(max_timescale / min_timescale) / max(num_timescales - 1, 1)
    inv_timescales = min_timescale * tf.exp(tf.cast(tf.range(num_timescales), tf.float64) * -increment)
    scaled_time = position[:, None] * inv_timescales[None, :]
    return tf.cast(tf.concat([tf.sin(scaled_time), tf.cos(scaled_time)], axis=1), dtype)


def padding_bias(ids: tf.Tensor, dtype) -> tf.Tensor:
    return (tf.cast(tf.equal(ids, PAD_ID), dtype) * NEG_INF)[:, None, None, :]


def causal_bias(length, dtype) -> tf.Tensor:
    upper = 1.0 - tf.linalg.band_part(tf.ones([length, length], dtype), -1, 0)
    return (upper * NEG_INF)[None, None]


class KeyValueCache:
    """A decoder self-attention layer's keys and values of the earlier positions. A plain object, not a
    dict: Keras' __call__ copies dict arguments, so the update would be lost (pytorch/model.py uses the dict)."""

    def __init__(self, k, v):
        self.k, self.v = k, v


class EmbeddingSharedWeights(keras.layers.Layer):
    def __init__(self, vocab_size: int, hidden_size: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.hidden_size = vocab_size, hidden_size

    def build(self, input_shape=None):
        self.shared_weights = self.add_weight(name="shared_weights", shape=(self.vocab_size, self.hidden_size),
                                              initializer="zeros")

    def call(self, ids):
        embeddings = tf.gather(self.shared_weights, ids) * self.hidden_size ** 0.5
        return embeddings * tf.cast(tf.not_equal(ids, PAD_ID), embeddings.dtype)[..., None]

    def linear(self, x):
        return tf.matmul(x, self.shared_weights, transpose_b=True)


class Attention(keras.layers.Layer):
    def __init__(self, hidden_size: int, num_heads: int, attention_dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.num_heads = hidden_size, num_heads
        dtype = kwargs.get("dtype")
        self.q = keras.layers.Dense(hidden_size, use_bias=False, kernel_initializer="zeros", name="q", dtype=dtype)
        self.k = keras.layers.Dense(hidden_size, use_bias=False, kernel_initializer="zeros", name="k", dtype=dtype)
        self.v = keras.layers.Dense(hidden_size, use_bias=False, kernel_initializer="zeros", name="v", dtype=dtype)
        self.output_transform = keras.layers.Dense(hidden_size, use_bias=False, kernel_initializer="zeros",
                                                   name="output_transform", dtype=dtype)
        self.dropout = keras.layers.Dropout(attention_dropout, dtype=dtype)

    def build(self, input_shape=None):
        for dense in (self.q, self.k, self.v, self.output_transform):
            dense.build((None, None, self.hidden_size))

    def split_heads(self, x):
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], self.num_heads, self.hidden_size // self.num_heads])
        return tf.transpose(x, [0, 2, 1, 3])

    def call(self, x, y, bias, cache=None, training=False):
        q, k, v = self.q(x), self.k(y), self.v(y)
        if cache is not None:  # decoding: keys and values of the earlier positions
            k = tf.concat([cache.k, k], axis=1)
            v = tf.concat([cache.v, v], axis=1)
            cache.k, cache.v = k, v
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        q = q * (self.hidden_size // self.num_heads) ** -0.5
        logits = tf.matmul(q, k, transpose_b=True)
        if bias is not None:
            logits += bias
        weights = self.dropout(tf.nn.softmax(logits), training=training)
        out = tf.transpose(tf.matmul(weights, v), [0, 2, 1, 3])
        shape = tf.shape(out)
        return self.output_transform(tf.reshape(out, [shape[0], shape[1], self.hidden_size]))


class SelfAttention(Attention):
    def call(self, x, bias, cache=None, training=False):
        return super().call(x, x, bias, cache, training=training)


class FeedForwardNetwork(keras.layers.Layer):
    def __init__(self, hidden_size: int, filter_size: int, relu_dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size, self.filter_size = hidden_size, filter_size
        dtype = kwargs.get("dtype")
        self.filter_layer = keras.layers.Dense(filter_size, activation="relu", kernel_initializer="zeros",
                                               name="filter_layer", dtype=dtype)
        self.output_layer = keras.layers.Dense(hidden_size, kernel_initializer="zeros", name="output_layer", dtype=dtype)
        self.dropout = keras.layers.Dropout(relu_dropout, dtype=dtype)

    def build(self, input_shape=None):
        self.filter_layer.build((None, None, self.hidden_size))
        self.output_layer.build((None, None, self.filter_size))

    def call(self, x, keep=None, training=False):
        output = self.output_layer(self.dropout(self.filter_layer(x), training=training))
        return output if keep is None else output * keep


class PrePostProcessingWrapper(keras.layers.Layer):
    """x + dropout(layer(layer_norm(x))): the reference's normalization placement."""

    def __init__(self, layer: keras.layers.Layer, hidden_size: int, postprocess_dropout: float, **kwargs):
        super().__init__(**kwargs)
        dtype = kwargs.get("dtype")
        self.hidden_size = hidden_size
        self.layer_norm = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, name="layer_norm", dtype=dtype)
        self.layer = layer
        self.dropout = keras.layers.Dropout(postprocess_dropout, dtype=dtype)

    def build(self, input_shape=None):
        self.layer_norm.build((None, None, self.hidden_size))
        self.layer.build()

    def call(self, x, *args, training=False, **kwargs):
        y = self.layer(self.layer_norm(x), *args, training=training, **kwargs)
        return x + self.dropout(y, training=training)


class EncoderLayer(keras.layers.Layer):
    def __init__(self, hidden_size, num_heads, filter_size, dropouts, **kwargs):
        super().__init__(**kwargs)
        postprocess, attention, relu = dropouts
        dtype = kwargs.get("dtype")
        self.self_attention = PrePostProcessingWrapper(SelfAttention(hidden_size, num_heads, attention, name="layer", dtype=dtype),
                                                       hidden_size, postprocess, name="self_attention", dtype=dtype)
        self.ffn = PrePostProcessingWrapper(FeedForwardNetwork(hidden_size, filter_size, relu, name="layer", dtype=dtype),
                                            hidden_size, postprocess, name="ffn", dtype=dtype)

    def build(self, input_shape=None):
        self.self_attention.build()
        self.ffn.build()

    def call(self, x, bias, keep, training=False):
        x = self.self_attention(x, bias, training=training)
        return self.ffn(x, keep, training=training)


class DecoderLayer(keras.layers.Layer):
    def __init__(self, hidden_size, num_heads, filter_size, dropouts, **kwargs):
        super().__init__(**kwargs)
        postprocess, attention, relu = dropouts
        dtype = kwargs.get("dtype")
        self.self_attention = PrePostProcessingWrapper(SelfAttention(hidden_size, num_heads, attention, name="layer", dtype=dtype),
                                                       hidden_size, postprocess, name="self_attention", dtype=dtype)
        self.encdec_attention = PrePostProcessingWrapper(Attention(hidden_size, num_heads, attention, name="layer", dtype=dtype),
                                                         hidden_size, postprocess, name="encdec_attention", dtype=dtype)
        self.ffn = PrePostProcessingWrapper(FeedForwardNetwork(hidden_size, filter_size, relu, name="layer", dtype=dtype),
                                            hidden_size, postprocess, name="ffn", dtype=dtype)

    def build(self, input_shape=None):
        self.self_attention.build()
        self.encdec_attention.build()
        self.ffn.build()

    def call(self, x, encoder_outputs, self_bias, encdec_bias, cache=None, training=False):
        x = self.self_attention(x, self_bias, cache=cache, training=training)
        x = self.encdec_attention(x, encoder_outputs, encdec_bias, training=training)
        return self.ffn(x, training=training)


class EncoderStack(keras.layers.Layer):
    def __init__(self, hidden_size, layers, num_heads, filter_size, dropouts, **kwargs):
        super().__init__(**kwargs)
        dtype = kwargs.get("dtype")
        self.hidden_size = hidden_size
        self.stack = [EncoderLayer(hidden_size, num_heads, filter_size, dropouts, name=f"layers.{n}", dtype=dtype)
                      for n in range(layers)]
        self.output_normalization = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON,
                                                                    name="output_normalization", dtype=dtype)

    def build(self, input_shape=None):
        for layer in self.stack:
            layer.build()
        self.output_normalization.build((None, None, self.hidden_size))

    def call(self, x, bias, keep, training=False):
        for layer in self.stack:
            x = layer(x, bias, keep, training=training)
        return self.output_normalization(x)


class DecoderStack(keras.layers.Layer):
    def __init__(self, hidden_size, layers, num_heads, filter_size, dropouts, **kwargs):
        super().__init__(**kwargs)
        dtype = kwargs.get("dtype")
        self.hidden_size = hidden_size
        self.stack = [DecoderLayer(hidden_size, num_heads, filter_size, dropouts, name=f"layers.{n}", dtype=dtype)
                      for n in range(layers)]
        self.output_normalization = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON,
                                                                    name="output_normalization", dtype=dtype)

    def build(self, input_shape=None):
        for layer in self.stack:
            layer.build()
        self.output_normalization.build((None, None, self.hidden_size))

    def call(self, x, encoder_outputs, self_bias, encdec_bias, cache=None, training=False):
        for n, layer in enumerate(self.stack):
            x = layer(x, encoder_outputs, self_bias, encdec_bias, cache=cache[n] if cache is not None else None,
                      training=training)
        return self.output_normalization(x)


class Transformer(keras.Model):
    def __init__(self, vocab_size: int, hidden_size: int, num_hidden_layers: int, num_heads: int, filter_size: int,
                 layer_postprocess_dropout: float = 0.1, attention_dropout: float = 0.1, relu_dropout: float = 0.1,
                 dtype=None, **kwargs):
        super().__init__(name="transformer", dtype=dtype, **kwargs)
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        dropouts = (layer_postprocess_dropout, attention_dropout, relu_dropout)
        self.embedding_softmax_layer = EmbeddingSharedWeights(vocab_size, hidden_size, name="embedding_softmax_layer",
                                                              dtype=dtype)
        self.encoder_stack = EncoderStack(hidden_size, num_hidden_layers, num_heads, filter_size, dropouts,
                                          name="encoder_stack", dtype=dtype)
        self.decoder_stack = DecoderStack(hidden_size, num_hidden_layers, num_heads, filter_size, dropouts,
                                          name="decoder_stack", dtype=dtype)
        self.input_dropout = keras.layers.Dropout(layer_postprocess_dropout, dtype=dtype)

    def build(self, input_shape=None):
        """Create every variable in PyTorch's parameter order (the one convert.py walks)."""
        self.embedding_softmax_layer.build()
        self.encoder_stack.build()
        self.decoder_stack.build()
        self.built = True

    def encode(self, inputs, training=False):
        embedded = self.embedding_softmax_layer(inputs)
        dtype = embedded.dtype
        bias = padding_bias(inputs, dtype)
        x = embedded + position_encoding(tf.shape(inputs)[1], self.hidden_size, dtype)
        x = self.input_dropout(x, training=training)
        keep = tf.cast(tf.not_equal(inputs, PAD_ID), dtype)[..., None]
        return self.encoder_stack(x, bias, keep, training=training), bias

    def decode(self, targets, encoder_outputs, bias, training=False):
        embedded = self.embedding_softmax_layer(targets)
        x = tf.pad(embedded, [[0, 0], [1, 0], [0, 0]])[:, :-1]
        length = tf.shape(x)[1]
        x = x + position_encoding(length, self.hidden_size, x.dtype)
        x = self.input_dropout(x, training=training)
        outputs = self.decoder_stack(x, encoder_outputs, causal_bias(length, x.dtype), bias, training=training)
        return self.embedding_softmax_layer.linear(outputs)

    def call(self, inputs, targets, training=False):
        encoder_outputs, bias = self.encode(inputs, training=training)
        return self.decode(targets, encoder_outputs, bias, training=training)

    def initial_cache(self, encoder_outputs, bias) -> dict:
        batch = tf.shape(encoder_outputs)[0]
        empty = tf.zeros([batch, 0, self.hidden_size], encoder_outputs.dtype)
        cache = {f"layer_{n}": {"k": empty, "v": empty} for n in range(self.num_hidden_layers)}
        cache["encoder_outputs"], cache["encoder_decoder_attention_bias"] = encoder_outputs, bias
        return cache

    def decode_step(self, ids, step: int, cache: dict):
        x = self.embedding_softmax_layer(ids[:, -1:])
        x = x + position_encoding(step + 1, self.hidden_size, x.dtype)[step:step + 1]
        layers = [KeyValueCache(cache[f"layer_{n}"]["k"], cache[f"layer_{n}"]["v"]) for n in range(self.num_hidden_layers)]
        outputs = self.decoder_stack(x, cache["encoder_outputs"], None, cache["encoder_decoder_attention_bias"],
                                     cache=layers)
        cache = {**cache, **{f"layer_{n}": {"k": layer.k, "v": layer.v} for n, layer in enumerate(layers)}}
        return self.embedding_softmax_layer.linear(outputs)[:, 0], cache


def build_model(vocab_size: int, model_cfg, seed: int, dtype: str | None = None) -> Transformer:
    """The Transformer with the reference initialisation drawn from `seed` (identical to the PyTorch model's).
    Call it inside `strategy.scope()` so the variables are mirrored over the replicas."""
    from translation.transformer.tensorflow.convert import load_torch_layout
    from translation.transformer.weights import initial_weights

    model = Transformer(vocab_size, model_cfg.hidden_size, model_cfg.num_hidden_layers, model_cfg.num_heads,
                        model_cfg.filter_size, model_cfg.layer_postprocess_dropout, model_cfg.attention_dropout,
                        model_cfg.relu_dropout, dtype=dtype)
    model.build()
    load_torch_layout(model, initial_weights(vocab_size, model_cfg.hidden_size, model_cfg.num_hidden_layers,
                                             model_cfg.filter_size, seed))
    return model


def smoothed_cross_entropy(logits, targets, smoothing: float):
    """(sum of per-token losses, number of real tokens): pytorch/model.py's `smoothed_cross_entropy`
    (the reference's padded_cross_entropy_loss with t2t label smoothing)."""
    vocab = logits.shape[-1]
    confidence, low = 1.0 - smoothing, smoothing / (vocab - 1)
    logits = logits if logits.dtype == tf.float64 else tf.cast(logits, tf.float32)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    label = tf.gather(log_probs, tf.cast(targets, tf.int32), axis=-1, batch_dims=2)
    xent = -(confidence - low) * label - low * tf.reduce_sum(log_probs, axis=-1)
    normalizing = -(confidence * math.log(confidence) + (vocab - 1) * low * math.log(low + 1e-20))
    weights = tf.cast(tf.not_equal(targets, PAD_ID), xent.dtype)
    return tf.reduce_sum((xent - normalizing) * weights), tf.reduce_sum(weights)

