"""The PyTorch ResNet-50 v1.5: parameter count, torchvision's names and function, v1.5 strides, init."""

from __future__ import annotations

import torch
import torchvision

from image_classification.pytorch.model import Bottleneck, build_model, count_parameters
from image_classification.pytorch.optimizer import Lars, parameter_groups


def test_resnet50_has_25_557_032_parameters():
    assert count_parameters(build_model()) == 25_557_032


def test_same_names_and_function_as_torchvision_resnet50():
    torch.manual_seed(0)
    ours, theirs = build_model(zero_init_residual=False), torchvision.models.resnet50()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [tuple(v.shape) for v in ours.state_dict().values()] == \
           [tuple(v.shape) for v in theirs.state_dict().values()]
    theirs.load_state_dict(ours.state_dict())
    ours.eval(), theirs.eval()
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(ours(images), theirs(images))


def test_v15_strides_sit_on_the_3x3_convolutions():
    model = build_model()
    for stage in ("layer2", "layer3", "layer4"):
        block = getattr(model, stage)[0]
        assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
        assert block.downsample[0].stride == (2, 2)
    assert model.layer1[0].conv2.stride == (1, 1)


def test_zero_init_residual_and_init_statistics():
    torch.manual_seed(0)
    model = build_model(zero_init_residual=True)
    blocks = [module for module in model.modules() if isinstance(module, Bottleneck)]
    assert len(blocks) == 16
    assert all(torch.count_nonzero(block.bn3.weight) == 0 for block in blocks)
    assert all(torch.all(block.bn2.weight == 1) for block in blocks)
    # He init with fan_out: std = sqrt(2 / (out_channels * k * k)) = sqrt(2 / (64 * 49)) for conv1
    assert abs(model.conv1.weight.std().item() - (2 / (64 * 49)) ** 0.5) < 0.002
    # the option changes the init only, not the parameters
    assert count_parameters(build_model(zero_init_residual=False)) == count_parameters(model)


def test_smoke_model_is_reduced_but_the_same_structure():
    model = build_model(num_classes=10, layers=(1, 1, 1, 1), width=16)
    logits = model(torch.randn(4, 3, 64, 64))
    assert logits.shape == (4, 10)
    assert model.fc.in_features == 16 * 8 * 4
    assert count_parameters(model) == 511_514  # the smoke model: 2% of ResNet-50


def test_no_weight_decay_on_batchnorm_and_bias():
    model = build_model(num_classes=10, layers=(1, 1, 1, 1), width=16)
    decay, no_decay = parameter_groups(model, 1e-4, no_wd_on_bn_bias=True)
    names = {id(p): name for name, p in model.named_parameters()}
    assert all(names[id(p)].endswith("weight") and p.ndim in (2, 4) for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} == \
           {name for name, p in model.named_parameters() if ".bn" in name or name.startswith("bn")
            or "downsample.1" in name or name == "fc.bias"}
    assert no_decay["weight_decay"] == 0.0
    (single,) = parameter_groups(model, 1e-4, no_wd_on_bn_bias=False)
    assert len(single["params"]) == len(list(model.parameters()))


def test_lars_step_scales_by_the_trust_ratio():
    weight = torch.nn.Parameter(torch.full((4,), 2.0))  # ||w|| = 4
    weight.grad = torch.full((4,), 0.5)  # ||g|| = 1
    optimizer = Lars([{"params": [weight], "weight_decay": 0.0, "lars_adapt": True}], lr=1.0, eta=0.001)
    optimizer.step()
    # trust = 0.001 * 4 / 1; update = lr * trust * g = 0.004 * 0.5
    assert torch.allclose(weight.detach(), torch.full((4,), 2.0 - 0.002))
    bias = torch.nn.Parameter(torch.zeros(3))  # excluded group: plain momentum SGD
    bias.grad = torch.ones(3)
    Lars([{"params": [bias], "weight_decay": 0.0, "lars_adapt": False}], lr=0.1).step()
    assert torch.allclose(bias.detach(), torch.full((3,), -0.1))
