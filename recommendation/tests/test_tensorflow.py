"""TensorFlow NCF: the model is NeuMF, evaluation is metrics.py's, the smoke run reaches its target with a
compliant log, seeded runs repeat exactly, a resumed run continues exactly, and replicas split batches."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

# torch.optim loads triton lazily; libtriton loaded after TensorFlow's LLVM crashes the process
# (segfault), so in a session that will also run PyTorch tests it must come first.
if "tensorflow" not in sys.modules and importlib.util.find_spec("triton"):
    import triton  # noqa: F401

import numpy as np
import pytest
import tensorflow as tf

from harness import tf_runtime
from harness.benchmarks import REPO_ROOT
from harness.errors import ConfigError
from harness.runner import load_benchmark_config
from recommendation import metrics, sampling
from recommendation.dataset import load_prepared
from recommendation.tensorflow import train
from recommendation.tensorflow.convert import keras_to_torch_layout, load_torch_layout
from recommendation.tensorflow.data import build_eval, distribute_epoch, epoch_dataset
from recommendation.tensorflow.model import build_model
from recommendation.tensorflow.throughput import (
    tensorflow_eval_time,
    tensorflow_throughput,
)
from recommendation.weights import initial_weights, weight_shapes

DEFAULT = tf.distribute.get_strategy()


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
def test_model_is_neumf_with_the_shared_init(factors, layers):
    model = build_model(30, 50, factors, layers, seed=3)
    shapes = weight_shapes(30, 50, factors, layers)
    # the PyTorch names and order; Dense kernels are the transposed nn.Linear weights
    assert [variable.path for variable in model.weights][:5] == [
        "neumf/mf_user_embed/embeddings", "neumf/mf_item_embed/embeddings", "neumf/mlp_user_embed/embeddings",
        "neumf/mlp_item_embed/embeddings", "neumf/mlp.0/kernel"]
    state = keras_to_torch_layout(model)
    assert list(state) == list(shapes) and {name: value.shape for name, value in state.items()} == shapes
    weights = initial_weights(30, 50, factors, layers, seed=3)
    assert all(np.array_equal(state[name], weights[name]) for name in shapes)  # bit-identical start
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 30, 64), rng.integers(0, 50, 64)
    # the same function as the NumPy definition: compared in float64, to 1e-12 of the logits' scale
    with tf_runtime.float64_policy():
        model = build_model(30, 50, factors, layers, seed=3)
    logits = model(users.astype(np.int32), items.astype(np.int32)).numpy()
    expected = numpy_neumf(weights, users, items, layers)
    assert logits.dtype == np.float64 and np.abs(logits - expected).max() <= 1e-12 * np.abs(expected).max()


def test_adam_is_torch_adam():
    """Three steps of train.Adam against torch.optim.Adam's update written out in NumPy (eps after the
    bias correction), with a tiny gradient where Keras' own epsilon placement would differ; float64,
    so the same rule agrees to rounding (bound 1e-13)."""
    lr, beta1, beta2, eps = 0.005, 0.9, 0.999, 1e-8
    variable = tf.Variable(np.array([0.5, -0.25, 0.125], np.float64))
    with tf_runtime.float64_policy():  # the learning-rate variable in float64 too
        optimizer = train.Adam(learning_rate=lr, beta_1=beta1, beta_2=beta2, epsilon=eps)
    optimizer.build([variable])
    expected, m, v = variable.numpy().astype(np.float64), np.zeros(3), np.zeros(3)
    for step, gradient in enumerate([[1e-7, -2.0, 0.5], [3e-8, 1.0, -0.5], [0.0, 0.5, 0.25]], start=1):
        gradient = np.array(gradient)
        optimizer.apply_gradients([(tf.constant(gradient, tf.float64), variable)])
        m = beta1 * m + (1 - beta1) * gradient
        v = beta2 * v + (1 - beta2) * gradient ** 2
        expected -= lr / (1 - beta1 ** step) * m / (np.sqrt(v) / np.sqrt(1 - beta2 ** step) + eps)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-13, atol=0)


def test_train_step_sums_duplicate_embedding_rows():
    """A batch that repeats a user: Adam sees its embedding gradient summed over the repeats (dense), as
    PyTorch's nn.Embedding gives it; Keras' IndexedSlices path would square the rows before summing.
    Adam's first step is lr * g / (|g| + eps) with the right gradient g."""
    model = build_model(4, 6, 8, (16, 8), seed=0)
    optimizer = train.Adam(learning_rate=0.01, beta_1=0.25, beta_2=0.5, epsilon=1e-8)
    optimizer.build(model.trainable_variables)
    users, items = np.array([1, 1, 1, 2], np.int32), np.array([0, 3, 5, 0], np.int32)
    labels = np.array([1, 0, 0, 1], np.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=model(users, items)))
    gradient = tf.convert_to_tensor(tape.gradient(loss, model.mf_user_embed.embeddings)).numpy().astype(np.float64)
    before = model.mf_user_embed.embeddings.numpy()
    train.make_train_step(model, optimizer, DEFAULT)((users, items, labels, np.int32(4), np.int32(4)))
    moved = before - model.mf_user_embed.embeddings.numpy()
    np.testing.assert_allclose(moved, 0.01 * gradient / (np.abs(gradient) + 1e-8), rtol=1e-4, atol=1e-9)
    assert np.all(moved[[0, 3]] == 0) and np.abs(moved[1]).min() > 0.009  # user 1 (3 rows): a full lr step


