"""A few training steps agree between the frameworks: each framework's own train_one_epoch (CTC loss,
gradient clipping, Nesterov SGD) on the same batches from the same weights, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import load_config
from harness.torch_runtime import TorchRuntime
from speech_recognition.batches import BatchSource
from speech_recognition.config import Config
from speech_recognition.dataset import load_splits
from speech_recognition.pytorch import train as torch_train
from speech_recognition.pytorch.model import DeepSpeech2 as TorchDeepSpeech2

pytestmark = pytest.mark.numerics  # parity: CI runs it again under the AVX2 caps (.ci/run)

SMALL = dict(conv_channels=4, rnn_hidden_size=24, rnn_layers=2)
STEPS = 3


@pytest.mark.parametrize("clip_norm", [5.0])  # a norm that clips (the reference's 400 would not here)
def test_one_epoch_of_training_agrees_in_float64(tiny_librispeech, tmp_path, clip_norm):
    import keras

    from speech_recognition.tensorflow import train as tf_train
    from speech_recognition.tensorflow.convert import torch_state_from_keras, torch_to_keras
    from speech_recognition.tensorflow.model import DeepSpeech2 as KerasDeepSpeech2

    cfg = load_config(Config, "speech_recognition/configs/smoke.yaml", [
        f"run.data_dir={tiny_librispeech}", f"run.out_dir={tmp_path}", "run.progress=false", "run.num_workers=0",
        "optimizer.base_lr=0.002", f"optimizer.gradient_clip_norm={clip_norm}"])
    # 3 steps of 4 utterances: batch norm over 4 x ~100 frames, a small learning rate, float64: rounding
    # stays at the 1e-15 level and nothing amplifies it over three steps
    source = BatchSource(load_splits(tiny_librispeech, ["dev-clean"])[:STEPS * 4], 4, training=True)

    torch.manual_seed(0)
    torch_model = TorchDeepSpeech2(**SMALL).double()
    initial = {name: tensor.clone().numpy() for name, tensor in torch_model.state_dict().items()}
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        keras_model = KerasDeepSpeech2(**SMALL)
        keras_model(np.zeros((1, 161, 31, 1)))
        torch_to_keras(torch_model, keras_model)
        optimizer = tf_train.build_optimizer(cfg, keras_model)
        import tensorflow as tf

        step = tf_train.make_train_step(keras_model, optimizer, tf.distribute.get_strategy(), clip_norm)
        keras_loss = tf_train.train_one_epoch(step, source, cfg, epoch=1)
    finally:
        keras.config.set_dtype_policy(previous)

    rt = TorchRuntime(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), amp_dtype=None)
    torch_optimizer, _ = torch_train.build_optimizer(cfg, torch_model)
    torch_loss = torch_train.train_one_epoch(torch_model, torch_optimizer, rt.grad_scaler(), source, cfg, rt, epoch=1)

    # 1e-8, not 1e-15: TensorFlow's CTC kernel loses float64 precision (against torch's CTC on the same
    # float64 logits: losses 1e-10 relative apart, gradients 1e-7 of their largest value); the networks'
    # forward passes agree to 1e-15 (test_model.py)
    assert torch_loss == pytest.approx(keras_loss, rel=1e-8)
    trained = torch_state_from_keras(keras_model)
    for name, tensor in torch_model.state_dict().items():
        if "running" in name or "num_batches" in name:
            continue  # running variance: PyTorch keeps the unbiased one (tensorflow/model.py)
        # the updates agree to 1e-5 of their size: 100x the CTC gradients' own disagreement above; a
        # wrong gate order, momentum rule or clipping would differ by O(1)
        torch_update, keras_update = tensor.numpy() - initial[name], trained[name] - initial[name]
        if name in ("conv1.bias", "conv2.bias"):  # a bias before batch norm has no gradient: rounding only
            assert max(np.abs(torch_update).max(), np.abs(keras_update).max()) <= 1e-12, name
            continue
        assert np.abs(torch_update).max() > 1e-6, name
        assert np.abs(keras_update - torch_update).max() <= 1e-5 * np.abs(torch_update).max(), name
