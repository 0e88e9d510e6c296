"""The SSD config: schema and defaults shared by both frameworks; values in configs/*.yaml.

Defaults are the MLPerf Training v0.7 SSD reference (mlcommons/training, single_stage_detector/ssd
at the v0.7 round, commit 98f8b2ad: train.py's arguments, utils.py's `dboxes300_coco`,
`SSDTransformer`, `SSDCropping`, `Encoder`, base_model.py's `Loss`, ssd300.py), run as its DGX-1
single-node config (config_DGX1_singlenode.sh: 8 GPUs x 128 images, `--warmup 2.619685`) and
run_and_time.sh (`--epochs 70 --warmup-factor 0 --lr 2.5e-3 --threshold 0.23`).

`hyperparameters(cfg, ...)` maps them to the keys the `ssd` rules read (mlperf-logging's
training_0.7.0/closed_ssd.yaml; compliance/rules/mlbench-1.0.0/ssd.yaml), and
`LearningRateSchedule` is the one learning-rate formula both frameworks follow.
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance.mllog import constants
from harness.config import BaseConfig
from harness.errors import ConfigError


@dataclass(frozen=True)
class Model:
    """SSD300 on ResNet-34 (Liu et al. 2016; the reference's ssd300.py and base_model.py)."""

    # ResNet-34 up to layer3, whose first block has stride 1 (a 38x38 map for 300x300 input)
    width: int = 64  # stem and layer1 channels; layer2, layer3 have 2x, 4x (torchvision: 64)
    layers: tuple[int, ...] = (3, 4, 6)  # BasicBlocks of layer1..layer3 (ResNet-34)
    # the five extra blocks (1x1 conv to `extra_mid_channels`, 3x3 conv to `extra_channels`); the
    # first three stride 2 with padding 1, the last two stride 1 without padding
    extra_mid_channels: tuple[int, ...] = (256, 256, 128, 128, 128)
    extra_channels: tuple[int, ...] = (512, 512, 256, 256, 256)
    # default boxes (the reference's dboxes300_coco): input size, map sizes, steps and scales in
    # pixels, extra aspect ratios per map ([4, 6, 6, 6, 4, 4] boxes per position: 8732 in all)
    image_size: int = 300
    feature_sizes: tuple[int, ...] = (38, 19, 10, 5, 3, 1)
    steps: tuple[int, ...] = (8, 16, 32, 64, 100, 300)
    scales: tuple[int, ...] = (21, 45, 99, 153, 207, 261, 315)
    aspect_ratios: tuple[tuple[int, ...], ...] = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
    # ImageNet-pretrained backbone: torchvision's resnet34-333f7ec4.pth (object_detection/ssd/
    # pretrained.py); a path to that file, "download" to fetch it, or "" for random weights
    pretrained_backbone: str = "download"


@dataclass(frozen=True)
class Data:
    batch_size: int = 128  # images per process per micro-batch: the BN span (no sync BN)
    eval_batch_size: int = 128  # per process
    gradient_accumulation_steps: int = 1  # the reference's --batch-splits (there: splits of batch_size)
    match_iou: float = 0.5  # Encoder.encode(criteria=0.5)
    # SSD random crop: tries per drawn mode (the reference's --num-cropping-iterations; rules: 1 or 50)
    crop_tries: int = 1
    # ColorJitter(brightness=0.125, contrast=0.5, saturation=0.5, hue=0.05) of SSDTransformer
    jitter: tuple[float, ...] = (0.125, 0.5, 0.5, 0.05)
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)  # ImageNet statistics (SSDTransformer.normalize)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Loss:
    negatives_per_positive: int = 3  # hard negative mining 3:1 (Loss.forward)


@dataclass(frozen=True)
class PostProcess:
    """Evaluation's decoding (coco_eval and Encoder.decode_single in the reference)."""

    score_threshold: float = 0.05  # --nms-valid-thresh
    nms_iou: float = 0.5  # overlap_threshold
    candidates_per_class: int = 200  # max_num
    max_detections: int = 200  # nms_max_detections


@dataclass(frozen=True)
class Optimizer:
    base_lr: float = 2.5e-3  # per 32 images: lr = base_lr x global_batch / 32 (reference _BASE_LR)
    base_lr_batch_size: int = 32
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on every parameter, BN and biases included (torch.optim.SGD)
    # linear warmup over this fraction of epochs (--warmup): steps = int(epochs x images / global batch)
    warmup_epochs: float = 2.619685
    warmup_factor: int = 0  # --warmup-factor: the warmup starts from lr x (1 - 1 / 2^factor)
    decay_epochs: tuple[int, ...] = (40, 50)  # --lr-decay-schedule: x decay_factor after these epochs
    decay_factor: float = 0.1


@dataclass(frozen=True)
class Schedule:
    max_epochs: int = 70  # run_and_time.sh NUMEPOCHS
    eval_epochs: tuple[int, ...] = (40, 50, 55, 60, 65, 70, 75, 80)  # --val-epochs (the v0.7 rules)
    eval_interval: int = 0  # --val-interval: also every this many epochs (0: only eval_epochs)


@dataclass(frozen=True)
class Config(BaseConfig):
    benchmark: str = constants.SSD
    model: Model = Model()
    data: Data = Data()
    loss: Loss = Loss()
    postprocess: PostProcess = PostProcess()
    optimizer: Optimizer = Optimizer()
    schedule: Schedule = Schedule()