def test_epoch_batches_are_the_global_batches_on_any_replica_count():
    samples = sampling.EpochSamples(np.arange(1000, dtype=np.int32), np.arange(1000, dtype=np.int32) % 7,
                                    (np.arange(1000) % 5 == 0).astype(np.float32))
    single = list(epoch_dataset(samples, 256, tf.distribute.InputContext(1, 0, 1)).as_numpy_iterator())
    assert [len(batch[0]) for batch in single] == [256, 256, 256, 232]
    assert np.array_equal(np.concatenate([batch[0] for batch in single]), samples.users)
    assert [int(batch[3]) for batch in single] == [256, 256, 256, 232] == [int(batch[4]) for batch in single]
    # 4 replicas on 2 workers: worker w serves replicas 2w, 2w+1, step by step, padded to 64 rows
    shares = {worker: list(epoch_dataset(samples, 256, tf.distribute.InputContext(2, worker, 4)).as_numpy_iterator())
              for worker in (0, 1)}
    assert all(len(batch[0]) == 64 for worker in shares for batch in shares[worker])
    for step in range(4):
        pieces = [shares[worker][2 * step + replica] for worker in (0, 1) for replica in (0, 1)]
        real = np.concatenate([piece[0][:piece[3]] for piece in pieces])
        assert np.array_equal(real, samples.users[step * 256:(step + 1) * 256])
        assert {int(piece[4]) for piece in pieces} == {min(256, 1000 - step * 256)}
    assert [int(piece[3]) for piece in (shares[0][6], shares[0][7], shares[1][6], shares[1][7])] == [58, 58, 58, 58]


def test_evaluate_equals_the_numpy_definition(tiny_data):
    prepared = load_prepared(tiny_data)
    model = build_model(prepared.n_users, prepared.n_items, 8, (64, 32, 16, 8), seed=0)
    # one epoch of training first, so that the ranks spread (an untrained model ranks at random)
    optimizer = train.Adam(learning_rate=0.005)
    optimizer.build(model.trainable_variables)
    samples = sampling.epoch_samples(prepared.train, 4, seed=0, epoch=1)
    dataset, steps = distribute_epoch(samples, 2048, DEFAULT)
    train.train_one_epoch(train.make_train_step(model, optimizer, DEFAULT), dataset, steps, len(samples), 1, False)
    # evaluated in float64 (the trained weights copied): scores computed in other batch sizes could round
    # differently in float32 and reorder two near-equal scores; in float64 no two scores come that close
    with tf_runtime.float64_policy():
        model64 = build_model(prepared.n_users, prepared.n_items, 8, (64, 32, 16, 8), seed=0)
    load_torch_layout(model64, keras_to_torch_layout(model))
    data = build_eval(prepared)
    hr, ndcg = train.evaluate(train.make_rank_fn(model64), data, k=10, batch_size=70_000)
    users = np.broadcast_to(data.users[:, None], data.items.shape)
    scores = model64(users.reshape(-1), data.items.reshape(-1)).numpy().reshape(data.items.shape)
    assert scores.dtype == np.float64
    expected = metrics.evaluate_scores(scores, 10, metrics.distinct_mask(prepared.test_negatives))
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
    runs = [train.main(smoke_config(tiny_data, tmp_path / f"run{index}", "schedule.max_epochs=2", "run.seed=5",
                                    "run.deterministic=true"))
            for index in range(2)]
    assert runs[0].eval_history == runs[1].eval_history and len(runs[0].eval_history) == 2

    interrupted = smoke_config(tiny_data, tmp_path / "resumed", "schedule.max_epochs=1", "run.seed=5",
                               "run.deterministic=true", "run.checkpoint_every_epochs=1")
    assert train.main(interrupted).eval_history == runs[0].eval_history[:1]
    resumed = train.main(smoke_config(tiny_data, tmp_path / "resumed", "schedule.max_epochs=2", "run.seed=5",
                                      "run.deterministic=true", "run.resume=true"))
    assert resumed.eval_history == runs[0].eval_history[1:]
    other_seed = train.main(smoke_config(tiny_data, tmp_path / "seed6", "schedule.max_epochs=1", "run.seed=6"))
    assert other_seed.eval_history != runs[0].eval_history[:1]


