"""NCF trained in float64 through each framework's own functions, for the cross-framework parity tests.

Both frameworks start from the same weights (weights.py) and draw the same samples (sampling.py); in
float64 the rounding of their kernels (~1e-16 of a score) lies far below the gap between any two of a
user's 1000 scores, so the same config gives the same HR@10 curve, exactly, on any CPU: the
frameworks compute the same function. (In float32 the rounding, 1e-7, is amplified by Adam, whose
step lr * m / (sqrt(v) + eps) turns gradient noise above eps = 1e-8 into whole steps: the curves then
drift apart by a few users within epochs, which says nothing about whether the code is the same.)

Each curve comes from the product's step functions, epoch by epoch as `main` runs them: `epoch_samples`,
then PyTorch's `shard_epoch` + `train_one_epoch` (fused Adam, world-size-scaled summed loss) +
`evaluate`, or TensorFlow's `distribute_epoch` + `make_train_step` / `train_one_epoch` (its Adam) +
`make_rank_fn` / `evaluate`. PyTorch runs in a fresh process (`python -m recommendation.tests.
float64_training`): torch.optim loads triton, which crashes a process where TensorFlow came first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

from harness.benchmarks import REPO_ROOT
from harness.runner import load_benchmark_config


def _config(config: str, data_dir, overrides: Sequence[str]):
    return load_benchmark_config("recommendation", config, [f"run.data_dir={data_dir}", "run.progress=false",
                                                            "run.device=cpu", *overrides])


def pytorch_curve(config: str, data_dir, epochs: int, overrides: Sequence[str] = ()) -> list[float]:
    """HR@k after each of `epochs` epochs, float64, PyTorch, in this process."""
    import torch

    from harness import torch_runtime
    from recommendation.dataset import load_for_training
    from recommendation.pytorch import train
    from recommendation.pytorch.data import build_eval, shard_epoch
    from recommendation.pytorch.model import build_model
    from recommendation.sampling import epoch_samples

    cfg = _config(config, data_dir, overrides)
    rt = torch_runtime.setup(cfg.run)
    prepared = load_for_training(cfg, rt.world_size)
    model = build_model(prepared.n_users, prepared.n_items, cfg.model.factors, cfg.model.mlp_layer_sizes,
                        seed=cfg.run.seed).double()
    optimizer = train.build_optimizer(cfg, model)
    eval_data = build_eval(prepared, rt)
    curve = []
    for epoch in range(1, epochs + 1):
        samples = epoch_samples(prepared.train, cfg.data.train_negatives_per_positive, cfg.run.seed, epoch)
        train.train_one_epoch(model, optimizer, rt.grad_scaler(), shard_epoch(samples, cfg.schedule.global_batch_size, rt),
                              rt, epoch, progress=False)
        assert next(model.parameters()).dtype == torch.float64
        curve.append(train.evaluate(model, eval_data, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size, rt)[0])
    return curve


def pytorch_curve_in_a_fresh_process(config: str, data_dir, epochs: int, overrides: Sequence[str] = ()) -> list[float]:
    completed = subprocess.run([sys.executable, "-m", "recommendation.tests.float64_training", config, str(data_dir),
                                str(epochs), *overrides], cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                               timeout=1200, env={**os.environ, "MLBENCH_NO_PROGRESS": "1"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def tensorflow_curve(config: str, data_dir, epochs: int, overrides: Sequence[str] = ()) -> list[float]:
    """HR@k after each of `epochs` epochs, float64, TensorFlow (Keras), in this process."""
    from harness import tf_runtime
    from recommendation.dataset import load_for_training
    from recommendation.sampling import epoch_samples
    from recommendation.tensorflow import train
    from recommendation.tensorflow.data import build_eval, distribute_epoch
    from recommendation.tensorflow.model import build_model

    cfg = _config(config, data_dir, overrides)
    strategy = tf_runtime.setup(cfg.run)
    prepared = load_for_training(cfg, strategy.num_replicas_in_sync)
    with tf_runtime.float64_policy():
        with strategy.scope():
            model = build_model(prepared.n_users, prepared.n_items, cfg.model.factors, cfg.model.mlp_layer_sizes,
                                seed=cfg.run.seed)
            optimizer = train.build_optimizer(cfg, model)
        assert model.final.kernel.dtype == "float64"
        train_step, rank_fn = train.make_train_step(model, optimizer, strategy), train.make_rank_fn(model)
        eval_data = build_eval(prepared)
        curve = []
        for epoch in range(1, epochs + 1):
            samples = epoch_samples(prepared.train, cfg.data.train_negatives_per_positive, cfg.run.seed, epoch)
            dataset, steps = distribute_epoch(samples, cfg.schedule.global_batch_size, strategy)
            train.train_one_epoch(train_step, dataset, steps, len(samples), epoch, progress=False)
            curve.append(train.evaluate(rank_fn, eval_data, cfg.data.eval_hr_k, cfg.schedule.eval_batch_size)[0])
    return curve


if __name__ == "__main__":
    print(json.dumps(pytorch_curve(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:])))
