"""PyTorch <-> Keras ResNet-50: the same parameters, names and function (converted weights, same logits)."""

from __future__ import annotations

# torch (and its torch._dynamo, which loads triton) before TensorFlow: in the other order triton's
# native library crashes the process (TF 2.21 / torch 2.14 ship conflicting LLVM symbols)
import torch
import torch._dynamo

# isort: split
import numpy as np
import pytest

from image_classification.pytorch.model import build_model as build_torch
from image_classification.pytorch.model import count_parameters as count_torch
from image_classification.tensorflow import convert
from image_classification.tensorflow.model import build_model as build_keras
from image_classification.tensorflow.model import count_parameters as count_keras


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


def test_resnet50_converts_both_ways_with_the_same_logits():
    torch_model = calibrated_torch_resnet(0, image_size=224)
    keras_model = build_keras()
    assert count_torch(torch_model) == count_keras(keras_model) == 25_557_032
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())

    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch_logits = torch_model(images).numpy()
    keras_logits = np.asarray(keras_model(images.permute(0, 2, 3, 1).numpy(), training=False))
    assert np.abs(torch_logits).max() > 0.5  # a real signal, not all-zero logits
    assert np.abs(torch_logits - keras_logits).max() < 1e-4

    # and back: Keras -> a fresh PyTorch model gives bit-identical weights and logits
    state = convert.torch_state_dict(keras_model)
    assert list(state) == list(torch_model.state_dict())  # same keys, same order
    round_trip = build_torch()
    round_trip.load_state_dict(convert.to_torch_state_dict(state), strict=True)
    round_trip.eval()
    for key, value in torch_model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, round_trip.state_dict()[key]), key
    with torch.no_grad():
        np.testing.assert_array_equal(round_trip(images).numpy(), torch_logits)


@pytest.mark.parametrize("zero_init_residual", [True, False])
def test_small_configs_convert_too(zero_init_residual):
    kwargs = {"num_classes": 10, "layers": (1, 1, 1, 1), "width": 16, "zero_init_residual": zero_init_residual}
    torch_model = calibrated_torch_resnet(1, **kwargs)
    keras_model = build_keras(**kwargs, image_size=64)
    assert count_torch(torch_model) == count_keras(keras_model)
    convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    images = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch_logits = torch_model(images).numpy()
    keras_logits = np.asarray(keras_model(images.permute(0, 2, 3, 1).numpy(), training=False))
    assert np.abs(torch_logits - keras_logits).max() < 1e-4


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
    with pytest.raises(ValueError, match="conv1.weight"):
        convert.load_torch_state_dict(keras_model, torch_model.state_dict())
    state = dict(build_torch(num_classes=10, layers=(1, 1, 1, 1), width=8).state_dict())
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="extra.weight"):
        convert.load_torch_state_dict(keras_model, state)
