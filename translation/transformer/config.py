"""The Transformer config: schema and defaults shared by both frameworks; values in configs/*.yaml.

Defaults are the MLPerf Training v0.7 reference (github mlcommons/training, translation/tensorflow/
transformer at 21f1dd38, run with `--params=big`): model/model_params.py `TransformerBigParams`
(batch_size 4096 tokens, hidden 1024, filter 4096, 16 heads, over TransformerBaseParams: 6 layers,
dropouts 0.1, label smoothing 0.1, learning_rate 2.0 with 16000 warmup steps, Adam 0.9 / 0.997 /
1e-9, max_length 256, beam 4, alpha 0.6, extra_decode_length 50) and transformer_main.py (BLEU on
newstest2014 after every epoch, target 25.0 uncased).
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance.mllog import constants
from harness.config import BaseConfig
from harness.errors import ConfigError

BIG = "big"


@dataclass(frozen=True)
class Model:
    # "big" is the reference model and must have its sizes (checked); anything else must say
    # REDUCED (the smoke config) so that a log of a smaller model can never pass for the big one
    variant: str = BIG
    hidden_size: int = 1024  # d_model
    num_hidden_layers: int = 6  # encoder and decoder layers each
    num_heads: int = 16
    filter_size: int = 4096  # FFN inner size
    layer_postprocess_dropout: float = 0.1  # residual branch and embedding+position dropout
    attention_dropout: float = 0.1  # on the attention weights
    relu_dropout: float = 0.1  # inside the FFN


@dataclass(frozen=True)
class Optimizer:
    name: str = "adam"  # the reference used LazyAdam (logged lazy_adam); dense Adam here (README)
    learning_rate: float = 2.0  # the schedule's scale, logged as opt_base_learning_rate (as the reference)
    warmup_steps: int = 16000
    beta1: float = 0.9
    beta2: float = 0.997
    epsilon: float = 1e-9
    label_smoothing: float = 0.1


@dataclass(frozen=True)
class Data:
    max_length: int = 256  # longer training pairs are discarded (max_sequence_length, method discard)
    max_tokens_per_replica: int = 4096  # reference batch_size: tokens per padded batch and side


@dataclass(frozen=True)
class Eval:
    beam_size: int = 4
    alpha: float = 0.6  # length normalization ((5 + len) / 6) ** alpha
    extra_decode_length: int = 50  # maximum output length: input length + 50
    sentences_per_batch: int = 64  # decoding batch (not a hyperparameter: the output is the same)


@dataclass(frozen=True)
class Schedule:
    max_epochs: int = 20  # aborted when the target is not met by then
    eval_every_epochs: int = 1  # the reference evaluates BLEU after every epoch


@dataclass(frozen=True)
class Config(BaseConfig):
    benchmark: str = constants.TRANSFORMER
    model: Model = Model()
    optimizer: Optimizer = Optimizer()
    data: Data = Data()
    eval: Eval = Eval()
    schedule: Schedule = Schedule()


def check(cfg: Config) -> Config:
    """Config errors no type check can see: the big variant's sizes, a reduced model's label."""
    model = cfg.model
    if model.hidden_size % model.num_heads:
        raise ConfigError(f"model.hidden_size={model.hidden_size} is not divisible by model.num_heads={model.num_heads}")
    big = Model()
    sizes = ("hidden_size", "num_hidden_layers", "num_heads", "filter_size")
    if model.variant == BIG and any(getattr(model, name) != getattr(big, name) for name in sizes):
        changed = next(name for name in sizes if getattr(model, name) != getattr(big, name))
        raise ConfigError(f"model.{changed}={getattr(model, changed)} is not Transformer big's "
                          f"{getattr(big, changed)}: set model.variant=REDUCED for a smaller model")
    if model.variant != BIG and not model.variant.startswith("REDUCED"):
        raise ConfigError(f"model.variant={model.variant!r}: expected 'big' or a label starting with REDUCED")
    if cfg.optimizer.name != "adam":
        raise ConfigError(f"optimizer.name={cfg.optimizer.name}: the Transformer trains with adam")
    if cfg.data.max_tokens_per_replica <= cfg.data.max_length:
        raise ConfigError(f"data.max_tokens_per_replica={cfg.data.max_tokens_per_replica} must exceed "
                          f"data.max_length={cfg.data.max_length} (a batch must hold the longest example)")
    return cfg


def hyperparameters(cfg: Config) -> dict:
    """{rule key: value} for every hyperparameter the `transformer` rules require
    (compliance/rules/mlbench-1.0.0/transformer.yaml; the global batch size is logged by the lifecycle)."""
    return {
        constants.OPT_NAME: cfg.optimizer.name,
        constants.OPT_BASE_LR: cfg.optimizer.learning_rate,
        constants.OPT_LR_WARMUP_STEPS: cfg.optimizer.warmup_steps,
        constants.OPT_ADAM_BETA_1: cfg.optimizer.beta1,
        constants.OPT_ADAM_BETA_2: cfg.optimizer.beta2,
        constants.OPT_ADAM_EPSILON: cfg.optimizer.epsilon,
        constants.MAX_SEQUENCE_LENGTH: cfg.data.max_length,
    }


# metadata the rules require with some keys (the reference: utils/dataset.py logs
# max_sequence_length with {"method": "discard"})
HYPERPARAMETER_METADATA = {constants.MAX_SEQUENCE_LENGTH: {"method": "discard"}}
