"""The DeepSpeech2 config: schema and defaults shared by both frameworks; values in configs/*.yaml.

Defaults are the MLPerf Training v0.5 reference's values (github mlcommons/training at tag v0.5,
speech_recognition/pytorch/params.py and train.py): 2 convolutions of 32 channels, 3 unidirectional
GRU layers of 2560 units with biases, SGD with Nesterov momentum 0.9, learning rate 1e-4 divided by
1.1 after every epoch, gradient norm clipped at 400, no weight decay, batch 8, tempo/gain
augmentation on, noise injection off, at most 10 epochs, WER evaluated after every epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance.mllog import constants
from harness.config import BaseConfig
from speech_recognition.features import Augmentation


@dataclass(frozen=True)
class Model:
    """DeepSpeech2 as the v0.5 code builds it (pytorch/model.py, train.py): see README.md "Model"."""

    conv_channels: int = 32  # both Conv2d layers (41x11 stride 2x2, 21x11 stride 2x1)
    rnn_type: str = "gru"  # params.rnn_type
    rnn_hidden_size: int = 2560  # params.hidden_size
    rnn_layers: int = 3  # params.hidden_layers
    rnn_bidirectional: bool = False  # train.py: DeepSpeech(..., bidirectional=False)


@dataclass(frozen=True)
class Optimizer:
    name: str = "sgd"
    base_lr: float = 1e-4  # params.lr
    momentum: float = 0.9  # params.momentum
    nesterov: bool = True  # train.py: torch.optim.SGD(..., nesterov=True)
    lr_anneal_factor: float = 1.1  # params.learning_anneal: lr /= 1.1 after every epoch
    gradient_clip_norm: float = 400.0  # params.max_norm (clip_grad_norm over all parameters)
    weight_decay: float = 0.0  # params.l2


@dataclass(frozen=True)
class Data:
    # The reference's "train" manifest: every training archive it downloads (data/librispeech.py)
    train_splits: tuple[str, ...] = ("train-clean-100", "train-clean-360", "train-other-500")
    # Its "val" manifest, which train.py evaluates on: dev-clean and dev-other together
    eval_splits: tuple[str, ...] = ("dev-clean", "dev-other")
    augmentation: Augmentation = Augmentation(tempo_and_gain=True)  # params.augment = True, noise_dir = None


@dataclass(frozen=True)
class Schedule:
    global_batch_size: int = 8  # params.batch_size
    eval_batch_size: int = 8  # the reference's test loader uses the training batch size
    max_epochs: int = 10  # params.epochs
    eval_every_epochs: int = 1


@dataclass(frozen=True)
class Config(BaseConfig):
    benchmark: str = constants.DEEPSPEECH2
    model: Model = Model()
    optimizer: Optimizer = Optimizer()
    data: Data = Data()
    schedule: Schedule = Schedule()


def hyperparameters(cfg: Config) -> dict:
    """{rule key: value} for every hyperparameter the `deepspeech2` rules require (compliance/rules/
    mlbench-1.0.0/deepspeech2.yaml; the global batch size is logged by the lifecycle)."""
    return {
        constants.OPT_NAME: cfg.optimizer.name,
        constants.OPT_BASE_LR: cfg.optimizer.base_lr,
        constants.OPT_MOMENTUM: cfg.optimizer.momentum,
        constants.OPT_NESTEROV: cfg.optimizer.nesterov,
        constants.OPT_LR_ANNEAL_FACTOR: cfg.optimizer.lr_anneal_factor,
        constants.OPT_GRADIENT_CLIP_NORM: cfg.optimizer.gradient_clip_norm,
        constants.OPT_WEIGHT_DECAY: cfg.optimizer.weight_decay,
        constants.MODEL_CONV_CHANNELS: cfg.model.conv_channels,
        constants.MODEL_RNN_TYPE: cfg.model.rnn_type,
        constants.MODEL_RNN_HIDDEN_SIZE: cfg.model.rnn_hidden_size,
        constants.MODEL_RNN_LAYERS: cfg.model.rnn_layers,
        constants.MODEL_RNN_BIDIRECTIONAL: cfg.model.rnn_bidirectional,
    }
