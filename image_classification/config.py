"""The ResNet-50 config: schema and defaults shared by both frameworks; values in configs/*.yaml.

Defaults are the benchmark (`configs/reference.yaml` repeats them so the file reads on its own):
ResNet-50 v1.5 trained with the MLPerf Training v0.7 closed-division recipe for ResNet, as the
rules (mlcommons/training_policies, training_rules.adoc v0.7, hyperparameter table) allow it and the
v0.7 reference (mlcommons/training, image_classification/tensorflow/official/resnet) runs it:

- SGD with momentum 0.9, linear warmup then polynomial decay of power 2 to 0.0001
  (rules: `sgd_opt_end_learning_rate` == 0.0001; LARS: poly power 2 as well)
- base learning rate 0.1 per 256 images, scaled linearly with the global batch
  (Goyal et al. 2017, "Accurate, Large Minibatch SGD", sec. 2.1; rules: a multiple of 0.001)
- 5 warmup epochs (Goyal et al. sec. 2.2), weight decay 1e-4 = 2^0 x 1e-4 (rules: 1e-4 x 2^N),
  label smoothing 0.1 (v0.7 reference `--label_smoothing=0.1`, Szegedy et al. 2016)
- last BN gamma of each block initialized to 0 and no weight decay on BN and bias parameters:
  the two tricks MLPerf submitters use (Goyal et al. sec. 5.1; NVIDIA's v0.7 MXNet submission
  `--bn-gamma-init0`, `--wd-bias-bn false`; He et al. 2019 "Bag of Tricks" sec. 3.1), kept as options
- evaluation of top-1 on all 50,000 validation images every 4 epochs (v0.7 reference
  `--epochs_between_evals=4`), target 0.759 (rules: ResNet quality target)

`hyperparameters(cfg, ...)` maps these values to the log keys the `training-0.7.0` rules read, and
`LearningRateSchedule` is the one learning-rate formula, so both frameworks log and follow the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compliance.mllog import constants
from harness.config import BaseConfig
from harness.errors import ConfigError


@dataclass(frozen=True)
class Model:
    """ResNet v1.5 (He et al. 2016; stride 2 on the 3x3 conv of a downsampling bottleneck)."""

    width: int = 64  # channels of the stem and of layer1's 3x3 convs; 64 is ResNet-50
    layers: tuple[int, ...] = (3, 4, 6, 3)  # bottleneck blocks per stage; (3, 4, 6, 3) is ResNet-50
    num_classes: int = 1000
    zero_init_residual: bool = True  # gamma = 0 on each block's bn3 (Goyal et al. sec. 5.1)
    bn_eps: float = 1e-5  # torch.nn.BatchNorm2d default, as in the reference
    # PyTorch convention: weight of the new batch in the running average (Keras: 1 - this)
    bn_momentum: float = 0.1


@dataclass(frozen=True)
class Data:
    image_size: int = 224  # RandomResizedCrop / center-crop size (He et al. 2016, sec. 3.4)
    eval_resize: int = 256  # eval: resize the short side to 256, center-crop 224 (ratio 0.875)
    min_crop_area: float = 0.08  # RandomResizedCrop scale=(0.08, 1) (Szegedy et al. 2015, "Inception")
    batch_size: int = 256  # images per process per micro-batch; also the BN span (no sync BN)
    eval_batch_size: int = 250  # per process; 50,000 / 250 = 200 batches
    # micro-batches per optimizer step; global batch = batch_size x processes x this
    gradient_accumulation_steps: int = 1
    # ImageNet channel statistics on the 0..1 scale (torchvision's references and the TF reference)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Optimizer:
    name: str = "sgd"  # sgd | lars (LARS for global batches beyond ~8k: You et al. 2017)
    base_lr: float = 0.1  # peak learning rate for a global batch of `base_lr_batch_size` images
    # linear scaling rule: peak = base_lr x global_batch / base_lr_batch_size; 0 = no scaling
    # (LARS configs are tuned per batch and give the peak directly)
    base_lr_batch_size: int = 256
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4  # L2 penalty; the closed division allows 1e-4 x 2^N
    no_wd_on_bn_bias: bool = True  # exclude BN gamma/beta and biases from weight decay (and LARS)
    end_lr: float = 1e-4  # fixed by the rules
    poly_power: float = 2.0  # fixed by the rules for LARS; the reference value for SGD
    warmup_epochs: int = 5  # whole epochs (the rules log an integer)
    label_smoothing: float = 0.1
    lars_eta: float = 0.001  # LARS trust coefficient (You et al. 2017)
    lars_epsilon: float = 0.0  # fixed to 0 by the rules


@dataclass(frozen=True)
class Schedule:
    max_epochs: int = 90  # the run aborts when the target is not reached by then
    # the learning rate reaches end_lr after this many epochs (warmup included) and stays there
    decay_epochs: int = 90
    eval_every_epochs: int = 4


@dataclass(frozen=True)
class Config(BaseConfig):
    benchmark: str = constants.RESNET
    model: Model = Model()
    data: Data = Data()
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()


def global_batch_size(cfg: Config, world_size: int) -> int:
    """Images per optimizer step over all processes."""
    return cfg.data.batch_size * world_size * cfg.data.gradient_accumulation_steps


def peak_learning_rate(cfg: Config, global_batch: int) -> float:
    """The learning rate at the end of warmup (the rules' `*_opt_base_learning_rate`)."""
    opt = cfg.optimizer
    scale = global_batch / opt.base_lr_batch_size if opt.base_lr_batch_size > 0 else 1.0
    # rounded so 0.1 x 3 logs as 0.3, not 0.30000000000000004 (the rules test multiples of 0.001)
    return round(opt.base_lr * scale, 9)


@dataclass(frozen=True)
class LearningRateSchedule:
    """Linear warmup to `peak` over `warmup_steps`, then (1 - t)^power decay to `end` over `decay_steps`.

    The MLPerf ResNet reference schedule (v0.7 `poly_rate_fn`, training_policies: poly power 2, end
    learning rate 0.0001). Steps count optimizer steps from 0; both frameworks call this.
    """

    peak: float
    end: float
    power: float
    warmup_steps: int
    decay_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.peak * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.decay_steps))
        return self.end + (self.peak - self.end) * (1.0 - progress) ** self.power


