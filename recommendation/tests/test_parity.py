"""PyTorch <-> TensorFlow parity of NCF: converted weights give the same logits (both directions), the
same optimizer steps give the same weights, and the same seed gives the same HR@10 curve.

Each "same function" claim is checked in float64 (PyTorch `.double()`, Keras `tf_runtime.float64_policy()`):
there the kernels' rounding (~1e-16) is far below any real difference and the same on every CPU, so the
bounds can be tight (1e-10 of the output's scale for logits, 1e-9 for weights after Adam steps). The
float32 logits, what a run computes, are checked against 1e-5 of the largest logit (float32 keeps ~7
digits; a fixed 1e-5 bound on logits of magnitude ~75 asked for 8, and failed on AVX2 machines).

PyTorch's optimizer steps run in a fresh process: torch.optim loads triton, which crashes a process
where TensorFlow was loaded first (see test_tensorflow.py); forward passes need neither.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import subprocess
import sys
import textwrap

if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401 - before TensorFlow, see the module docstring

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")

from harness import tf_runtime
from harness.benchmarks import REPO_ROOT
from harness.errors import UserError
from harness.runner import load_benchmark_config
from recommendation.pytorch.model import build_model as build_torch_model
from recommendation.sampling import EpochSamples
from recommendation.tensorflow import convert
from recommendation.tensorflow import train as tf_train
from recommendation.tensorflow.data import distribute_epoch
from recommendation.tensorflow.model import build_model as build_keras_model
from recommendation.tests import float64_training

pytestmark = pytest.mark.numerics

USERS, ITEMS = 60, 90
SIZES = [(64, (256, 256, 128, 64)), (8, (64, 32, 16, 8))]


def perturbed(state: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Weights unlike any initialisation (a trained model's scale), so a transposition or a swapped
    tensor could not pass unnoticed."""
    rng = np.random.default_rng(seed)
    return {name: (value + rng.normal(0, 0.3, value.shape)).astype(np.float32) for name, value in state.items()}


def batch(seed: int = 0, size: int = 512):
    rng = np.random.default_rng(seed)
    return rng.integers(0, USERS, size).astype(np.int32), rng.integers(0, ITEMS, size).astype(np.int32)


def torch_logits(model, users, items) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(users).long(), torch.from_numpy(items).long()).numpy()


