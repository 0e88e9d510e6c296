"""GNMT v2 in Keras 3, the mirror of pytorch/model.py (the MLPerf reference's architecture: shared
embedding, a bidirectional then unidirectional residual LSTM encoder, a decoder whose first LSTM
queries a normalized Bahdanau attention whose context feeds every later layer; see
pytorch/model.py's docstring).

Layers are `keras.layers.LSTM` (cuDNN on GPUs) with one change: its cell keeps two biases,
`bias_ih` and `bias_hh`, added together where Keras uses its one `bias` (as cuDNN and PyTorch
do). The reference trains both of PyTorch's biases, each with its own Adam state; a single Keras
bias would get half the update, so the two frameworks would not train alike.

The bidirectional first layer reads each sentence's real tokens only, as PyTorch's packed
sequence: the backward LSTM runs over the sequence reversed within its length
(`tf.reverse_sequence`), and padding positions of its output are zero.

Layer names and creation order are pytorch/model.py's module names (`embedder`, `encoder` >
`rnn_layers.0` > `forward` / `backward`, `decoder` > `att_rnn` > `rnn` / `attn`, ...), so
convert.py maps the weights one to one. Initial values come from weights.py.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from translation.bpe import PAD_ID

MASKED_SCORE = -65504.0  # reference attention.py


class TwoBiasLSTMCell(keras.layers.LSTMCell):
    """Keras's LSTM cell with the bias split in two trainable halves, bias_ih + bias_hh (module doc)."""

    def build(self, input_shape):
        keras.layers.Layer.build(self, input_shape)
        units = self.units
        self.kernel = self.add_weight(shape=(input_shape[-1], 4 * units), name="kernel", initializer="zeros")
        self.recurrent_kernel = self.add_weight(shape=(units, 4 * units), name="recurrent_kernel", initializer="zeros")
        self.bias_ih = self.add_weight(shape=(4 * units,), name="bias_ih", initializer="zeros")
        self.bias_hh = self.add_weight(shape=(4 * units,), name="bias_hh", initializer="zeros")
        self.built = True

    @property
    def bias(self):
        return self.bias_ih + self.bias_hh


class LSTM(keras.layers.LSTM):
    """keras.layers.LSTM returning (sequence, h, c), with the two-bias cell."""

    def __init__(self, units: int, **kwargs):
        super().__init__(units, return_sequences=True, return_state=True, **kwargs)
        self.cell = TwoBiasLSTMCell.from_config(self.cell.get_config())


