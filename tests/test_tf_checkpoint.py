"""tf_runtime.save_payload / load_payload keep every variable of a Keras model, also those of layers
held in a Python list (which tf.train.Checkpoint alone does not follow in Keras 3)."""

from __future__ import annotations

import importlib.util
import sys

if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401  (libtriton loaded after TensorFlow crashes the process)

# isort: split
import keras
import numpy as np
import tensorflow as tf

from harness import tf_runtime


class Stack(keras.Model):
    def __init__(self):
        super().__init__()
        self.first = keras.layers.Dense(3, name="first")
        self.blocks = [keras.layers.Dense(3, name=f"blocks.{n}") for n in range(2)]  # a list: not followed by TF
        self.dropout = keras.layers.Dropout(0.5, seed=1)  # a seed-generator state variable

    def call(self, x, training=False):
        x = self.first(x)
        for block in self.blocks:
            x = block(x)
        return self.dropout(x, training=training)


def test_layers_in_lists_are_saved_and_restored(tmp_path):
    tf.random.set_global_generator(tf.random.Generator.from_seed(1))
    model = Stack()
    model(tf.ones([2, 4]), training=True)  # builds, and advances the dropout seed state
    tf_runtime.save_payload(tmp_path, model=model)
    saved = [v.numpy().copy() for v in model.variables]
    other = Stack()
    other(tf.ones([2, 4]))
    for variable in other.variables:
        variable.assign(tf.zeros_like(variable))
    tf_runtime.load_payload(tmp_path, model=other)
    assert len(saved) == len(other.variables) >= 7  # 3 kernels, 3 biases, the seed state
    for expected, variable in zip(saved, other.variables):
        np.testing.assert_array_equal(variable.numpy(), expected, err_msg=variable.path)


def test_resume_restores_what_save_checkpoint_if_due_wrote(tmp_path):
    """tf_runtime.save_checkpoint_if_due / resume: the chief writes on a due epoch, and resume restores the
    variables and the global generator (the draw after the checkpoint repeats)."""
    from harness.config import BaseConfig, RunOptions

    tf.random.set_global_generator(tf.random.Generator.from_seed(3))
    model = Stack()
    model(tf.ones([2, 4]), training=True)
    saved = [v.numpy().copy() for v in model.variables]
    strategy = tf.distribute.get_strategy()
    cfg = BaseConfig(benchmark="ncf", run=RunOptions(out_dir=str(tmp_path), checkpoint_every_epochs=2))
    for epoch in (1, 2):
        tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark="ncf", epoch=epoch, step=3 * epoch,
                                          extra={"eval_history": [[2, 0.25]]}, model=model)
    assert [path.name for path in (tmp_path / "checkpoints").iterdir()] == ["epoch-0002"]  # epoch 1 was not due
    expected_draw = tf.random.get_global_generator().normal([3]).numpy()

    for variable in model.variables:
        variable.assign(tf.zeros_like(variable))
    resumed = tf_runtime.resume(BaseConfig(benchmark="ncf", run=RunOptions(out_dir=str(tmp_path), resume=True)),
                                benchmark="ncf", model=model)
    assert (resumed["framework"], resumed["epoch"], resumed["step"]) == ("tensorflow", 2, 6)
    assert resumed["extra"] == {"eval_history": [[2, 0.25]]}
    for expected, variable in zip(saved, model.variables):
        np.testing.assert_array_equal(variable.numpy(), expected, err_msg=variable.path)
    np.testing.assert_array_equal(tf.random.get_global_generator().normal([3]).numpy(), expected_draw)
