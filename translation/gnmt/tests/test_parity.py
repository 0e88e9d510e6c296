"""The two frameworks' GNMTs are one model: same parameters, same outputs after conversion, the same
beam-search translations token for token, the same weights after a few training steps.

"The same function" claims are compared in float64 (both frameworks compute in float64 on CPU):
relative bounds of 1e-9 hold whatever the CPU's vector instructions. The checklist's float32 bound
(max abs difference <= 1e-4 on the logits) is checked too.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import torch

from harness.config import load_config
from harness.torch_runtime import TorchRuntime
from translation.batching import Encoded
from translation.beam_search_gnmt_pytorch import beam_search as torch_beam_search
from translation.beam_search_gnmt_tensorflow import beam_search as tf_beam_search
from translation.bpe import BOS_ID, EOS_ID
from translation.gnmt.config import Config, Model
from translation.gnmt.pytorch import model as torch_model
from translation.gnmt.schedule import lr_schedule
from translation.gnmt.tensorflow import model as keras_model
from translation.gnmt.tensorflow.convert import keras_to_torch, keras_to_torch_layout, load_torch_layout, torch_to_keras
from translation.gnmt.weights import parameter_count

pytestmark = pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps (.ci/run)

SMALL = Model(variant="REDUCED", hidden_size=16, num_layers=4, dropout=0.0)
VOCAB = 29
CPU = TorchRuntime(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), amp_dtype=None)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def batch(seed: int = 0, size: int = 4, length: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sources [BOS] w.. [EOS] of different lengths (padding after), their lengths, targets [BOS] .. [EOS]."""
    rng = np.random.default_rng(seed)
    lengths = np.array([length, length - 3, 3, length - 1][:size])
    source = np.zeros((size, length), np.int64)
    target = np.zeros((size, length - 1), np.int64)
    for row, n in enumerate(lengths):
        source[row, :n] = [BOS_ID, *rng.integers(4, VOCAB, n - 2), EOS_ID]
        m = max(3, (n + row) % (length - 1))
        target[row, :m] = [BOS_ID, *rng.integers(4, VOCAB, m - 2), EOS_ID]
    return source, lengths, target


def models(dtype: str, seed: int = 3, cfg: Model = SMALL):
    pt = torch_model.build_model(VOCAB, cfg, seed=seed, dtype={"float64": torch.float64, "float32": torch.float32}[dtype])
    tk = keras_model.build_model(VOCAB, cfg, seed=seed, dtype=dtype)
    return pt, tk


def test_parameter_counts_are_equal_and_match_the_architecture():
    pt, tk = models("float32")
    expected = parameter_count(VOCAB, SMALL.hidden_size, SMALL.num_layers)
    assert sum(p.numel() for p in pt.parameters()) == expected
    assert sum(int(np.prod(v.shape)) for v in tk.trainable_variables) == expected
    # GNMT v2 with the vocabulary of 32,320 (the reference's BPE vocabulary padded to a multiple of 8,
    # as the v0.7 runs in fp16 did): 160,671,297 parameters (README "Model")
    with torch.device("meta"):
        big = torch_model.GNMT(32320, 1024, 4)
    assert sum(p.numel() for p in big.parameters()) == parameter_count(32320, 1024, 4) == 160_671_297


def test_converted_models_give_the_same_logits_in_float64():
    pt, tk = models("float64")
    source, lengths, target = batch()
    with torch.no_grad():
        expected = pt.eval()(torch.from_numpy(source), torch.from_numpy(lengths), torch.from_numpy(target)).numpy()
    actual = tk(tf.constant(source), tf.constant(lengths), tf.constant(target), training=False).numpy()
    assert np.abs(actual - expected).max() <= 1e-9 * np.abs(expected).max()  # float64 rounding only
    # padding does not leak: a sentence's logits do not depend on the batch's longest sentence
    with torch.no_grad():
        alone = pt(torch.from_numpy(source[2:3, :3]), torch.from_numpy(lengths[2:3]), torch.from_numpy(target[2:3])).numpy()
    assert np.abs(alone[0] - expected[2]).max() <= 1e-12 * np.abs(expected).max()


def test_float32_logits_within_the_checklist_bound_and_conversion_round_trips():
    pt, tk = models("float32", seed=5)
    other = keras_model.build_model(VOCAB, SMALL, seed=6, dtype="float32")
    torch_to_keras(pt, other)  # overwrite seed-6 weights with the PyTorch model's
    source, lengths, target = batch(1)
    with torch.no_grad():
        expected = pt.eval()(torch.from_numpy(source), torch.from_numpy(lengths), torch.from_numpy(target)).numpy()
    actual = other(tf.constant(source), tf.constant(lengths), tf.constant(target)).numpy()
    assert np.abs(actual - expected).max() <= 1e-4
    state = keras_to_torch_layout(tk)
    assert all(np.array_equal(state[name], value.numpy()) for name, value in pt.state_dict().items())
    load_torch_layout(other, state)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(other.trainable_variables, tk.trainable_variables))
    back = torch_model.build_model(VOCAB, SMALL, seed=9, dtype=torch.float64)
    keras_to_torch(tk, back)
    assert all(np.array_equal(back.state_dict()[name].numpy(), value.numpy().astype(np.float64))
               for name, value in pt.state_dict().items())