class BidirectionalLSTM(keras.layers.Layer):
    """PyTorch's nn.LSTM(bidirectional=True) on packed sequences: forward and backward outputs
    concatenated, each over the real tokens, zero on padding."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.forward_layer = LSTM(units, name="forward", dtype=kwargs.get("dtype"))
        self.backward_layer = LSTM(units, name="backward", dtype=kwargs.get("dtype"))

    def build(self, input_shape):
        self.forward_layer.build(input_shape)
        self.backward_layer.build(input_shape)

    def call(self, x, lengths, mask):
        forward = self.forward_layer(x)[0]
        backward = self.backward_layer(tf.reverse_sequence(x, lengths, seq_axis=1, batch_axis=0))[0]
        backward = tf.reverse_sequence(backward, lengths, seq_axis=1, batch_axis=0)
        return tf.concat([forward, backward], axis=-1) * tf.cast(tf.logical_not(mask), x.dtype)[..., None]


class BahdanauAttention(keras.layers.Layer):
    def __init__(self, num_units: int, **kwargs):
        super().__init__(**kwargs)
        dtype = kwargs.get("dtype")
        self.num_units = num_units
        self.linear_q = keras.layers.Dense(num_units, use_bias=False, kernel_initializer="zeros", name="linear_q", dtype=dtype)
        self.linear_k = keras.layers.Dense(num_units, use_bias=False, kernel_initializer="zeros", name="linear_k", dtype=dtype)

    def build(self, input_shape=None):
        n = self.num_units
        self.linear_att = self.add_weight(shape=(n,), name="linear_att", initializer="zeros")
        self.normalize_scalar = self.add_weight(shape=(1,), name="normalize_scalar", initializer="zeros")
        self.normalize_bias = self.add_weight(shape=(n,), name="normalize_bias", initializer="zeros")
        self.linear_q.build((None, None, n))
        self.linear_k.build((None, None, n))

    def call(self, query, keys, processed_keys, mask):
        """pytorch/model.py BahdanauAttention.forward: (context (b, t_q, n), weights (b, t_q, t_k))."""
        processed_query = self.linear_q(query)
        sum_qk = processed_query[:, :, None, :] + processed_keys[:, None, :, :] + self.normalize_bias
        linear_att = self.linear_att / tf.norm(self.linear_att) * self.normalize_scalar
        # a plain matrix product: tf.linalg.matvec's broadcast batch matmul segfaults under oneDNN
        # (TensorFlow 2.21 CPU, batch x 1 x length x units by units)
        scores = tf.tensordot(tf.tanh(sum_qk), linear_att, axes=[[3], [0]])
        scores = tf.where(mask[:, None, :], tf.constant(MASKED_SCORE, scores.dtype), scores)
        weights = tf.nn.softmax(scores, axis=-1)
        return tf.matmul(weights, keys), weights


class RecurrentAttention(keras.layers.Layer):
    def __init__(self, hidden_size: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        dtype = kwargs.get("dtype")
        self.hidden_size = hidden_size
        self.rnn = LSTM(hidden_size, name="rnn", dtype=dtype)
        self.attn = BahdanauAttention(hidden_size, name="attn", dtype=dtype)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)

    def build(self, input_shape=None):
        self.rnn.build((None, None, self.hidden_size))
        self.attn.build()

    def call(self, inputs, state, keys, processed_keys, mask, training=False):
        outputs, h, c = self.rnn(self.dropout(inputs, training=training), initial_state=state, training=training)
        context, scores = self.attn(outputs, keys, processed_keys, mask)
        return outputs, [h, c], context, scores


class ResidualRecurrentEncoder(keras.layers.Layer):
    def __init__(self, hidden_size: int, num_layers: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        dtype = kwargs.get("dtype")
        self.hidden_size = hidden_size
        self.rnn_layers = [BidirectionalLSTM(hidden_size, name="rnn_layers.0", dtype=dtype)]
        self.rnn_layers += [LSTM(hidden_size, name=f"rnn_layers.{n}", dtype=dtype) for n in range(1, num_layers)]
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)

    def build(self, input_shape=None):
        h = self.hidden_size
        self.rnn_layers[0].build((None, None, h))
        self.rnn_layers[1].build((None, None, 2 * h))
        for layer in self.rnn_layers[2:]:
            layer.build((None, None, h))

    def call(self, x, lengths, mask, training=False):
        x = self.rnn_layers[0](self.dropout(x, training=training), lengths, mask)
        x = self.rnn_layers[1](self.dropout(x, training=training), training=training)[0]
        for layer in self.rnn_layers[2:]:
            residual = x
            x = layer(self.dropout(x, training=training), training=training)[0] + residual
        return x


class ResidualRecurrentDecoder(keras.layers.Layer):
    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        dtype = kwargs.get("dtype")
        self.hidden_size = hidden_size
        self.att_rnn = RecurrentAttention(hidden_size, dropout, name="att_rnn", dtype=dtype)
        self.rnn_layers = [LSTM(hidden_size, name=f"rnn_layers.{n}", dtype=dtype) for n in range(num_layers - 1)]
        # "classifier.classifier": the reference's Classifier module wraps its Linear
        self.classifier = keras.layers.Dense(vocab_size, kernel_initializer="zeros", name="classifier", dtype=dtype)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)

    def build(self, input_shape=None):
        self.att_rnn.build()
        for layer in self.rnn_layers:
            layer.build((None, None, 2 * self.hidden_size))
        self.classifier.build((None, None, self.hidden_size))

    def call(self, x, keys, processed_keys, mask, states=None, training=False):
        """pytorch/model.py ResidualRecurrentDecoder.forward: (logits, attention, [h, c] per layer)."""
        states = states or [None] * (len(self.rnn_layers) + 1)
        x, state, context, scores = self.att_rnn(x, states[0], keys, processed_keys, mask, training=training)
        new_states = [state]
        for index, layer in enumerate(self.rnn_layers, start=1):
            residual = x
            x, h, c = layer(self.dropout(tf.concat([x, context], axis=2), training=training), initial_state=states[index],
                            training=training)
            new_states.append([h, c])
            if index > 1:
                x = x + residual
        return self.classifier(x), scores, new_states


class GNMT(keras.Model):
    def __init__(self, vocab_size: int, hidden_size: int = 1024, num_layers: int = 4, dropout: float = 0.2,
                 dtype=None, **kwargs):
        super().__init__(name="gnmt", dtype=dtype, **kwargs)
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.embedder = keras.layers.Embedding(vocab_size, hidden_size, embeddings_initializer="zeros", name="embedder",
                                               dtype=dtype)
        self.encoder = ResidualRecurrentEncoder(hidden_size, num_layers, dropout, name="encoder", dtype=dtype)
        self.decoder = ResidualRecurrentDecoder(vocab_size, hidden_size, num_layers, dropout, name="decoder", dtype=dtype)

    def build(self, input_shape=None):
        """Create every variable in PyTorch's parameter order (the one convert.py walks)."""
        self.embedder.build((None, None))
        self.encoder.build()
        self.decoder.build()
        self.built = True

    def encode(self, source, lengths, training=False):
        """(encoder outputs (b, t, h), linear_k(outputs), padding mask (b, t))."""
        lengths = tf.cast(lengths, tf.int32)
        mask = tf.range(tf.shape(source)[1])[None, :] >= lengths[:, None]
        keys = self.encoder(self.embedder(source), lengths, mask, training=training)
        return keys, self.decoder.att_rnn.attn.linear_k(keys), mask

    def call(self, source, lengths, decoder_inputs, training=False):
        keys, processed_keys, mask = self.encode(source, lengths, training=training)
        logits, _, _ = self.decoder(self.embedder(decoder_inputs), keys, processed_keys, mask, training=training)
        return logits

    def initial_cache(self, source, lengths) -> dict:
        keys, processed_keys, mask = self.encode(source, lengths)
        zeros = tf.zeros([tf.shape(source)[0], self.num_layers, self.hidden_size], keys.dtype)
        return {"keys": keys, "processed_keys": processed_keys, "mask": mask, "h": zeros, "c": zeros}

    def decode_step(self, words, cache: dict):
        """(logits (n, vocab), cache with the new states, attention (n, t)) after `words` (n,)."""
        states = [[cache["h"][:, i], cache["c"][:, i]] for i in range(self.num_layers)]
        logits, scores, new_states = self.decoder(self.embedder(words[:, None]), cache["keys"], cache["processed_keys"],
                                                  cache["mask"], states)
        h = tf.stack([state[0] for state in new_states], axis=1)
        c = tf.stack([state[1] for state in new_states], axis=1)
        return logits[:, 0], {**cache, "h": h, "c": c}, scores[:, 0]


