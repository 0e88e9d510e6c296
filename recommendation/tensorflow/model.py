"""NeuMF in Keras 3 (He et al. 2017, "Neural Collaborative Filtering", sec. 3.4), as the MLPerf
reference (mlcommons/training recommendation/pytorch/neumf.py).

    GMF tower: mf_user_embed(u) * mf_item_embed(i)                         (factors)
    MLP tower: relu(mlp.k(...relu(mlp.0([mlp_user_embed(u), mlp_item_embed(i)]))))
    logit    : final([GMF, MLP])                                            (factors + last MLP size -> 1)

Layer names, creation order and the concatenation order are pytorch/model.py's, so the weights map
one to one (convert.py: a Dense kernel is the transpose of an nn.Linear weight). The initial values
come from recommendation/weights.py, the same NumPy draws as the PyTorch model's under one seed:
embeddings N(0, 0.01), MLP kernels Glorot uniform, the final kernel LeCun uniform, biases
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (the reference keeps nn.Linear's default bias init).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from harness import tf_runtime
from recommendation.tensorflow.convert import load_torch_layout
from recommendation.weights import initial_weights, weight_shapes


class NeuMF(keras.Model):
    def __init__(self, n_users: int, n_items: int, factors: int, mlp_layer_sizes: tuple[int, ...], **kwargs):
        super().__init__(name="neumf", **kwargs)
        weight_shapes(n_users, n_items, factors, tuple(mlp_layer_sizes))  # validates the sizes
        self.n_users, self.n_items = n_users, n_items
        self.factors = factors
        self.mlp_layer_sizes = tuple(mlp_layer_sizes)
        # Initializers only give the variables their dtype and shape: `build_model` overwrites them
        # with weights.initial_weights, the draws the PyTorch model starts from too.
        zeros = "zeros"
        self.mf_user_embed = keras.layers.Embedding(n_users, factors, zeros, name="mf_user_embed")
        self.mf_item_embed = keras.layers.Embedding(n_items, factors, zeros, name="mf_item_embed")
        self.mlp_user_embed = keras.layers.Embedding(n_users, mlp_layer_sizes[0] // 2, zeros, name="mlp_user_embed")
        self.mlp_item_embed = keras.layers.Embedding(n_items, mlp_layer_sizes[0] // 2, zeros, name="mlp_item_embed")
        self.mlp = [keras.layers.Dense(width, activation="relu", kernel_initializer=zeros, name=f"mlp.{index}")
                    for index, width in enumerate(mlp_layer_sizes[1:])]
        # The logit layer computes in float32 under a mixed policy: bf16 logits would make many of a
        # user's 1000 evaluation scores tie, and ties count against the positive (metrics.py).
        self.final = keras.layers.Dense(1, kernel_initializer=zeros, name="final", dtype=tf_runtime.logits_dtype())

    def build(self, input_shape=None) -> None:
        """Create every variable in PyTorch's parameter order (the one convert.py walks)."""
        for embedding in (self.mf_user_embed, self.mf_item_embed, self.mlp_user_embed, self.mlp_item_embed):
            embedding.build()
        width = self.mlp_layer_sizes[0]
        for layer in self.mlp:
            layer.build((None, width))
            width = layer.units
        self.final.build((None, width + self.factors))
        self.built = True

    def call(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """Logits, shape (batch,); the sigmoid is in the loss (BCE with logits) and not needed to rank."""
        gmf = self.mf_user_embed(users) * self.mf_item_embed(items)
        mlp = keras.ops.concatenate([self.mlp_user_embed(users), self.mlp_item_embed(items)], axis=-1)
        for layer in self.mlp:
            mlp = layer(mlp)
        return keras.ops.squeeze(self.final(keras.ops.concatenate([gmf, mlp], axis=-1)), axis=-1)


def build_model(n_users: int, n_items: int, factors: int, mlp_layer_sizes: tuple[int, ...],
                seed: int) -> NeuMF:
    """NeuMF with the reference initialisation drawn from `seed` (identical to the PyTorch model's).

    Call it inside `strategy.scope()` so the variables are mirrored over the replicas.
    """
    model = NeuMF(n_users, n_items, factors, mlp_layer_sizes)
    model.build()
    load_torch_layout(model, initial_weights(n_users, n_items, factors, mlp_layer_sizes, seed))
    return model
