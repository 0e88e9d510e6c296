"""The Mask R-CNN config: schema and defaults shared by both frameworks; values in configs/*.yaml.

Defaults are the MLPerf Training v0.7 Mask R-CNN reference (mlcommons/training object_detection/
pytorch, maskrcnn-benchmark, at 373dfeda: configs/e2e_mask_rcnn_R_50_FPN_1x.yaml over the defaults
of maskrcnn_benchmark/config/defaults.py), at its base batch of 16 images (8 GPUs x 2).

`hyperparameters(cfg, global_batch)` maps them to the keys the `maskrcnn` rules read (mlperf-logging
training_0.7.0/closed_maskrcnn.yaml; compliance/rules/mlbench-1.0.0/maskrcnn.yaml), and
`LearningRateSchedule` is the one learning-rate formula both frameworks follow.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from compliance.mllog import constants
from harness.config import BaseConfig
from harness.errors import ConfigError


@dataclass(frozen=True)
class Model:
    """Mask R-CNN, ResNet-50-FPN (He et al. 2017; the reference's GeneralizedRCNN with R-50-FPN)."""

    # the ResNet trunk: MSRA layout (stride in the first 1x1 conv of a stage, RESNETS.STRIDE_IN_1X1)
    stem_width: int = 64  # RESNETS.STEM_OUT_CHANNELS
    widths: tuple[int, ...] = (64, 128, 256, 512)  # bottleneck widths of res2..res5; outputs are 4x
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # ResNet-50
    # frozen: the reference's FrozenBatchNorm (an affine map, as the MSRA weights were trained);
    # batch: trainable BatchNorm, for a trunk trained from random weights (the REDUCED smoke model)
    norm: str = "frozen"
    frozen_stages: int = 2  # BACKBONE.FREEZE_CONV_BODY_AT: the stem and res2 are not trained
    fpn_channels: int = 256  # BACKBONE.OUT_CHANNELS
    # RPN (MODEL.RPN.*): one anchor size per FPN level P2..P6 (strides 4..64), three aspect ratios
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    rpn_fg_iou: float = 0.7
    rpn_bg_iou: float = 0.3
    rpn_batch_size_per_image: int = 256
    rpn_positive_fraction: float = 0.5
    rpn_pre_nms_top_n_train: int = 2000  # per level and image
    rpn_pre_nms_top_n_test: int = 1000
    # per image after NMS over all levels (logged as num_image_candidates). The reference keeps
    # FPN_POST_NMS_TOP_N_TRAIN = 2000 per GPU batch of 2 images in training (its own TODO: "should be
    # per image"), i.e. 1000 per image; FPN_POST_NMS_TOP_N_TEST = 1000 per image
    rpn_post_nms_top_n_train: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_iou: float = 0.7
    # RoI heads (MODEL.ROI_HEADS, ROI_BOX_HEAD, ROI_MASK_HEAD)
    roi_fg_iou: float = 0.5
    roi_bg_iou: float = 0.5
    roi_batch_size_per_image: int = 512
    roi_positive_fraction: float = 0.25
    box_reg_weights: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)
    box_pool_size: int = 7
    mask_pool_size: int = 14
    sampling_ratio: int = 2
    box_head_dim: int = 1024  # MLP_HEAD_DIM: two FC layers
    mask_head_channels: tuple[int, ...] = (256, 256, 256, 256)  # four 3x3 convs
    mask_predictor_channels: int = 256  # the 2x2 deconvolution to the 28x28 output
    score_threshold: float = 0.05
    nms_iou: float = 0.5
    detections_per_image: int = 100
    # ImageNet weights of the trunk: the reference's MSRA R-50.pkl (object_detection/maskrcnn/
    # pretrained.py); a path to that file, "download" to fetch it, or "" for random weights
    pretrained_backbone: str = "download"


@dataclass(frozen=True)
class Data:
    min_size: int = 800  # INPUT.MIN_SIZE_TRAIN / _TEST
    max_size: int = 1333  # INPUT.MAX_SIZE_TRAIN / _TEST
    size_divisibility: int = 32  # DATALOADER.SIZE_DIVISIBILITY
    pixel_mean: tuple[float, ...] = (102.9801, 115.9465, 122.7717)  # INPUT.PIXEL_MEAN, BGR 0-255 (TO_BGR255)
    pixel_std: tuple[float, ...] = (1.0, 1.0, 1.0)
    flip_probability: float = 0.5
    batch_size: int = 2  # images per process per micro-batch (SOLVER.IMS_PER_BATCH 16 over 8 GPUs)
    eval_batch_size: int = 1  # per process (TEST.IMS_PER_BATCH 8 over 8 GPUs)
    gradient_accumulation_steps: int = 1


@dataclass(frozen=True)
class Optimizer:
    base_lr: float = 0.02  # SOLVER.BASE_LR at base_lr_batch_size images; scaled linearly with the global batch
    base_lr_batch_size: int = 16
    momentum: float = 0.9
    weight_decay: float = 1e-4
    bias_lr_factor: float = 2.0  # SOLVER.BIAS_LR_FACTOR: biases train at twice the rate ...
    bias_weight_decay: float = 0.0  # ... without weight decay (SOLVER.WEIGHT_DECAY_BIAS)
    warmup_steps: int = 500  # SOLVER.WARMUP_ITERS (the reference keeps 500 at every batch size)
    warmup_factor: float = 1.0 / 3  # SOLVER.WARMUP_FACTOR, linear
    decay_steps: tuple[int, ...] = (60000, 80000)  # SOLVER.STEPS at base_lr_batch_size; scaled to the batch
    decay_factor: float = 0.1  # SOLVER.GAMMA