def build_model(vocab_size: int, model_cfg, seed: int, dtype: str | None = None) -> GNMT:
    """GNMT with the reference initialisation drawn from `seed` (identical to the PyTorch model's).
    Call it inside `strategy.scope()` so the variables are mirrored over the replicas."""
    from translation.gnmt.tensorflow.convert import load_torch_layout
    from translation.gnmt.weights import initial_weights

    model = GNMT(vocab_size, model_cfg.hidden_size, model_cfg.num_layers, model_cfg.dropout, dtype=dtype)
    model.build()
    load_torch_layout(model, initial_weights(vocab_size, model_cfg.hidden_size, model_cfg.num_layers, seed,
                                             model_cfg.init_weight))
    return model


def smoothed_loss(logits, labels, smoothing: float):
    """(sum over real tokens of the label-smoothed loss, number of real tokens): pytorch/model.py's
    `smoothed_loss` (the reference's LabelSmoothing)."""
    logits = logits if logits.dtype == tf.float64 else tf.cast(logits, tf.float32)
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    nll = -tf.gather(log_probs, tf.cast(labels, tf.int32), axis=-1, batch_dims=2)
    smooth = -tf.reduce_mean(log_probs, axis=-1)
    weights = tf.cast(tf.not_equal(labels, PAD_ID), log_probs.dtype)
    return tf.reduce_sum(((1.0 - smoothing) * nll + smoothing * smooth) * weights), tf.reduce_sum(weights)