def test_eval_negatives_must_match_the_prepared_data(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="prepared with 999 negatives"):
        train.main(smoke_config(tiny_data, tmp_path / "run", "data.eval_negatives_per_user=99"))


def test_training_and_eval_rates_are_samples_over_the_time_they_took(monkeypatch):
    """A fake clock (time.perf_counter) that advances a microsecond per sample the model computes, from
    inside the tf.function steps (tf.py_function): the training rate and the evaluation's scores per
    second must be 10^6 exactly, and the extrapolated time for all users that of their scores."""
    import time

    from recommendation.tensorflow.model import NeuMF

    clock = {"now": 1000.0}

    def spend(rows):
        clock["now"] += int(rows) * 1e-6
        return np.float32(0.0)

    call = NeuMF.call

    def costly_call(self, users, items):
        logits = call(self, users, items)
        return logits + tf.py_function(spend, [tf.shape(users)[0]], tf.float32)  # runs at every step

    monkeypatch.setattr(NeuMF, "call", costly_call)
    monkeypatch.setattr(time, "perf_counter", lambda: clock["now"])
    cfg = load_benchmark_config("recommendation", "reference", [
        "model.factors=8", "model.mlp_layer_sizes=[16,8]", "run.threads=1", "run.device=cpu"])
    training = tensorflow_throughput(cfg, steps=2, warmup_steps=1, global_batch_size=512, n_users=100, n_items=50)
    assert training["samples_per_second"] == pytest.approx(1e6, rel=1e-9)
    assert training["device"].startswith("cpu") and training["precision"] == "float32"
    evaluation = tensorflow_eval_time(cfg, users=20, n_users=100, n_items=50, negatives=9)
    assert evaluation["scores_per_second"] == pytest.approx(1e6, rel=1e-9)
    assert evaluation["extrapolated"] and evaluation["all_users_seconds"] == pytest.approx(100 * 10 * 1e-6, rel=1e-9)


MIRRORED = textwrap.dedent("""
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from harness import tf_runtime
    from recommendation import sampling
    from recommendation.tensorflow import train
    from recommendation.tensorflow.convert import keras_to_torch_layout
    from recommendation.tensorflow.data import EvalData, distribute_epoch
    from recommendation.tensorflow.model import build_model
    rng = np.random.default_rng(0)
    samples = sampling.EpochSamples(rng.integers(0, 40, 900, dtype=np.int32), rng.integers(0, 60, 900, dtype=np.int32),
                                    (rng.random(900) < 0.2).astype(np.float32))
    evaluation = EvalData(np.arange(40, dtype=np.int32), rng.integers(0, 60, (40, 100), dtype=np.int32),
                          np.ones((40, 99), bool))
    result = {}
    for name, strategy in (("one", tf.distribute.get_strategy()),
                           ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))):
        with tf_runtime.float64_policy(), strategy.scope():
            model = build_model(40, 60, 8, (16, 8), seed=0)
            optimizer = train.Adam(learning_rate=0.01, beta_1=0.25, beta_2=0.5, epsilon=1e-8)
            optimizer.build(model.trainable_variables)
        dataset, steps = distribute_epoch(samples, 256, strategy)   # 3 full batches and one of 132
        with tf_runtime.float64_policy():
            loss = train.train_one_epoch(train.make_train_step(model, optimizer, strategy), dataset, steps, 900, 1, False)
            ranks = np.concatenate([train.make_rank_fn(model)(*rows).numpy() for rows in evaluation.dataset(1000)])
        result[name] = {"loss": loss, "replicas": strategy.num_replicas_in_sync, "ranks": ranks.tolist(),
                        "weights": {k: v.tolist() for k, v in keras_to_torch_layout(model).items()}}
    print(json.dumps(result))
""")


@pytest.mark.numerics
def test_two_replicas_train_as_one(tmp_path):
    """MirroredStrategy over two logical CPUs (set before TensorFlow starts: a fresh process) follows
    one replica: the same global batches, the padded uneven last batch masked out; the evaluation
    (cross-replica, on mirrored weights) ranks alike. float64, where summing two replicas' gradients
    instead of one batch's changes a weight by ~1e-16 of its scale: the loss agrees to 1e-12, the
    weights to 1e-10 of each tensor's scale, and the ranks exactly."""
    completed = subprocess.run([sys.executable, "-c", MIRRORED], cwd=REPO_ROOT, capture_output=True, text=True,
                               check=False, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert (result["one"]["replicas"], result["two"]["replicas"]) == (1, 2)
    assert result["one"]["loss"] == pytest.approx(result["two"]["loss"], rel=1e-12)
    ranks = np.array([result["one"]["ranks"], result["two"]["ranks"]])
    assert ranks.max() > 10 and np.array_equal(ranks[0], ranks[1])
    for name, value in result["one"]["weights"].items():
        one, two = np.array(value), np.array(result["two"]["weights"][name])
        assert np.abs(two - one).max() <= 1e-10 * np.abs(one).max(), name
