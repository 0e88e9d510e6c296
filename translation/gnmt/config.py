"""The GNMT config: schema and defaults shared by both frameworks; values in configs/*.yaml.

Defaults are the MLPerf GNMT reference (github mlcommons/training, rnn_translator/pytorch as of
v0.7: train.py's argument defaults, which run.sh uses unchanged): GNMT v2 with hidden size 1024,
4 layers, dropout 0.2, shared embeddings, label smoothing 0.1; Adam at 1e-3 with betas 0.9 / 0.999,
epsilon 1e-8, batches of 128 pairs per worker, gradient clipping at norm 5; the WarmupMultiStepLR
schedule (200 warmup steps, decay from 0.666 of the steps, 4 decays by 0.5); training pairs of at
most 50 tokens with BOS and EOS; 8 epochs at most, BLEU on newstest2014 after each with beam 5,
length normalization 0.6 / 5.0, coverage penalty 0.1, at most 150 tokens; target 24.0.
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance.mllog import constants
from harness.config import BaseConfig
from harness.errors import ConfigError
from translation.gnmt.schedule import lr_schedule

GNMT_V2 = "gnmt_v2"


@dataclass(frozen=True)
class Model:
    # "gnmt_v2" is the reference model and must have its sizes (checked); anything else must say
    # REDUCED (the smoke config), so that a log of a smaller model never passes for the reference
    variant: str = GNMT_V2
    hidden_size: int = 1024  # --hidden-size: embeddings, LSTMs, attention
    num_layers: int = 4  # --num-layers: encoder and decoder each
    dropout: float = 0.2  # --dropout: on the input of every LSTM layer
    init_weight: float = 0.1  # uniform(-0.1, 0.1) init (seq2seq/utils.py init_lstm_, models/*.py)


@dataclass(frozen=True)
class Optimizer:
    name: str = "adam"
    learning_rate: float = 1.0e-3  # --lr (opt_base_learning_rate)
    beta1: float = 0.9  # torch.optim.Adam defaults, as the reference builds it
    beta2: float = 0.999
    epsilon: float = 1.0e-8
    grad_clip: float = 5.0  # --grad-clip: max L2 norm of all gradients
    label_smoothing: float = 0.1  # --smoothing
    # WarmupMultiStepLR (seq2seq/train/lr_scheduler.py): an int is a step count, a float a fraction
    # of all training steps (max_epochs x steps per epoch), as the reference's literal_eval'd flags
    warmup_steps: int | float = 200  # --warmup-steps
    remain_steps: int | float = 0.666  # --remain-steps: the decay starts here
    decay_interval: int | float | None = None  # --decay-interval; None: (steps - remain_steps) // decay_steps
    decay_steps: int = 4  # --decay-steps: at most this many decays
    decay_factor: float = 0.5  # --decay-factor


@dataclass(frozen=True)
class Data:
    batch_size_per_replica: int = 128  # --train-batch-size (per worker)
    max_length: int = 50  # --max-length-train: longer pairs (BOS and EOS counted) are discarded
    buckets: int = 5  # --num-buckets (--batching bucketing)


@dataclass(frozen=True)
class Eval:
    beam_size: int = 5  # --beam-size
    max_length: int = 150  # --max-length-test: decoded tokens, BOS included
    length_norm_factor: float = 0.6  # --len-norm-factor
    length_norm_const: float = 5.0  # --len-norm-const
    coverage_penalty_factor: float = 0.1  # --cov-penalty-factor
    sentences_per_batch: int = 128  # --test-batch-size (not a hyperparameter: the output is the same)


@dataclass(frozen=True)
class Schedule:
    max_epochs: int = 8  # --epochs: also the horizon of the learning-rate schedule
    eval_every_epochs: int = 1  # BLEU after every epoch


@dataclass(frozen=True)
class Config(BaseConfig):
    benchmark: str = constants.GNMT
    model: Model = Model()
    optimizer: Optimizer = Optimizer()
    data: Data = Data()
    eval: Eval = Eval()
    schedule: Schedule = Schedule()


def check(cfg: Config) -> Config:
    """Config errors no type check can see: the reference variant's sizes, a reduced model's label."""
    model = cfg.model
    reference = Model()
    sizes = ("hidden_size", "num_layers")
    if model.variant == GNMT_V2 and any(getattr(model, name) != getattr(reference, name) for name in sizes):
        changed = next(name for name in sizes if getattr(model, name) != getattr(reference, name))
        raise ConfigError(f"model.{changed}={getattr(model, changed)} is not GNMT v2's {getattr(reference, changed)}: "
                          "set model.variant=REDUCED for a smaller model")
    if model.variant != GNMT_V2 and not model.variant.startswith("REDUCED"):
        raise ConfigError(f"model.variant={model.variant!r}: expected '{GNMT_V2}' or a label starting with REDUCED")
    if model.num_layers < 2:
        raise ConfigError(f"model.num_layers={model.num_layers}: GNMT needs at least 2 (a bidirectional first layer, then more)")
    if cfg.optimizer.name != "adam":
        raise ConfigError(f"optimizer.name={cfg.optimizer.name}: GNMT trains with adam")
    if cfg.data.max_length < 3:
        raise ConfigError(f"data.max_length={cfg.data.max_length}: BOS and EOS alone take 2")
    if cfg.eval.max_length < 2:
        raise ConfigError(f"eval.max_length={cfg.eval.max_length}: BOS and at least one token")
    return cfg


def hyperparameters(cfg: Config, steps_per_epoch: int) -> dict:
    """{rule key: value} for every hyperparameter the `gnmt` rules require
    (compliance/rules/mlbench-1.0.0/gnmt.yaml; the global batch size is logged by the lifecycle).
    The schedule's step counts depend on the data: `steps_per_epoch` of this run."""
    schedule = lr_schedule(cfg, steps_per_epoch)
    opt = cfg.optimizer
    return {
        constants.OPT_NAME: opt.name,
        constants.OPT_BASE_LR: opt.learning_rate,
        constants.OPT_ADAM_BETA_1: opt.beta1,
        constants.OPT_ADAM_BETA_2: opt.beta2,
        constants.OPT_ADAM_EPSILON: opt.epsilon,
        # the reference's warmup is exponential and its decay stepwise: the rules' "alternative"
        # functions (mlcommons/training PR 195), logged true as the v0.7 submissions did
        constants.OPT_LR_ALT_WARMUP_FUNC: True,
        constants.OPT_LR_ALT_DECAY_FUNC: True,
        constants.OPT_LR_WARMUP_STEPS: schedule.warmup_steps,
        constants.OPT_LR_REMAIN_STEPS: schedule.remain_steps,
        constants.OPT_LR_DECAY_INTERVAL: schedule.decay_interval,
        constants.OPT_LR_DECAY_STEPS: schedule.decay_steps,
        constants.OPT_LR_DECAY_FACTOR: schedule.decay_factor,
        constants.MAX_SEQUENCE_LENGTH: cfg.data.max_length,
    }


# the reference discards longer training pairs (LazyParallelDataset.filter_raw_data)
HYPERPARAMETER_METADATA = {constants.MAX_SEQUENCE_LENGTH: {"method": "discard"}}