def test_beam_search_translations_agree_token_for_token():
    """The reference's beam search (beam 5, length normalization, coverage penalty) on both
    converted models: the same sequences, lengths and scores. Weights scaled up so the untrained
    model is decisive, and the EOS logit raised so that one sentence finishes (normalized and
    penalized scores) and others run to the length limit (raw scores)."""
    pt, _ = models("float64", seed=11)
    with torch.no_grad():
        for parameter in pt.parameters():
            parameter.mul_(8.0)
        pt.decoder.classifier.classifier.bias[EOS_ID] += 2.0
    tk = keras_model.build_model(VOCAB, SMALL, seed=0, dtype="float64")
    torch_to_keras(pt, tk)
    source, lengths, _ = batch(2)
    options = dict(bos_id=BOS_ID, eos_id=EOS_ID, source_length=source.shape[1])
    with torch.inference_mode():
        cache = pt.eval().initial_cache(torch.from_numpy(source), torch.from_numpy(lengths))
        expected = torch_beam_search(pt.decode_step, cache, 4, 5, 14, dtype=torch.float64, **options)
    actual = tf_beam_search(tk.decode_step, tk.initial_cache(tf.constant(source), tf.constant(lengths)), 4, 5, 14,
                            dtype=tf.float64, **options)
    assert np.array_equal(expected.sequences.numpy(), actual.sequences)
    assert np.array_equal(expected.lengths.numpy(), actual.lengths)
    np.testing.assert_allclose(actual.scores, expected.scores.numpy(), rtol=1e-9)
    finished = (expected.lengths.numpy() < 14).all(axis=1)
    assert finished.any() and not finished.all()  # both ways a sentence ends were compared


def test_gradients_agree_in_float64():
    """The loss (the reference's label smoothing, per sentence) and its gradient for every parameter.
    Bound: 1e-10 of each tensor's largest gradient. The frameworks' sigmoid / tanh / exp differ in
    the last bit (different vector math libraries), and LSTM recurrences and their backward pass
    carry that through every time step (observed: 5e-12)."""
    from translation.gnmt.tensorflow.convert import _variables

    pt, tk = models("float64", seed=2)
    source, lengths, target = batch(4)
    logits = pt(torch.from_numpy(source), torch.from_numpy(lengths), torch.from_numpy(target)[:, :-1])
    loss_sum, _ = torch_model.smoothed_loss(logits, torch.from_numpy(target)[:, 1:], 0.1)
    (loss_sum / len(source)).backward()
    with tf.GradientTape() as tape:
        tf_logits = tk(tf.constant(source), tf.constant(lengths), tf.constant(target)[:, :-1], training=True)
        tf_loss_sum, _ = keras_model.smoothed_loss(tf_logits, tf.constant(target)[:, 1:], 0.1)
        tf_loss = tf_loss_sum / len(source)
    assert float(tf_loss) == pytest.approx(float(loss_sum) / len(source), rel=1e-12)
    gradients = tape.gradient(tf_loss, tk.trainable_variables)
    torch_gradients = {name: parameter.grad.numpy() for name, parameter in pt.named_parameters()}
    for (name, _, transposed), gradient in zip(_variables(tk), gradients):
        gradient = tf.convert_to_tensor(gradient).numpy()
        gradient = gradient.T if transposed else gradient
        scale = np.abs(torch_gradients[name]).max()
        assert scale > 0 and np.abs(gradient - torch_gradients[name]).max() <= 1e-10 * scale, name


def test_a_few_training_steps_agree_in_float64():
    """Three steps of each framework's own train step on the same batches (dropout 0: no RNG
    involved), from the same initial weights, with clipping active: the weights agree to 1e-10 of
    the distance they moved (the gradients' bound, test_gradients_agree_in_float64; observed
    4e-13). The rate is constant and a power of two: Keras keeps the learning rate in a float32
    variable, which would round a schedule's float64 rates (by ~1e-8 relative; the schedule itself
    is test_config.py's)."""
    from translation.gnmt.pytorch import train as torch_train
    from translation.gnmt.tensorflow import train as tf_train

    cfg = load_config(Config, "translation/gnmt/configs/smoke.yaml", ["optimizer.grad_clip=0.5", "optimizer.warmup_steps=0",
                                                                    "optimizer.learning_rate=0.00390625"])
    cfg = dataclasses.replace(cfg, model=SMALL)
    schedule = lr_schedule(cfg, steps_per_epoch=3)
    pt, tk = models("float64", seed=2)
    batches = [batch(seed) for seed in (4, 5, 6)]
    # a Prepared-like holder: the train steps read padded batches from Encoded corpora
    source = Encoded.from_sequences([row[:n] for s, lengths, _ in batches for row, n in zip(s, lengths)])
    target = Encoded.from_sequences([row[row != 0] for _, _, t in batches for row in t])
    prepared = type("P", (), {"train_source": source, "train_target": target})()
    steps = [np.arange(4 * index, 4 * index + 4) for index in range(3)]

    optimizer, scheduler = torch_train.build_optimizer(cfg, pt, schedule)
    torch_train.train_one_epoch(pt, optimizer, scheduler, CPU.grad_scaler(), prepared, steps, cfg, CPU, 1, False)
    strategy = tf.distribute.get_strategy()
    tf_optimizer = tf_train.build_optimizer(cfg, tk)
    step_fn = tf_train.make_train_step(tk, tf_optimizer, strategy, cfg)
    tf_train.train_one_epoch(step_fn, strategy, prepared, [[s] for s in steps], schedule, 0, 1, False)

    after = keras_to_torch_layout(tk, np.float64)
    initial = torch_model.build_model(VOCAB, SMALL, seed=2, dtype=torch.float64).state_dict()
    for name, value in pt.state_dict().items():
        moved = np.abs(value.numpy() - initial[name].numpy()).max()
        difference = np.abs(after[name] - value.numpy()).max()
        assert difference <= 1e-10 * moved, (name, difference, moved)
    assert max(np.abs(pt.state_dict()[n].numpy() - initial[n].numpy()).max() for n in after) > 1e-3  # it trained
