"""The two optimizers the rules allow for ResNet: SGD with momentum (torch.optim.SGD) and LARS.

LARS (You, Gitman, Ginsburg 2017, "Large Batch Training of Convolutional Networks") scales each
layer's step by the trust ratio eta * ||w|| / (||g|| + wd * ||w|| + eps), as the MLPerf reference's
`tf.contrib.opt.LARSOptimizer` and NVIDIA's v0.7 submissions do; BN parameters and biases are
excluded from both the adaptation and the weight decay (their `skip_list`).
"""

from __future__ import annotations

import torch
from torch import nn

from harness.errors import ConfigError
from image_classification.config import Optimizer


def parameter_groups(model: nn.Module, weight_decay: float, no_wd_on_bn_bias: bool) -> list[dict]:
    """Conv/linear weights decay; BN gamma/beta and biases (the 1-D tensors) do not, if asked.

    No weight decay on BN and bias: Goyal et al. 2017 discuss it (sec. 3), He et al. 2019 ("Bag of
    Tricks", sec. 3.1) measure it; MLPerf ResNet submissions use it.
    """
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if no_wd_on_bn_bias and parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay, "lars_adapt": True}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "lars_adapt": False})
    return groups


class Lars(torch.optim.Optimizer):
    """LARS with momentum: v = m * v + lr * trust * (g + wd * w); w -= v (the reference's update)."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001, epsilon: float = 0.0):
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta,
                    "epsilon": epsilon, "lars_adapt": True}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                grad = parameter.grad
                weight_decay = group["weight_decay"]
                scaled_lr = group["lr"]
                if group["lars_adapt"]:
                    weight_norm = torch.linalg.vector_norm(parameter)
                    grad_norm = torch.linalg.vector_norm(grad)
                    trust = group["eta"] * weight_norm / (grad_norm + weight_decay * weight_norm
                                                          + group["epsilon"])
                    # a zero norm (zero-initialized gamma, first step) falls back to the plain lr
                    trust = torch.where((weight_norm > 0) & (grad_norm > 0), trust, torch.ones_like(trust))
                    scaled_lr = scaled_lr * trust
                update = grad.add(parameter, alpha=weight_decay) if weight_decay else grad.clone()
                update.mul_(scaled_lr)
                state = self.state[parameter]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = update
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(update)
                parameter.sub_(state["momentum_buffer"])
        return loss


def build_optimizer(opt: Optimizer, model: nn.Module, peak_lr: float) -> torch.optim.Optimizer:
    groups = parameter_groups(model, opt.weight_decay, opt.no_wd_on_bn_bias)
    if opt.name == "sgd":
        return torch.optim.SGD(groups, lr=peak_lr, momentum=opt.momentum, nesterov=opt.nesterov)
    if opt.name == "lars":
        return Lars(groups, lr=peak_lr, momentum=opt.momentum, eta=opt.lars_eta, epsilon=opt.lars_epsilon)
    raise ConfigError(f"optimizer.name={opt.name!r}: expected 'sgd' or 'lars'")
