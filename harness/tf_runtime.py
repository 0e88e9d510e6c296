"""TensorFlow device, precision and distributed setup: a `tf.distribute` strategy chosen by name.

    strategy = tf_runtime.setup(cfg.run)       # seeds, threads, mixed precision, the strategy
    with strategy.scope():
        model = build_model(...); optimizer = ...

`auto` picks MultiWorkerMirroredStrategy when `TF_CONFIG` names several workers (one process per
machine, as TF expects), MirroredStrategy with more than one local GPU, the default strategy
otherwise. The training loop stays the same under every strategy (`strategy.run` in a tf.function).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tensorflow as tf

from harness.config import RunOptions
from harness.errors import ConfigError
from harness.seeding import seed_everything

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def _workers_in_tf_config() -> int:
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except ValueError:
        raise ConfigError("TF_CONFIG is not valid JSON") from None
    return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    if name not in STRATEGIES:
        raise ConfigError(f"strategy '{name}': expected one of {', '.join(STRATEGIES)}")
    gpus = tf.config.list_physical_devices("GPU")
    if name == "multi_worker" or (name == "auto" and _workers_in_tf_config() > 1):
        communication = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.NCCL if gpus
            else tf.distribute.experimental.CommunicationImplementation.RING)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=communication)
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _before_start(configure, *args) -> None:
    """Apply a runtime setting TensorFlow accepts only before it starts; a later run in the same
    process (tests, notebooks) keeps the first run's threads and devices instead of failing."""
    try:
        configure(*args)
    except RuntimeError:  # "cannot be modified after initialization"
        pass


def setup(options: RunOptions, strategy: str = "auto") -> tf.distribute.Strategy:
    """Threads, device visibility, mixed precision (GPU only) and seeds; returns the strategy."""
    if options.threads > 0:
        _before_start(tf.config.threading.set_intra_op_parallelism_threads, options.threads)
        _before_start(tf.config.threading.set_inter_op_parallelism_threads, max(1, options.threads // 2))
    if options.device == "cpu":
        _before_start(tf.config.set_visible_devices, [], "GPU")
    elif options.device.startswith("cuda") and not tf.config.list_physical_devices("GPU"):
        raise ConfigError(f"run.device={options.device}: TensorFlow sees no GPU (use auto or cpu)")
    for gpu in tf.config.list_physical_devices("GPU"):
        _before_start(tf.config.experimental.set_memory_growth, gpu, True)
    # MultiWorkerMirrored configures collective ops, which TF allows only before the eager context
    # starts: build the strategy before anything below (policy, seeds, generator) touches it.
    distribution = make_strategy(strategy)
    import keras

    # the policy is global: set it either way, so a run without AMP does not inherit an earlier one's
    use_amp = options.amp and options.device != "cpu" and bool(tf.config.get_visible_devices("GPU"))
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if use_amp else "float32")
    seed_everything(options.seed, options.deterministic)
    # An explicit, seeded global generator: checkpoints save it (save_payload), and under op
    # determinism TensorFlow refuses to create the implicit one.
    tf.random.set_global_generator(tf.random.Generator.from_seed(options.seed))
    return distribution


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def _with_layer_variables(trackables: dict) -> dict:
    """tf.train.Checkpoint follows a Keras 3 layer's attributes, but not the layers it keeps in a
    Python list (`self.rnn_layers = [...]`: Keras tracks those itself): their weights would be
    silently left out. Every Keras layer or model is therefore also saved as the flat list of its
    variables (weights and RNG seed states), under `<name>_variables`."""
    import keras

    extra = {f"{name}_variables": list(value.variables) for name, value in trackables.items()
             if isinstance(value, keras.layers.Layer)}
    return {**trackables, **extra}


def save_payload(folder: Path, **trackables) -> None:
    """Model, optimizer and step counters (tf.train.Checkpoint) plus the TF global RNG state."""
    generator = tf.random.get_global_generator()
    checkpoint = tf.train.Checkpoint(rng=generator, **_with_layer_variables(trackables))
    checkpoint.write(str(folder / "tf_state"))


def load_payload(folder: Path, **trackables) -> None:
    checkpoint = tf.train.Checkpoint(rng=tf.random.get_global_generator(), **_with_layer_variables(trackables))
    checkpoint.read(str(folder / "tf_state")).expect_partial()