def keras_policy(dtype: str):
    return tf_runtime.float64_policy() if dtype == "float64" else contextlib.nullcontext()


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest difference relative to the largest magnitude (the output's scale)."""
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


# of the largest logit. float64: the same function, measured 1e-16; float32: measured 4e-7 (logits up to
# ~75 on both AVX-512 and AVX2, 3e-5 apart), against float32's ~6e-8 per rounding over 5 layers
LOGIT_BOUNDS = {"float32": 1e-5, "float64": 1e-10}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("factors, layers", SIZES)
def test_torch_to_keras_gives_the_same_logits(factors, layers, dtype):
    """Converted PyTorch weights give the same logits in Keras: float64 to 1e-10, float32 to 1e-5 of
    the largest logit."""
    source = build_torch_model(USERS, ITEMS, factors, layers, seed=1)
    source.load_numpy(perturbed({k: v.numpy() for k, v in source.state_dict().items()}, seed=2))
    source = source.to(getattr(torch, dtype))
    with keras_policy(dtype):
        target = build_keras_model(USERS, ITEMS, factors, layers, seed=7)
    convert.torch_to_keras(source, target)
    users, items = batch()
    expected = torch_logits(source, users, items)
    assert expected.dtype == dtype and np.abs(expected).max() > 0.5  # not a near-constant output
    actual = target(users, items).numpy()
    assert actual.dtype == dtype
    assert relative_difference(actual, expected) < LOGIT_BOUNDS[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("factors, layers", SIZES)
def test_keras_to_torch_gives_the_same_logits(factors, layers, dtype):
    """Converted Keras weights give the same logits in PyTorch: float64 to 1e-10, float32 to 1e-5 of
    the largest logit."""
    with keras_policy(dtype):
        source = build_keras_model(USERS, ITEMS, factors, layers, seed=1)
    convert.load_torch_layout(source, perturbed(convert.keras_to_torch_layout(source), seed=3))
    target = build_torch_model(USERS, ITEMS, factors, layers, seed=7).to(getattr(torch, dtype))
    convert.keras_to_torch(source, target)
    users, items = batch(1)
    expected = source(users, items).numpy()
    assert expected.dtype == dtype and np.abs(expected).max() > 0.5
    actual = torch_logits(target, users, items)
    assert actual.dtype == dtype
    assert relative_difference(actual, expected) < LOGIT_BOUNDS[dtype]


def test_same_seed_same_initial_weights():
    """Both frameworks start from the same float32 arrays (weights.py's NumPy draws): bit for bit."""
    keras_state = convert.keras_to_torch_layout(build_keras_model(USERS, ITEMS, 8, (64, 32, 16, 8), seed=4))
    torch_state = build_torch_model(USERS, ITEMS, 8, (64, 32, 16, 8), seed=4).state_dict()
    assert list(keras_state) == list(torch_state)
    assert all(np.array_equal(keras_state[name], torch_state[name].numpy()) for name in torch_state)


def test_files_convert_both_ways(tmp_path):
    """A .pt file to .weights.h5 and back gives the same float32 arrays, bit for bit (a copy, no arithmetic)."""
    model = build_torch_model(USERS, ITEMS, 8, (64, 32, 16, 8), seed=5)
    state = perturbed({k: v.numpy() for k, v in model.state_dict().items()}, seed=6)
    # a harness checkpoint payload ({"model": state_dict, ...}) converts like a bare state_dict
    torch.save({"model": {k: torch.from_numpy(v) for k, v in state.items()}, "optimizer": {}}, tmp_path / "a.pt")
    assert convert.main([str(tmp_path / "a.pt"), str(tmp_path / "neumf.weights.h5")]) == 0
    assert convert.sizes_from_keras_file(tmp_path / "neumf.weights.h5") == {
        "n_users": USERS, "n_items": ITEMS, "factors": 8, "mlp_layer_sizes": (64, 32, 16, 8)}
    assert convert.main([str(tmp_path / "neumf.weights.h5"), str(tmp_path / "b.pt")]) == 0
    back = torch.load(tmp_path / "b.pt")
    assert list(back) == list(state)
    assert all(np.array_equal(back[name].numpy(), state[name]) for name in state)


def test_conversion_refuses_a_model_of_other_sizes(tmp_path):
    source = build_torch_model(USERS, ITEMS, 8, (64, 32, 16, 8), seed=1)
    with pytest.raises(UserError, match="mf_user_embed.weight has shape"):
        convert.torch_to_keras(source, build_keras_model(USERS + 1, ITEMS, 8, (64, 32, 16, 8), seed=1))
    with pytest.raises(UserError, match="missing"):
        convert.torch_to_keras(source, build_keras_model(USERS, ITEMS, 8, (64, 32, 16), seed=1))
    (tmp_path / "x.txt").write_text("no")
    with pytest.raises(UserError, match="expected .pt"):
        convert.convert_file(tmp_path / "x.txt", tmp_path / "y.pt")


# The optimizer of the reference config (betas 0.25/0.5), a larger learning rate so that 6 steps move
# every touched weight visibly; everything else as the smoke config.
ADAM = ["optimizer.base_lr=0.01", "optimizer.beta1=0.25", "optimizer.beta2=0.5", "optimizer.epsilon=1e-8",
        "schedule.global_batch_size=256"]

TORCH_STEPS = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    from harness.runner import load_benchmark_config
    from harness.torch_runtime import TorchRuntime
    from recommendation.pytorch import train
    from recommendation.pytorch.data import shard_epoch
    from recommendation.pytorch.model import build_model
    from recommendation.sampling import EpochSamples
    arrays = np.load(sys.argv[1])
    cfg = load_benchmark_config("recommendation", "smoke", sys.argv[3:])
    rt = TorchRuntime(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), amp_dtype=None)
    model = build_model(60, 90, cfg.model.factors, cfg.model.mlp_layer_sizes, seed=9).double()
    optimizer = train.build_optimizer(cfg, model)
    assert optimizer.defaults["fused"]  # the product's fused Adam
    samples = EpochSamples(arrays["users"], arrays["items"], arrays["labels"])
    loss = train.train_one_epoch(model, optimizer, rt.grad_scaler(), shard_epoch(samples, cfg.schedule.global_batch_size, rt),
                                 rt, epoch=1, progress=False)
    np.savez(sys.argv[2], **{k: v.numpy() for k, v in model.state_dict().items()})
    print(json.dumps(loss))
""")


def test_optimizer_steps_match(tmp_path):
    """float64: one epoch of 6 Adam steps (reference betas 0.25/0.5; users and items repeat within a
    batch; the last batch uneven, 200 of 256) from the same weights on the same samples, through each
    framework's train_one_epoch (PyTorch: fused Adam on the summed loss scaled by world size / global
    batch; Keras: its Adam, replica losses over the global batch): the same mean loss (1e-12 relative)
    and the same weights (1e-9 of each tensor's scale; measured 1e-15)."""
    rng = np.random.default_rng(0)
    count = 5 * 256 + 200
    users = rng.integers(0, USERS, count).astype(np.int32)
    items = rng.integers(0, ITEMS, count).astype(np.int32)
    labels = (rng.random(count) < 0.2).astype(np.float32)
    np.savez(tmp_path / "samples.npz", users=users, items=items, labels=labels)
    completed = subprocess.run([sys.executable, "-c", TORCH_STEPS, str(tmp_path / "samples.npz"),
                                str(tmp_path / "torch.npz"), *ADAM], cwd=REPO_ROOT, capture_output=True, text=True,
                               check=False, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    torch_loss = json.loads(completed.stdout.strip().splitlines()[-1])

    cfg = load_benchmark_config("recommendation", "smoke", ADAM)
    strategy = tf.distribute.get_strategy()
    with tf_runtime.float64_policy():
        model = build_keras_model(USERS, ITEMS, cfg.model.factors, cfg.model.mlp_layer_sizes, seed=9)
        optimizer = tf_train.build_optimizer(cfg, model)
        dataset, steps = distribute_epoch(EpochSamples(users, items, labels), cfg.schedule.global_batch_size, strategy)
        assert steps == 6
        keras_loss = tf_train.train_one_epoch(tf_train.make_train_step(model, optimizer, strategy), dataset, steps,
                                              count, epoch=1, progress=False)
    assert keras_loss == pytest.approx(torch_loss, rel=1e-12, abs=0)
    torch_state = np.load(tmp_path / "torch.npz")
    initial = convert.keras_to_torch_layout(build_keras_model(USERS, ITEMS, cfg.model.factors, cfg.model.mlp_layer_sizes,
                                                              seed=9))
    for name, value in convert.keras_to_torch_layout(model).items():
        assert value.dtype == torch_state[name].dtype == np.float64
        assert not np.allclose(torch_state[name], initial[name]), name  # the steps moved every tensor
        assert relative_difference(value, torch_state[name]) < 1e-9, name


def test_same_seed_same_hr_curve_on_tiny_data(tiny_data):
    """The smoke config, four epochs, seed 3, float64, through each framework's train_one_epoch and
    evaluate (float64_training.py): the same initial weights and samples give the same HR@10 curve,
    exactly (in float64 no two of a user's scores come within the frameworks' rounding of each other)."""
    overrides = ["run.seed=3", "run.threads=1"]
    torch_curve = float64_training.pytorch_curve_in_a_fresh_process("smoke", tiny_data, 4, overrides)
    keras_curve = float64_training.tensorflow_curve("smoke", tiny_data, 4, overrides)
    assert keras_curve[-1] > 0.5  # a learning run, not two untrained ones agreeing
    assert keras_curve == torch_curve