def eval_due(cfg: Config, epoch: int) -> bool:
    """The reference's test: (epoch+1) in --val-epochs or a multiple of --val-interval (1-based here)."""
    interval = cfg.schedule.eval_interval
    return epoch in cfg.schedule.eval_epochs or bool(interval and epoch % interval == 0)


def global_batch_size(cfg: Config, world_size: int) -> int:
    return cfg.data.batch_size * world_size * cfg.data.gradient_accumulation_steps


def peak_learning_rate(cfg: Config, global_batch: int) -> float:
    """The reference's `current_lr = args.lr * (global_batch_size / 32)`, rounded to 12 digits."""
    return round(cfg.optimizer.base_lr * global_batch / cfg.optimizer.base_lr_batch_size, 12)


def warmup_steps(cfg: Config, train_images: int, global_batch: int) -> int:
    """`wb = int(args.warmup * nonempty_imgs / (N_gpu * args.batch_size))` of the reference."""
    return int(cfg.optimizer.warmup_epochs * train_images / global_batch)


@dataclass(frozen=True)
class LearningRateSchedule:
    """The reference's learning rate at an optimizer step (0-based) of an epoch (1-based).

    Step decay: x `decay_factor` for every boundary epoch already trained (the reference multiplies
    at the start of its 0-based epoch 40, i.e. after 40 epochs). Warmup, for steps below
    `warmup_steps` (train.py `lr_warmup`): lr - (warmup_steps - step) x lr / (warmup_steps x 2^factor),
    which starts at lr x (1 - 1 / 2^factor), 0 for factor 0. The reference sets the rate only while
    it warms up and at a decay, so from the end of the warmup to the next decay the rate stays at
    the warmup's last value, lr x (1 - 1 / (warmup_steps x 2^factor)): kept here as it runs.
    """

    peak: float
    warmup_steps: int
    warmup_factor: int
    decay_epochs: tuple[int, ...]
    decay_factor: float
    steps_per_epoch: int

    def _decayed(self, epoch: int) -> float:
        lr = self.peak
        for boundary in self.decay_epochs:
            if epoch > boundary:
                lr *= self.decay_factor
        return lr

    def _warmup(self, step: int, lr: float) -> float:
        return lr - (self.warmup_steps - step) * lr / (self.warmup_steps * 2 ** self.warmup_factor)

    def __call__(self, step: int, epoch: int) -> float:
        lr = self._decayed(epoch)
        if step < self.warmup_steps:
            return self._warmup(step, lr)
        if self.warmup_steps:
            last_warmup_epoch = (self.warmup_steps - 1) // self.steps_per_epoch + 1
            if self._decayed(last_warmup_epoch) == lr:  # no decay since: the last warmup value stands
                return self._warmup(self.warmup_steps - 1, lr)
        return lr


def learning_rate_schedule(cfg: Config, train_images: int, global_batch: int, steps_per_epoch: int) -> LearningRateSchedule:
    opt = cfg.optimizer
    return LearningRateSchedule(peak=peak_learning_rate(cfg, global_batch),
                                warmup_steps=warmup_steps(cfg, train_images, global_batch),
                                warmup_factor=opt.warmup_factor, decay_epochs=tuple(opt.decay_epochs),
                                decay_factor=opt.decay_factor, steps_per_epoch=max(1, steps_per_epoch))


def check(cfg: Config) -> None:
    """Config consistency the schema cannot express; ConfigError naming the key."""
    m = cfg.model
    maps = len(m.feature_sizes)
    if not (len(m.steps) == maps and len(m.scales) == maps + 1 and len(m.aspect_ratios) == maps):
        raise ConfigError(f"model: {maps} feature_sizes need as many steps and aspect_ratios and one scale more "
                          f"(got {len(m.steps)}, {len(m.aspect_ratios)}, {len(m.scales)})")
    if len(m.extra_channels) != maps - 1 or len(m.extra_mid_channels) != maps - 1:
        raise ConfigError(f"model: {maps} feature maps need {maps - 1} extra blocks "
                          f"(extra_channels has {len(m.extra_channels)}, extra_mid_channels {len(m.extra_mid_channels)})")
    if len(m.layers) != 3:
        raise ConfigError(f"model.layers={list(m.layers)}: SSD's ResNet backbone has three stages (layer1..layer3)")


def hyperparameters(cfg: Config, train_images: int, global_batch: int) -> dict:
    """{rule key: value} for the `ssd` rules (global batch size aside), as the reference logs them."""
    schedule = learning_rate_schedule(cfg, train_images, global_batch, steps_per_epoch=1)
    return {
        constants.MODEL_BN_SPAN: cfg.data.batch_size,
        constants.OPT_BASE_LR: schedule.peak,
        constants.OPT_WEIGHT_DECAY: cfg.optimizer.weight_decay,
        constants.OPT_LR_WARMUP_STEPS: schedule.warmup_steps,
        constants.OPT_LR_WARMUP_FACTOR: cfg.optimizer.warmup_factor,
        constants.OPT_LR_DECAY_BOUNDARY_EPOCHS: list(cfg.optimizer.decay_epochs),
        constants.MAX_SAMPLES: cfg.data.crop_tries,
    }