@dataclass(frozen=True)
class Schedule:
    # SOLVER.MAX_ITER 90,000 x 16 images = 12.3 epochs of 117,266: the reference's last evaluation
    # is after epoch 12 (it evaluates at epoch ends only, PER_EPOCH_EVAL)
    max_epochs: int = 12
    eval_every_epochs: int = 1


@dataclass(frozen=True)
class Config(BaseConfig):
    benchmark: str = constants.MASKRCNN
    model: Model = Model()
    data: Data = Data()
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()


def global_batch_size(cfg: Config, world_size: int) -> int:
    return cfg.data.batch_size * world_size * cfg.data.gradient_accumulation_steps


def peak_learning_rate(cfg: Config, global_batch: int) -> float:
    """BASE_LR scaled linearly to the global batch (run_and_time.sh: 0.0025 at 2 images), rounded to 12 digits."""
    return round(cfg.optimizer.base_lr * global_batch / cfg.optimizer.base_lr_batch_size, 12)


def decay_steps(cfg: Config, global_batch: int) -> tuple[int, ...]:
    """SOLVER.STEPS scaled to the batch (run_and_time.sh: (480000, 640000) at 2 images)."""
    return tuple(int(round(step * cfg.optimizer.base_lr_batch_size / global_batch)) for step in cfg.optimizer.decay_steps)


@dataclass(frozen=True)
class LearningRateSchedule:
    """The reference's WarmupMultiStepLR: the learning rate of optimizer update `step` (1-based).

    maskrcnn-benchmark steps its scheduler before each update, so update k trains at
    peak x warmup(k) x factor^(number of decay steps <= k), with warmup(k) = f (1 - k / W) + k / W
    for k < W (linear from f = warmup_factor) and 1 after.
    """

    peak: float
    warmup_steps: int
    warmup_factor: float
    decay_steps: tuple[int, ...]
    decay_factor: float

    def __call__(self, step: int) -> float:
        warmup = 1.0
        if step < self.warmup_steps:
            alpha = step / self.warmup_steps
            warmup = self.warmup_factor * (1 - alpha) + alpha
        return self.peak * warmup * self.decay_factor ** bisect.bisect_right(self.decay_steps, step)


def learning_rate_schedule(cfg: Config, global_batch: int) -> LearningRateSchedule:
    opt = cfg.optimizer
    return LearningRateSchedule(peak=peak_learning_rate(cfg, global_batch), warmup_steps=opt.warmup_steps,
                                warmup_factor=opt.warmup_factor, decay_steps=decay_steps(cfg, global_batch),
                                decay_factor=opt.decay_factor)


def check(cfg: Config) -> None:
    """Config consistency the schema cannot express; ConfigError naming the key."""
    m = cfg.model
    if len(m.widths) != 4 or len(m.blocks) != 4:
        raise ConfigError(f"model.widths={list(m.widths)}, model.blocks={list(m.blocks)}: the trunk has four stages "
                          "(res2..res5), one width and one block count each")
    if len(m.anchor_sizes) != 5:
        raise ConfigError(f"model.anchor_sizes={list(m.anchor_sizes)}: one size per FPN level P2..P6 (five)")
    if m.norm not in ("frozen", "batch"):
        raise ConfigError(f"model.norm={m.norm!r}: expected 'frozen' (the reference) or 'batch'")
    if not 0 <= m.frozen_stages <= 5:
        raise ConfigError(f"model.frozen_stages={m.frozen_stages}: expected 0 (nothing frozen) .. 5")
    if cfg.data.size_divisibility % 32:
        raise ConfigError(f"data.size_divisibility={cfg.data.size_divisibility}: FPN's five levels need a multiple of 32")


def hyperparameters(cfg: Config, global_batch: int) -> dict:
    """{rule key: value} for the `maskrcnn` rules (global batch size aside), as the v0.7 submissions
    of this reference log them (tools/train_mlperf.py: NUM_IMAGE_CANDIDATES, OPT_*, MIN/MAX_IMAGE_SIZE)."""
    schedule = learning_rate_schedule(cfg, global_batch)
    return {
        constants.OPT_BASE_LR: schedule.peak,
        constants.OPT_LR_WARMUP_STEPS: schedule.warmup_steps,
        constants.OPT_LR_WARMUP_FACTOR: schedule.warmup_factor,
        constants.NUM_IMAGE_CANDIDATES: cfg.model.rpn_post_nms_top_n_train,
        constants.OPT_LR_DECAY_FACTOR: schedule.decay_factor,
        constants.OPT_LR_DECAY_STEPS: list(schedule.decay_steps),
        constants.MIN_IMAGE_SIZE: cfg.data.min_size,
        constants.MAX_IMAGE_SIZE: cfg.data.max_size,
    }
