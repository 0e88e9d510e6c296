"""PyTorch NCF: the model is NeuMF, evaluation is metrics.py's, the smoke run reaches its target with a
compliant log, seeded runs repeat exactly, a resumed run continues exactly, and DDP splits batches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

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
    """NeuMF's forward pass written out in NumPy from the state_dict arrays (in float64)."""
    weights = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
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
    # the same function as the NumPy definition: compared in float64, to 1e-12 of the logits' scale
    with torch.no_grad():
        logits = model.double()(torch.from_numpy(users), torch.from_numpy(items)).numpy()
    expected = numpy_neumf(weights, users, items, layers)
    assert np.abs(logits - expected).max() <= 1e-12 * np.abs(expected).max()
    other = initial_weights(30, 50, factors, layers, seed=4)
    assert not np.array_equal(other["mf_user_embed.weight"], weights["mf_user_embed.weight"])


def test_evaluate_equals_the_numpy_definition(tiny_data):
    prepared = load_prepared(tiny_data)
    model = build_model(prepared.n_users, prepared.n_items, 8, (64, 32, 16, 8), seed=0)
    # one epoch of training first, so that the ranks spread (an untrained model ranks at random)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    samples = shard_epoch(sampling.epoch_samples(prepared.train, 4, seed=0, epoch=1), 2048, CPU)
    train.train_one_epoch(model, optimizer, CPU.grad_scaler(), samples, CPU, epoch=1, progress=False)
    # evaluated in float64: scores computed in other batch sizes could round differently in float32 and
    # reorder two near-equal scores; in float64 no two scores come that close
    model = model.double()
    data = build_eval(prepared, CPU)
    hr, ndcg = train.evaluate(model, data, k=10, batch_size=70_000, rt=CPU)
    items = data.items.numpy()
    users = np.broadcast_to(np.arange(prepared.n_users)[:, None], items.shape)
    with torch.no_grad():
        scores = model(torch.from_numpy(users.reshape(-1)), torch.from_numpy(items.reshape(-1))).numpy()
    assert scores.dtype == np.float64
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


@pytest.mark.numerics  # a run against itself: exact on one machine, whatever its kernels
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


DDP_EPOCH = textwrap.dedent("""
    import sys
    import numpy as np, torch
    from harness import torch_runtime
    from harness.runner import load_benchmark_config
    from recommendation.pytorch import train
    from recommendation.pytorch.data import shard_epoch
    from recommendation.pytorch.model import build_model
    from recommendation.sampling import EpochSamples
    arrays = np.load(sys.argv[1])
    cfg = load_benchmark_config("recommendation", "smoke", sys.argv[3:])
    rt = torch_runtime.setup(cfg.run)
    assert rt.world_size == 2
    model = torch_runtime.wrap_model(build_model(60, 90, cfg.model.factors, cfg.model.mlp_layer_sizes, seed=9).double(), rt)
    optimizer = train.build_optimizer(cfg, model)
    samples = EpochSamples(arrays["users"], arrays["items"], arrays["labels"])
    train.train_one_epoch(model, optimizer, rt.grad_scaler(), shard_epoch(samples, cfg.schedule.global_batch_size, rt), rt,
                          epoch=1, progress=False)
    if rt.is_main:
        np.savez(sys.argv[2], **{k: v.numpy() for k, v in torch_runtime.unwrap(model).state_dict().items()})
    torch_runtime.shutdown()
""")


@pytest.mark.numerics
@pytest.mark.multiprocess
def test_two_process_ddp_takes_the_single_process_steps(tmp_path):
    """DDP (torchrun, 2 processes, gloo) through train.py's train_one_epoch: each rank takes its share
    of every global batch, its summed loss scaled by world size / global batch size, DDP averages the
    gradients; so every step is the single-process step on the same global batch. Checked at the weight
    level in float64 (where summing two halves instead of the whole changes a weight by ~1e-16 of its
    scale): after 6 Adam steps, the last global batch uneven (201 samples: 101 + 100), the weights
    agree to 1e-10 of each tensor's scale."""
    rng = np.random.default_rng(0)
    count = 5 * 256 + 201
    users, items = rng.integers(0, 60, count).astype(np.int32), rng.integers(0, 90, count).astype(np.int32)
    labels = (rng.random(count) < 0.2).astype(np.float32)
    np.savez(tmp_path / "samples.npz", users=users, items=items, labels=labels)
    overrides = ["schedule.global_batch_size=256", "optimizer.base_lr=0.01", "run.threads=1", "run.device=cpu"]
    script = tmp_path / "ddp_epoch.py"
    script.write_text(DDP_EPOCH)
    completed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                                str(script), str(tmp_path / "samples.npz"), str(tmp_path / "ddp.npz"), *overrides],
                               cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=600,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"})
    assert completed.returncode == 0, completed.stderr[-3000:]

    cfg = load_benchmark_config("recommendation", "smoke", overrides)
    model = build_model(60, 90, cfg.model.factors, cfg.model.mlp_layer_sizes, seed=9).double()
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer = train.build_optimizer(cfg, model)
    data = shard_epoch(sampling.EpochSamples(users, items, labels), cfg.schedule.global_batch_size, CPU)
    assert [stop - start for start, stop, _ in data.batches] == [256] * 5 + [201]
    train.train_one_epoch(model, optimizer, CPU.grad_scaler(), data, CPU, epoch=1, progress=False)
    ddp = np.load(tmp_path / "ddp.npz")
    for name, value in model.state_dict().items():
        single = value.numpy()
        assert not np.array_equal(single, initial[name].numpy()), name  # the steps moved every tensor
        assert ddp[name].dtype == np.float64
        assert np.abs(ddp[name] - single).max() <= 1e-10 * np.abs(single).max(), name