def learning_rate_schedule(cfg: Config, global_batch: int, steps_per_epoch: int) -> LearningRateSchedule:
    opt = cfg.optimizer
    warmup_steps = math.ceil(opt.warmup_epochs * steps_per_epoch)
    total_steps = cfg.schedule.decay_epochs * steps_per_epoch
    return LearningRateSchedule(peak=peak_learning_rate(cfg, global_batch), end=opt.end_lr,
                                power=opt.poly_power, warmup_steps=warmup_steps,
                                decay_steps=max(1, total_steps - warmup_steps))


def hyperparameters(cfg: Config, global_batch: int, steps_per_epoch: int) -> dict:
    """{rule key: value} for the hyperparameters the `resnet` rules read (global batch size aside).

    Keys per training_policies v0.7 and mlperf-logging's `training_0.7.0/closed_resnet_{sgd,lars}.yaml`:
    the optimizer's name, its `sgd_opt_*` or `lars_opt_*` values, and for SGD the BN span and warmup.
    """
    opt = cfg.optimizer
    schedule = learning_rate_schedule(cfg, global_batch, steps_per_epoch)
    if opt.name == constants.SGD:
        return {
            constants.OPT_NAME: constants.SGD,
            constants.SGD_OPT_BASE_LEARNING_RATE: schedule.peak,
            constants.SGD_OPT_END_LR: opt.end_lr,
            constants.SGD_OPT_LR_DECAY_POLY_POWER: opt.poly_power,
            constants.SGD_OPT_LR_DECAY_STEPS: schedule.decay_steps,
            constants.SGD_OPT_WEIGHT_DECAY: opt.weight_decay,
            constants.SGD_OPT_MOMENTUM: opt.momentum,
            constants.MODEL_BN_SPAN: cfg.data.batch_size,
            constants.OPT_LR_WARMUP_EPOCHS: opt.warmup_epochs,
        }
    if opt.name == constants.LARS:
        return {
            constants.OPT_NAME: constants.LARS,
            constants.LARS_OPT_BASE_LEARNING_RATE: schedule.peak,
            constants.LARS_OPT_END_LR: opt.end_lr,
            constants.LARS_OPT_LR_DECAY_POLY_POWER: opt.poly_power,
            constants.LARS_OPT_LR_DECAY_STEPS: schedule.decay_steps,
            constants.LARS_EPSILON: opt.lars_epsilon,
            constants.LARS_OPT_LEARNING_RATE_WARMUP_EPOCHS: opt.warmup_epochs,
            constants.LARS_OPT_MOMENTUM: opt.momentum,
            constants.LARS_OPT_WEIGHT_DECAY: opt.weight_decay,
        }
    raise ConfigError(f"optimizer.name={opt.name!r}: expected 'sgd' or 'lars'")
