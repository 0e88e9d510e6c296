"""PyTorch <-> Keras ResNet-50: the same parameters, names and function (converted weights, same logits).

"The same function" is checked in float64 (`.double()` in PyTorch, `tf_runtime.float64_policy()` in
Keras), where the kernels' own rounding (~1e-16 per operation) cannot hide a real difference nor
depend on the machine's instruction set: converted ResNet-50s agree to 3e-14 of the largest logit
(measured; bound 1e-10). float32, what a run computes, is checked on the small configs with a bound
relative to the output's scale: 1e-5 of the largest logit, where the two frameworks differ by 1.8e-6
and PyTorch's own float32 logits differ from its float64 ones by 2.0e-6 (float32 ResNet-50 is only
accurate to ~1.5e-5 of its scale, so its float32 parity is not a useful check).
"""

from __future__ import annotations

# torch (and its torch._dynamo, which loads triton) before TensorFlow: in the other order triton's
# native library crashes the process (TF 2.21 / torch 2.14 ship conflicting LLVM symbols)
import torch
import torch._dynamo

# isort: split
import numpy as np
import pytest

from harness import tf_runtime
from harness.convert import to_torch_state_dict
from harness.errors import UserError
from image_classification.pytorch.model import build_model as build_torch
from image_classification.pytorch.model import count_parameters as count_torch
from image_classification.tensorflow import convert
from image_classification.tensorflow.model import build_model as build_keras
from image_classification.tensorflow.model import count_parameters as count_keras

pytestmark = pytest.mark.numerics


def calibrated_torch_resnet(seed: int, image_size: int = 64, **kwargs) -> torch.nn.Module:
    """A PyTorch ResNet in eval mode with non-trivial BN parameters and statistics.

    Fresh BNs are the identity and zero-init gammas silence every block; random gammas/betas and
    running statistics taken from one training-mode batch (momentum 1) at the evaluation's image
    size make every layer count while keeping activations (and so the logits) at a realistic scale.
    """
    torch.manual_seed(seed)
    model = build_torch(**kwargs)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
                module.momentum = 1.0
        model.train()
        model(torch.randn(8, 3, image_size, image_size, generator=generator))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = 0.1
    return model.eval()


FLOAT64_BOUND = 1e-10  # of the largest logit; measured 3e-14 (ResNet-50), AVX-512 and AVX2 alike
FLOAT32_BOUND = 1e-5  # of the largest logit; measured 1.8e-6 (small configs), see the module docstring


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def test_resnet50_converts_both_ways_with_the_same_logits():
    """float64: converted weights give the same logits to 1e-10 of their scale; back to PyTorch, the
    weights and logits are bit-identical (the same PyTorch kernels on the same numbers)."""
    torch_model = calibrated_torch_resnet(0, image_size=224).double()
    with tf_runtime.float64_policy():
        keras_model = build_keras()
    assert count_torch(torch_model) == count_keras(keras_model) == 25_557_032
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    assert keras_model.get_layer("fc").kernel.dtype == "float64"

    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        torch_logits = torch_model(images).numpy()
    keras_logits = np.asarray(keras_model(images.permute(0, 2, 3, 1).numpy(), training=False))
    assert keras_logits.dtype == np.float64
    assert np.abs(torch_logits).max() > 0.5  # a real signal, not all-zero logits
    assert relative_difference(keras_logits, torch_logits) < FLOAT64_BOUND

    # and back: Keras -> a fresh PyTorch model gives bit-identical weights and logits
    state = convert.torch_state_dict(keras_model)
    assert list(state) == list(torch_model.state_dict())  # same keys, same order
    round_trip = build_torch().double()
    round_trip.load_state_dict(to_torch_state_dict(state), strict=True)
    round_trip.eval()
    for key, value in torch_model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, round_trip.state_dict()[key]), key
    with torch.no_grad():
        np.testing.assert_array_equal(round_trip(images).numpy(), torch_logits)


def test_a_small_config_converts_too():
    """float32 (what a run computes): within 1e-5 of the largest logit; float64: within 1e-10.
    (zero_init_residual only sets initial gammas, which calibrated_torch_resnet replaces.)"""
    kwargs = {"num_classes": 10, "layers": (1, 1, 1, 1), "width": 16, "zero_init_residual": True}
    torch_model = calibrated_torch_resnet(1, **kwargs)
    keras_model = build_keras(**kwargs, image_size=64)
    assert count_torch(torch_model) == count_keras(keras_model)
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch_logits = torch_model(images).numpy()
    keras_logits = np.asarray(keras_model(images.permute(0, 2, 3, 1).numpy(), training=False))
    assert relative_difference(keras_logits, torch_logits) < FLOAT32_BOUND

    torch_model = torch_model.double()
    with tf_runtime.float64_policy():
        keras_model = build_keras(**kwargs, image_size=64)
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    with torch.no_grad():
        torch_logits = torch_model(images.double()).numpy()
    keras_logits = np.asarray(keras_model(images.double().permute(0, 2, 3, 1).numpy(), training=False))
    assert relative_difference(keras_logits, torch_logits) < FLOAT64_BOUND


def test_fresh_models_initialize_alike():
    """Same init distributions: zero gammas where torch has them, kaiming fan_out convs."""
    kwargs = {"num_classes": 10, "layers": (1, 1, 1, 1), "width": 16}
    torch_state = build_torch(**kwargs).state_dict()
    keras_state = convert.torch_state_dict(build_keras(**kwargs, image_size=64))
    assert list(torch_state) == list(keras_state)
    for key, value in torch_state.items():
        theirs, ours = value.numpy(), keras_state[key]
        assert theirs.shape == ours.shape, key
        if key == "fc.bias" or key.endswith("num_batches_tracked"):
            continue  # random U(+-1/sqrt(fan_in)) / a counter
        if theirs.ndim == 1:  # BN gamma (1, or 0 on bn3), beta 0, mean 0, var 1
            np.testing.assert_array_equal(theirs, ours, err_msg=key)
        elif theirs.size > 2000:  # enough samples to compare the spreads of random inits
            assert ours.std() == pytest.approx(theirs.std(), rel=0.1), key


def test_converter_rejects_a_state_dict_of_another_shape():
    torch_model = build_torch(num_classes=10, layers=(1, 1, 1, 1), width=16)
    keras_model = build_keras(num_classes=10, layers=(1, 1, 1, 1), width=8, image_size=32)
    with pytest.raises(UserError, match="conv1.weight"):
        convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    state = dict(build_torch(num_classes=10, layers=(1, 1, 1, 1), width=8).state_dict())
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(UserError, match="extra.weight"):
        convert.load_torch_state_dict(keras_model, state)
