"""Training throughput and evaluation time of the TensorFlow NCF, for `invoke bench recommendation`.

The mirror of pytorch/throughput.py. Both time the real code of train.py (the tf.data pipeline of
data.py, the tf.function step with its Adam; `evaluate`) on data shaped like ml-20m (138,493 users,
26,744 items; uniform random ids: the speed does not depend on which are drawn), after warm-up steps
that absorb tracing; the device and precision are cfg.run's (mixed bfloat16 on GPUs), as in a run.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from harness import tf_runtime
from recommendation.config import Config
from recommendation.sampling import EpochSamples
from recommendation.tensorflow.data import EvalData, distribute_epoch
from recommendation.tensorflow.model import build_model
from recommendation.tensorflow.train import (
    build_optimizer,
    evaluate,
    make_rank_fn,
    make_train_step,
)

ML20M_USERS = 138_493  # ml-20m after preprocessing (every user has >= 20 ratings)
ML20M_ITEMS = 26_744


def synthetic_samples(count: int, n_users: int, n_items: int, seed: int) -> EpochSamples:
    rng = np.random.default_rng(seed)
    return EpochSamples(rng.integers(0, n_users, count, dtype=np.int32), rng.integers(0, n_items, count, dtype=np.int32),
                        (rng.random(count) < 0.2).astype(np.float32))  # 1 positive in 5, as with 4 negatives


def tensorflow_throughput(cfg: Config | None = None, *, steps: int = 10, warmup_steps: int = 2,
                          global_batch_size: int | None = None, n_users: int = ML20M_USERS,
                          n_items: int = ML20M_ITEMS) -> dict:
    """Training samples per second over `steps` optimizer steps of `global_batch_size` (default: the
    config's), the model and optimizer of `cfg` (default: the reference config), on cfg.run's device."""
    cfg = cfg or Config()
    batch = global_batch_size or cfg.schedule.global_batch_size
    strategy = tf_runtime.setup(cfg.run)
    with strategy.scope():
        model = build_model(n_users, n_items, cfg.model.factors, cfg.model.mlp_layer_sizes, seed=cfg.run.seed)
        optimizer = build_optimizer(cfg, model)
    train_step = make_train_step(model, optimizer, strategy)
    samples = synthetic_samples((warmup_steps + steps) * batch, n_users, n_items, cfg.run.seed)
    dataset, _ = distribute_epoch(samples, batch, strategy)
    iterator = iter(dataset)
    for _ in range(warmup_steps):
        float(train_step(next(iterator)))  # tracing, first allocations; float() waits for the step
    began = time.perf_counter()
    loss = tf.zeros(())
    for _ in range(steps):
        loss += train_step(next(iterator))
    float(loss)
    seconds = time.perf_counter() - began
    return {"samples_per_second": steps * batch / seconds, "seconds": seconds, "steps": steps,
            "warmup_steps": warmup_steps, "global_batch_size": batch, "replicas": strategy.num_replicas_in_sync,
            **_signature(cfg, n_users, n_items)}


def tensorflow_eval_time(cfg: Config | None = None, *, users: int = ML20M_USERS, n_users: int = ML20M_USERS,
                         n_items: int = ML20M_ITEMS, negatives: int = 999) -> dict:
    """Seconds of one `evaluate` over `users` users (each: 1 positive + `negatives` items), and the
    time for all `n_users` users it implies (measured, not extrapolated, when users == n_users)."""
    cfg = cfg or Config()
    strategy = tf_runtime.setup(cfg.run)
    with strategy.scope():
        model = build_model(n_users, n_items, cfg.model.factors, cfg.model.mlp_layer_sizes, seed=cfg.run.seed)
    rank_fn = make_rank_fn(model)
    rng = np.random.default_rng(0)
    items = rng.integers(0, n_items, (users, negatives + 1), dtype=np.int32)
    data = EvalData(np.arange(users, dtype=np.int32), items, np.ones((users, negatives), dtype=bool))
    warmup = EvalData(data.users[:64], data.items[:64], data.valid[:64])
    evaluate(rank_fn, warmup, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size)  # traces rank_fn
    began = time.perf_counter()
    evaluate(rank_fn, data, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size)  # returns host numbers: synced
    seconds = time.perf_counter() - began
    return {"users": users, "seconds": seconds, "all_users": n_users,
            "all_users_seconds": seconds * n_users / users, "extrapolated": users != n_users,
            "scores_per_second": users * (negatives + 1) / seconds, "eval_batch_size": cfg.schedule.eval_batch_size,
            **_signature(cfg, n_users, n_items)}


def _signature(cfg: Config, n_users: int, n_items: int) -> dict:
    gpus = [gpu for gpu in tf.config.list_physical_devices("GPU") if gpu in tf.config.get_visible_devices("GPU")]
    if gpus:
        device = f"{len(gpus)} x {tf.config.experimental.get_device_details(gpus[0]).get('device_name', 'GPU')}"
    else:
        device = f"cpu ({tf.config.threading.get_intra_op_parallelism_threads() or 'default'} threads)"
    return {"framework": "tensorflow", "device": device,
            "precision": keras.mixed_precision.global_policy().name,
            "model": {"n_users": n_users, "n_items": n_items, **dataclasses.asdict(cfg.model)},
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__}}
