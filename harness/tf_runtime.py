"""TensorFlow device, precision and distributed setup: a `tf.distribute` strategy chosen by name.

    strategy = tf_runtime.setup(cfg.run)       # seeds, threads, mixed precision, the strategy
    with strategy.scope():
        model = build_model(...); optimizer = ...

    first_epoch, step = resume_point(tf_runtime.resume(cfg, benchmark=..., model=model, optimizer=...))
    tf_runtime.save_checkpoint_if_due(cfg, strategy, benchmark=..., epoch=epoch, step=step, model=model, ...)

`auto` picks MultiWorkerMirroredStrategy when `TF_CONFIG` names several workers (one process per
machine, as TF expects), MirroredStrategy with more than one local GPU, the default strategy
otherwise. The training loop stays the same under every strategy (`strategy.run` in a tf.function).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import tensorflow as tf

from harness.checkpoint import resume_from_newest, save_run_checkpoint
from harness.config import BaseConfig, RunOptions
from harness.errors import ConfigError
from harness.seeding import seed_everything

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
FRAMEWORK = "tensorflow"  # the framework named in a checkpoint's state.json


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


def logits_dtype() -> str:
    """The dtype policy of a model's logit layer: float32 under a mixed (16-bit compute) policy, so the
    loss and any ranking of scores see full-precision logits; otherwise the global policy itself
    (float32, or float64 where a parity test computes both frameworks in float64)."""
    import keras

    policy = keras.mixed_precision.global_policy()
    return "float32" if policy.compute_dtype in ("float16", "bfloat16") else policy.name


@contextlib.contextmanager
def float64_policy() -> Iterator[None]:
    """Build and run Keras models in float64 inside this block (the cross-framework parity checks: both
    frameworks compute in float64 on CPU, where rounding differences of the kernels stay ~1e-16);
    the previous global policy and floatx come back after."""
    import keras

    policy, floatx = keras.mixed_precision.global_policy(), keras.config.floatx()
    keras.config.set_floatx("float64")
    keras.mixed_precision.set_global_policy("float64")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        keras.config.set_floatx(floatx)


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


def resume(cfg: BaseConfig, *, benchmark: str, load_beside: Callable[[Path], None] | None = None,
           **trackables) -> dict | None:
    """With `run.resume=true`, restore the trackables (model, optimizer, ...) and every RNG from the newest
    checkpoint (`harness.checkpoint.resume_from_newest`): its state, or None for a fresh start.
    `load_beside(folder)` reads what the benchmark saved beside the payload (`save_beside`)."""
    def load(folder: Path) -> None:
        load_payload(folder, **trackables)
        if load_beside is not None:
            load_beside(folder)

    return resume_from_newest(cfg, benchmark=benchmark, framework=FRAMEWORK, load_payload=load)


def save_checkpoint_if_due(cfg: BaseConfig, strategy: tf.distribute.Strategy, *, benchmark: str, epoch: int,
                           step: int, extra: dict | None = None, save_beside: Callable[[Path], None] | None = None,
                           **trackables) -> None:
    """After an epoch: the checkpoint, when `run.checkpoint_every_epochs` makes it due, written by the chief
    (`harness.checkpoint.save_run_checkpoint`; `extra` goes into state.json, `save_beside(folder)` adds files)."""
    def write(folder: Path) -> None:
        save_payload(folder, **trackables)
        if save_beside is not None:
            save_beside(folder)

    save_run_checkpoint(cfg, benchmark=benchmark, framework=FRAMEWORK, epoch=epoch, step=step,
                        write_payload=write, extra=extra, is_writer=is_chief(strategy))
