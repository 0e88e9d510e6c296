"""The TensorFlow NCF's training and evaluation as timed work, for `invoke bench recommendation`.

The mirror of pytorch/throughput.py: both frameworks get the same unit of work, so that
`recommendation/bench.py` can time them against each other with `harness.paired_timing.compare`:

- training: one epoch from the host's NumPy samples (what `sampling.epoch_samples` hands the training
  loop) to trained weights: this framework's input step (`distribute_epoch`: the tf.data pipeline of
  data.py) and `train_one_epoch` (the tf.function step with its Adam; mixed bfloat16 on GPUs),
  returning when the device is done (its float() waits for the last step);
- evaluation: one `evaluate` over the given users (1 positive + `negatives` items each), from the
  host's arrays, returning the host's numbers.

Data shaped like ml-20m (138,493 users, 26,744 items; uniform random ids: the speed does not depend on
which ids are drawn); the device and precision are cfg.run's, as in a training run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import tensorflow as tf

from harness import tf_runtime
from harness.paired_timing import compare
from recommendation.config import Config
from recommendation.sampling import EpochSamples
from recommendation.synthetic import ML20M_ITEMS, ML20M_USERS, synthetic_eval, synthetic_samples
from recommendation.tensorflow.data import EvalData, distribute_epoch
from recommendation.tensorflow.model import build_model
from recommendation.tensorflow.train import (
    build_optimizer,
    evaluate,
    make_rank_fn,
    make_train_step,
    train_one_epoch,
)


def signature(cfg: Config, n_users: int, n_items: int) -> dict:
    gpus = [gpu for gpu in tf.config.list_physical_devices("GPU") if gpu in tf.config.get_visible_devices("GPU")]
    if gpus:
        device = f"{len(gpus)} x {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}"
    else:
        device = f"cpu ({tf.config.threading.get_intra_op_parallelism_threads() or 'default'} threads)"
    return {"framework": "tensorflow", "device": device,
            "precision": keras.mixed_precision.global_policy().name,
            "model": {"n_users": n_users, "n_items": n_items, **dataclasses.asdict(cfg.model)},
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}


def training_epoch(cfg: Config, *, global_batch_size: int, n_users: int = ML20M_USERS,
                   n_items: int = ML20M_ITEMS) -> tuple[Callable[[EpochSamples], float], dict]:
    """(train, signature): `train(samples)` trains the reference model and optimizer of `cfg` on one
    epoch of host samples in global batches of `global_batch_size` and returns the mean loss."""
    strategy = tf_runtime.setup(cfg.run)
    with strategy.scope():
        model = build_model(n_users, n_items, cfg.model.factors, cfg.model.mlp_layer_sizes, seed=cfg.run.seed)
        optimizer = build_optimizer(cfg, model)
    train_step = make_train_step(model, optimizer, strategy)

    def train(samples: EpochSamples) -> float:
        dataset, steps = distribute_epoch(samples, global_batch_size, strategy)
        return train_one_epoch(train_step, dataset, steps, len(samples), epoch=1, progress=False)

    return train, {**signature(cfg, n_users, n_items), "global_batch_size": global_batch_size,
                   "replicas": strategy.num_replicas_in_sync}


def evaluation(cfg: Config, *, users: int, n_users: int = ML20M_USERS, n_items: int = ML20M_ITEMS,
               negatives: int = 999) -> tuple[Callable[[], tuple[float, float]], dict]:
    """(run, signature): `run()` is one `evaluate` of `users` host rows through tf.data, returning
    (HR, NDCG)."""
    strategy = tf_runtime.setup(cfg.run)
    with strategy.scope():
        model = build_model(n_users, n_items, cfg.model.factors, cfg.model.mlp_layer_sizes, seed=cfg.run.seed)
    rank_fn = make_rank_fn(model)
    data = EvalData(*synthetic_eval(users, n_items, negatives))

    def run() -> tuple[float, float]:
        return evaluate(rank_fn, data, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size)  # host numbers: synced

    return run, {**signature(cfg, n_users, n_items), "eval_batch_size": cfg.schedule.eval_batch_size}


def tensorflow_throughput(cfg: Config | None = None, *, steps: int = 10, warmup_steps: int = 2,
                          global_batch_size: int | None = None, n_users: int = ML20M_USERS,
                          n_items: int = ML20M_ITEMS, rounds: int = 1) -> dict:
    """TensorFlow alone: training samples/s over epochs of `steps` global batches, after one warm-up
    epoch of `warmup_steps` batches that absorbs tracing (none: a cold measurement, and it says so).
    The bench times both frameworks against each other with the same pieces (recommendation/bench.py)."""
    cfg = cfg or Config()
    batch = global_batch_size or cfg.schedule.global_batch_size
    train, info = training_epoch(cfg, global_batch_size=batch, n_users=n_users, n_items=n_items)
    if warmup_steps:
        train(synthetic_samples(warmup_steps * batch, n_users, n_items, 0))
    timed = synthetic_samples(steps * batch, n_users, n_items, 1)
    timing = compare({"tensorflow": lambda: train(timed)}, rounds=rounds, warmup=0, work_per_call=len(timed),
                     unit="samples", state="warm" if warmup_steps else "cold")
    return {"samples_per_second": timing.rate("tensorflow"), "seconds": timing.median_seconds("tensorflow"),
            "steps": steps, "warmup_steps": warmup_steps, "state": timing.state, "rounds": rounds, **info}


def tensorflow_eval_time(cfg: Config | None = None, *, users: int = ML20M_USERS, n_users: int = ML20M_USERS,
                         n_items: int = ML20M_ITEMS, negatives: int = 999, rounds: int = 1) -> dict:
    """TensorFlow alone: seconds of one `evaluate` over `users` users (after a warm-up one that traces
    rank_fn), and the time for all `n_users` users it implies (measured when users == n_users)."""
    cfg = cfg or Config()
    run, info = evaluation(cfg, users=users, n_users=n_users, n_items=n_items, negatives=negatives)
    timing = compare({"tensorflow": run}, rounds=rounds, warmup=1, work_per_call=users * (negatives + 1),
                     unit="scores")
    seconds = timing.median_seconds("tensorflow")
    return {"users": users, "seconds": seconds, "all_users": n_users, "all_users_seconds": seconds * n_users / users,
            "extrapolated": users != n_users, "scores_per_second": timing.rate("tensorflow"), "state": timing.state,
            "rounds": rounds, **info}
