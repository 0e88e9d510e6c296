"""DeepSpeech2 in both frameworks: the reference's size, the same layers, converters, forward parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.config import load_config
from speech_recognition.architecture import output_frames, rnn_input_size
from speech_recognition.config import Config
from speech_recognition.pytorch.model import DeepSpeech2 as TorchDeepSpeech2
from speech_recognition.pytorch.model import parameter_count

# The v0.5 reference model (3 x GRU 2560, unidirectional, 32 conv channels), counted by hand:
#   conv1 32*1*41*11 + 32, conv2 32*32*21*11 + 32, 2 x BatchNorm2d(32) (2*32 each),
#   GRU(672 -> 2560) 3*2560*(672 + 2560) + 2*3*2560, 2 x GRU(2560 -> 2560) 3*2560*5120 + 2*3*2560,
#   BatchNorm1d(2560) 2*2560, Linear(2560 -> 29, no bias) 2560*29
REFERENCE_PARAMETERS = (32 * 41 * 11 + 32) + (32 * 32 * 21 * 11 + 32) + 2 * 64 \
    + (3 * 2560 * (672 + 2560) + 6 * 2560) + 2 * (3 * 2560 * 5120 + 6 * 2560) + 2 * 2560 + 2560 * 29
SMALL = dict(conv_channels=4, rnn_hidden_size=16, rnn_layers=2)


def test_reference_model_has_the_reference_size_in_both_frameworks():
    from speech_recognition.tensorflow.model import build_model
    from speech_recognition.tensorflow.model import parameter_count as keras_count

    cfg = load_config(Config, "speech_recognition/configs/reference.yaml")
    assert rnn_input_size(32) == 672  # the reference README's printout: GRU(672, 2560)
    assert REFERENCE_PARAMETERS == 103_841_568
    assert parameter_count(TorchDeepSpeech2(32, 2560, 3)) == REFERENCE_PARAMETERS
    assert keras_count(build_model(cfg.model, seed=0)) == REFERENCE_PARAMETERS


def test_same_layer_names_in_the_same_order():
    from speech_recognition.tensorflow.model import DeepSpeech2

    torch_names = [name for name, _ in TorchDeepSpeech2(**SMALL).named_children()]
    keras_model = DeepSpeech2(**SMALL)
    keras_model(np.zeros((1, 161, 31, 1), np.float32))
    keras_names = [layer.name for layer in keras_model.layers]
    assert torch_names == ["conv1", "conv1_bn", "conv2", "conv2_bn", "rnns", "fc_bn", "fc"]
    assert keras_names == ["conv1", "conv1_bn", "conv2", "conv2_bn", "rnns_0", "rnns_1", "fc_bn", "fc"]


@pytest.mark.parametrize("frames", [31, 32, 100, 157])
def test_output_frames_is_what_the_network_produces(frames):
    model = TorchDeepSpeech2(**SMALL).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 1, 161, frames))
    assert out.shape == (1, int(output_frames(frames)), 29)


def _converted_pair(dtype: str, seed: int = 0):
    import keras

    from speech_recognition.tensorflow.convert import torch_to_keras
    from speech_recognition.tensorflow.model import DeepSpeech2

    torch.manual_seed(seed)
    torch_model = TorchDeepSpeech2(**SMALL).to(getattr(torch, dtype))
    # non-trivial batch-norm statistics, so that evaluation mode is tested too
    for bn in (torch_model.conv1_bn, torch_model.conv2_bn, torch_model.fc_bn):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    previous = keras.config.dtype_policy()  # the global policy, not floatx: Keras caches it at first use
    keras.config.set_dtype_policy(dtype)
    try:
        keras_model = DeepSpeech2(**SMALL)
        keras_model(np.zeros((1, 161, 31, 1), dtype))
    finally:
        keras.config.set_dtype_policy(previous)
    torch_to_keras(torch_model, keras_model)
    return torch_model, keras_model


@pytest.mark.parametrize("training", [False, True])
def test_forward_parity_float64(training):
    """The same function: float64 in both frameworks, relative bound 1e-10 of the output's scale."""
    torch_model, keras_model = _converted_pair("float64")
    x = np.random.default_rng(1).standard_normal((3, 161, 90))
    torch_model.train(training)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)[:, None]).numpy()
    actual = keras_model(x[..., None], training=training).numpy()
    assert np.abs(actual - expected).max() <= 1e-10 * np.abs(expected).max()


def test_forward_parity_float32_and_converters_both_ways():
    """float32: max abs difference <= 1e-4 (BENCHMARK_DONE point 4), bounded also relative to scale."""
    from speech_recognition.tensorflow.convert import keras_to_torch

    torch_model, keras_model = _converted_pair("float32", seed=3)
    x = np.random.default_rng(2).standard_normal((2, 161, 120)).astype(np.float32)
    torch_model.eval()
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(x)[:, None]).numpy()
    actual = keras_model(x[..., None], training=False).numpy()
    assert np.abs(actual - expected).max() <= min(1e-4, 1e-5 * np.abs(expected).max() * 10)
    back = TorchDeepSpeech2(**SMALL)
    keras_to_torch(keras_model, back)
    for name, tensor in torch_model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            continue
        assert torch.equal(back.state_dict()[name], tensor), name
