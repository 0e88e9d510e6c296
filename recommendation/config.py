"""The NCF config: schema and defaults shared by both frameworks; values in configs/*.yaml.

Defaults are the MLPerf Training v0.6 NCF reference values (github mlcommons/training,
recommendation/pytorch, and the v0.6 closed submissions' run scripts: `-l 0.0045 -b 1048576
-b1 0.25 -b2 0.5 --eps 1e-8 --layers 256 256 128 64 -f 64 --threshold 0.635`).
"""

from __future__ import annotations

from dataclasses import dataclass

from compliance.mllog import constants
from harness.config import BaseConfig


@dataclass(frozen=True)
class Model:
    """NeuMF (He et al. 2017, "Neural Collaborative Filtering", sec. 3.4): GMF + MLP towers."""

    factors: int = 64  # predictive factors: GMF embedding size (reference -f 64)
    # MLP tower widths; the first is the concatenated user+item MLP embedding (128 + 128)
    mlp_layer_sizes: tuple[int, ...] = (256, 256, 128, 64)


@dataclass(frozen=True)
class Optimizer:
    name: str = "adam"
    base_lr: float = 0.0045  # reference v0.6 -l 0.0045 (tuned for batch 2^20)
    beta1: float = 0.25  # -b1 0.25
    beta2: float = 0.5  # -b2 0.5
    epsilon: float = 1e-8  # --eps 1e-8


@dataclass(frozen=True)
class Data:
    train_negatives_per_positive: int = 4  # reference -n 4, re-sampled every epoch
    eval_negatives_per_user: int = 999  # reference --valid-negative 999; fixed at preprocessing
    eval_hr_k: int = 10  # HR@10 / NDCG@10 (reference -k 10)


@dataclass(frozen=True)
class Schedule:
    global_batch_size: int = 1_048_576  # 2^20 samples per optimizer step (reference v0.6 -b)
    max_epochs: int = 20  # reference -e default; aborted if the target is not met by then
    eval_every_epochs: int = 1  # the reference evaluates after every epoch
    eval_batch_size: int = 1_048_576  # samples (user x 1000 items) scored per eval step (--valid-batch-size)


@dataclass(frozen=True)
class Config(BaseConfig):
    benchmark: str = constants.NCF
    model: Model = Model()
    optimizer: Optimizer = Optimizer()
    data: Data = Data()
    schedule: Schedule = Schedule()


def hyperparameters(cfg: Config) -> dict:
    """{rule key: value} for every hyperparameter the `ncf` rules require (compliance/rules/mlbench-1.0.0/
    ncf.yaml; the global batch size is logged by the lifecycle). Keys from the constants module."""
    return {
        constants.OPT_NAME: cfg.optimizer.name,
        constants.OPT_BASE_LR: cfg.optimizer.base_lr,
        constants.OPT_ADAM_BETA_1: cfg.optimizer.beta1,
        constants.OPT_ADAM_BETA_2: cfg.optimizer.beta2,
        constants.OPT_ADAM_EPSILON: cfg.optimizer.epsilon,
        constants.MODEL_FACTORS: cfg.model.factors,
        constants.MODEL_MLP_LAYER_SIZES: list(cfg.model.mlp_layer_sizes),
        constants.TRAIN_NEGATIVES_PER_POSITIVE: cfg.data.train_negatives_per_positive,
        constants.EVAL_NEGATIVES_PER_USER: cfg.data.eval_negatives_per_user,
        constants.EVAL_HR_K: cfg.data.eval_hr_k,
    }
