"""PyTorch <-> TensorFlow parity of NCF: converted weights give the same logits (both directions, max abs
diff < 1e-5), the same optimizer steps give the same weights, and the same seed gives the same HR@10 curve.

PyTorch's optimizer steps run in a fresh process: torch.optim loads triton, which crashes a process
where TensorFlow was loaded first (see test_tensorflow.py); forward passes need neither.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401 - before TensorFlow, see the module docstring

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")

from harness.benchmarks import REPO_ROOT
from harness.errors import UserError
from harness.runner import load_benchmark_config
from recommendation.pytorch.model import build_model as build_torch_model
from recommendation.tensorflow import convert
from recommendation.tensorflow import train as tf_train
from recommendation.tensorflow.model import build_model as build_keras_model

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


@pytest.mark.parametrize("factors, layers", SIZES)
def test_torch_to_keras_gives_the_same_logits(factors, layers):
    source = build_torch_model(USERS, ITEMS, factors, layers, seed=1)
    source.load_numpy(perturbed({k: v.numpy() for k, v in source.state_dict().items()}, seed=2))
    target = build_keras_model(USERS, ITEMS, factors, layers, seed=7)
    convert.torch_to_keras(source, target)
    users, items = batch()
    expected = torch_logits(source, users, items)
    assert np.abs(expected).max() > 0.5  # not a near-constant output
    assert np.abs(target(users, items).numpy() - expected).max() < 1e-5


@pytest.mark.parametrize("factors, layers", SIZES)
def test_keras_to_torch_gives_the_same_logits(factors, layers):
    source = build_keras_model(USERS, ITEMS, factors, layers, seed=1)
    convert.load_torch_layout(source, perturbed(convert.keras_to_torch_layout(source), seed=3))
    target = build_torch_model(USERS, ITEMS, factors, layers, seed=7)
    convert.keras_to_torch(source, target)
    users, items = batch(1)
    expected = source(users, items).numpy()
    assert np.abs(expected).max() > 0.5
    assert np.abs(torch_logits(target, users, items) - expected).max() < 1e-5


def test_same_seed_same_initial_weights():
    keras_state = convert.keras_to_torch_layout(build_keras_model(USERS, ITEMS, 8, (64, 32, 16, 8), seed=4))
    torch_state = build_torch_model(USERS, ITEMS, 8, (64, 32, 16, 8), seed=4).state_dict()
    assert list(keras_state) == list(torch_state)
    assert all(np.array_equal(keras_state[name], torch_state[name].numpy()) for name in torch_state)


def test_files_convert_both_ways(tmp_path):
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


TORCH_STEPS = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    import torch.nn.functional as F
    from recommendation.pytorch.model import build_model
    users, items, labels = (np.load(sys.argv[1])[key] for key in ("users", "items", "labels"))
    model = build_model(60, 90, 8, (64, 32, 16, 8), seed=9)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.25, 0.5), eps=1e-8)
    losses = []
    for step in range(len(users)):
        logits = model(torch.from_numpy(users[step]).long(), torch.from_numpy(items[step]).long())
        loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(labels[step]))
        optimizer.zero_grad(); loss.backward(); optimizer.step()
        losses.append(loss.item())
    np.savez(sys.argv[2], **{k: v.numpy() for k, v in model.state_dict().items()})
    print(json.dumps(losses))
""")


def test_optimizer_steps_match(tmp_path):
    """Six Adam steps (reference betas 0.25/0.5) from the same weights on the same batches, where users
    and items repeat within a batch: the weights agree to 1e-5 and the losses to 1e-6."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, USERS, (6, 256)).astype(np.int32)
    items = rng.integers(0, ITEMS, (6, 256)).astype(np.int32)
    labels = (rng.random((6, 256)) < 0.2).astype(np.float32)
    np.savez(tmp_path / "batches.npz", users=users, items=items, labels=labels)
    completed = subprocess.run([sys.executable, "-c", TORCH_STEPS, str(tmp_path / "batches.npz"),
                                str(tmp_path / "torch.npz")], cwd=REPO_ROOT, capture_output=True, text=True,
                               check=False, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    torch_losses = json.loads(completed.stdout.strip().splitlines()[-1])

    model = build_keras_model(USERS, ITEMS, 8, (64, 32, 16, 8), seed=9)
    optimizer = tf_train.Adam(learning_rate=0.01, beta_1=0.25, beta_2=0.5, epsilon=1e-8)
    optimizer.build(model.trainable_variables)
    step = tf_train.make_train_step(model, optimizer, tf.distribute.get_strategy())
    size = np.int32(users.shape[1])
    keras_losses = [float(step((users[i], items[i], labels[i], size, size))) / size for i in range(len(users))]
    np.testing.assert_allclose(keras_losses, torch_losses, atol=1e-6)
    torch_state = np.load(tmp_path / "torch.npz")
    for name, value in convert.keras_to_torch_layout(model).items():
        assert np.abs(value - torch_state[name]).max() < 1e-5, name


def test_same_seed_same_hr_curve_on_tiny_data(tiny_data, tmp_path):
    """The smoke config, four epochs, seed 3, in both frameworks: the same initial weights and samples
    give HR@10 curves that differ only by floating-point rounding."""
    overrides = [f"run.data_dir={tiny_data}", "run.progress=false", "run.threads=1", "run.seed=3",
                 "schedule.max_epochs=4", "run.stop_at_target=false"]
    command = [sys.executable, "-m", "harness", "train", "recommendation", "--framework", "pytorch", "--json",
               *[arg for text in [*overrides, f"run.out_dir={tmp_path / 'pytorch'}"] for arg in ("--set", text)]]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=600,
                               env={**os.environ, "MLBENCH_NO_PROGRESS": "1"})
    assert completed.returncode in (0, 1), completed.stderr[-3000:]
    torch_curve = [value for _, value in json.loads(completed.stdout)[0]["eval_history"]]
    keras_curve = [value for _, value in tf_train.main(load_benchmark_config(
        "recommendation", "smoke", [*overrides, f"run.out_dir={tmp_path / 'tensorflow'}"])).eval_history]
    assert len(torch_curve) == len(keras_curve) == 4
    assert keras_curve[-1] > 0.5  # a learning run, not two untrained ones agreeing
    assert np.abs(np.array(keras_curve) - np.array(torch_curve)).max() < 0.02, (keras_curve, torch_curve)
