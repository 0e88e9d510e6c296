"""PyTorch NCF: the model is NeuMF, evaluation is metrics.py's, the smoke run reaches its target with a
compliant log, seeded runs repeat exactly, a resumed run continues exactly, and DDP splits batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from harness.benchmarks import REPO_ROOT
from harness.errors import ConfigError
from harness.runner import load_benchmark_config
from harness.torch_runtime import TorchRuntime
from recommendation import metrics, sampling
from recommendation.dataset import load_prepared
from recommendation.pytorch import train
from recommendation.pytorch.data import build_eval, shard_epoch
from recommendation.pytorch.model import build_model
from recommendation.weights import initial_weights, weight_shapes

CPU = TorchRuntime(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), amp_dtype=None)


@pytest.fixture(autouse=True)
def one_thread():
    """As the smoke config (run.threads=1): on a shared 2-core machine more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def smoke_config(data_dir, out_dir, *overrides):
    return load_benchmark_config("recommendation", "smoke", [
        f"run.data_dir={data_dir}", f"run.out_dir={out_dir}", "run.progress=false", "run.threads=1", *overrides])


def numpy_neumf(weights, users, items, layers):
    """NeuMF's forward pass written out in NumPy from the state_dict arrays."""
    gmf = weights["mf_user_embed.weight"][users] * weights["mf_item_embed.weight"][items]
    mlp = np.concatenate([weights["mlp_user_embed.weight"][users], weights["mlp_item_embed.weight"][items]], axis=1)
    for index in range(len(layers) - 1):
        mlp = np.maximum(mlp @ weights[f"mlp.{index}.weight"].T + weights[f"mlp.{index}.bias"], 0.0)
    return (np.concatenate([gmf, mlp], axis=1) @ weights["final.weight"].T + weights["final.bias"])[:, 0]


@pytest.mark.parametrize("factors, layers", [(64, (256, 256, 128, 64)), (8, (64, 32, 16, 8))])
def test_model_is_neumf_with_the_reference_init(factors, layers):
    model = build_model(30, 50, factors, layers, seed=3)
    shapes = weight_shapes(30, 50, factors, layers)
    assert {name: tuple(value.shape) for name, value in model.state_dict().items()} == shapes
    weights = initial_weights(30, 50, factors, layers, seed=3)
    assert weights["mf_user_embed.weight"].std() == pytest.approx(0.01, rel=0.2)
    limit = np.sqrt(6 / (layers[0] + layers[1]))
    assert 0.9 * limit < np.abs(weights["mlp.0.weight"]).max() <= limit  # Glorot uniform
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 64), rng.integers(0, 50, 64)
    with torch.no_grad():
        logits = model(torch.from_numpy(users), torch.from_numpy(items)).numpy()
    np.testing.assert_allclose(logits, numpy_neumf(weights, users, items, layers), atol=1e-5)
    other = initial_weights(30, 50, factors, layers, seed=4)
    assert not np.array_equal(other["mf_user_embed.weight"], weights["mf_user_embed.weight"])


def test_evaluate_equals_the_numpy_definition(tiny_data):
    prepared = load_prepared(tiny_data)
    model = build_model(prepared.n_users, prepared.n_items, 8, (64, 32, 16, 8), seed=0)
    # one epoch of training first, so that the ranks spread (an untrained model ranks at random)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    samples = shard_epoch(sampling.epoch_samples(prepared.train, 4, seed=0, epoch=1), 2048, CPU)
    train.train_one_epoch(model, optimizer, CPU.grad_scaler(), samples, CPU, epoch=1, progress=False)
    data = build_eval(prepared, CPU)
    hr, ndcg = train.evaluate(model, data, k=10, batch_size=70_000, rt=CPU)
    items = data.items.numpy()
    users = np.broadcast_to(np.arange(prepared.n_users)[:, None], items.shape)
    with torch.no_grad():
        scores = model(torch.from_numpy(users.reshape(-1)), torch.from_numpy(items.reshape(-1))).numpy()
    expected = metrics.evaluate_scores(scores.reshape(items.shape), 10, metrics.distinct_mask(prepared.test_negatives))
    assert (hr, ndcg) == pytest.approx(expected, abs=1e-12)
    assert 0.05 < hr < 0.95


def check_log(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compliance", "check", path, "--ruleset", "mlbench-1.0.0-smoke"],
                          cwd=REPO_ROOT, capture_output=True, text=True, check=False)


def test_smoke_run_reaches_the_target_with_a_compliant_log(tiny_data, tmp_path):
    result = train.main(smoke_config(tiny_data, tmp_path / "run"))
    assert result.status == "success" and result.quality >= 0.5
    assert result.time_to_train_s < 180 and result.throughput > 0
    hits = [value for _, value in result.eval_history]
    assert hits[0] < 0.5 <= hits[-1] and len(hits) <= 10
    completed = check_log(result.log_file)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_seeded_runs_repeat_and_resume_exactly(tiny_data, tmp_path):
    # two epochs stay below the smoke target, so every run trains them all
    runs = [train.main(smoke_config(tiny_data, tmp_path / f"run{index}", "schedule.max_epochs=2", "run.seed=5"))
            for index in range(2)]
    assert runs[0].eval_history == runs[1].eval_history and len(runs[0].eval_history) == 2
    prepared = load_prepared(tiny_data)
    first, second = (sampling.epoch_samples(prepared.train, 4, seed=5, epoch=2) for _ in range(2))
    assert np.array_equal(first.items, second.items) and np.array_equal(first.users, second.users)

    interrupted = smoke_config(tiny_data, tmp_path / "resumed", "schedule.max_epochs=1", "run.seed=5",
                               "run.checkpoint_every_epochs=1")
    assert train.main(interrupted).eval_history == runs[0].eval_history[:1]
    resumed = train.main(smoke_config(tiny_data, tmp_path / "resumed", "schedule.max_epochs=2", "run.seed=5",
                                      "run.resume=true"))
    assert resumed.eval_history == runs[0].eval_history[1:]
    other_seed = train.main(smoke_config(tiny_data, tmp_path / "seed6", "schedule.max_epochs=2", "run.seed=6"))
    assert other_seed.eval_history != runs[0].eval_history


def test_eval_negatives_must_match_the_prepared_data(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="prepared with 999 negatives"):
        train.main(smoke_config(tiny_data, tmp_path / "run", "data.eval_negatives_per_user=99"))


@pytest.mark.multiprocess
def test_two_process_ddp_follows_the_single_process_curve(tiny_data, tmp_path):
    single = train.main(smoke_config(tiny_data, tmp_path / "single", "schedule.max_epochs=3",
                                     "schedule.global_batch_size=4096"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "recommendation.pytorch.train", "--config", "smoke",
               "--set", f"run.data_dir={tiny_data}", "--set", f"run.out_dir={tmp_path / 'ddp'}",
               "--set", "run.progress=false", "--set", "run.threads=1", "--set", "schedule.max_epochs=3",
               "--set", "schedule.global_batch_size=4096"]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=600)
    assert completed.returncode in (0, 1), completed.stderr[-2000:]
    values = [json.loads(line.split(":::MLLOG ", 1)[1])["value"]
              for line in (tmp_path / "ddp" / "mllog.txt").read_text().splitlines() if '"eval_accuracy"' in line]
    assert len(values) == len(single.eval_history)
    # same global batches and the same gradient (the sum over both shards / global batch size):
    # the curves differ only by floating-point summation order
    assert np.allclose(values, [value for _, value in single.eval_history], atol=0.02)
