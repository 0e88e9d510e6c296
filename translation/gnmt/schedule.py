"""The reference's learning rate: exponential warmup, then a constant rate, then step decay.

mlcommons/training rnn_translator/pytorch/seq2seq/train/lr_scheduler.py, `WarmupMultiStepLR`, as
the trainer drives it (seq2seq/train/fp_optimizers.py: `scheduler.step()` runs BEFORE
`optimizer.step()`, so the n-th update, n = 1, 2, ..., uses the rate at scheduler step n):

    n <= warmup:       lr = base * 0.01 ** ((warmup - n) / warmup)       (exponential warmup from base / 100)
    n >= remain:       lr = base * factor ** min((n - remain) // interval + 1, decay_steps)
    otherwise:         lr = base

Both frameworks call `learning_rate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LearningRateSchedule:
    """WarmupMultiStepLR's resolved step counts for a run of `total_steps` optimizer steps."""

    base: float
    warmup_steps: int
    remain_steps: int
    decay_interval: int
    decay_steps: int
    decay_factor: float


def lr_schedule(cfg, steps_per_epoch: int) -> LearningRateSchedule:
    """The reference scheduler's constructor: fractions become step counts of max_epochs x
    steps_per_epoch (`int(fraction * total)`), the decay interval defaults to the remaining steps
    split in `decay_steps` (at least 1), and warmup is capped at remain_steps."""
    opt = cfg.optimizer
    total = cfg.schedule.max_epochs * steps_per_epoch

    def steps(value: int | float) -> int:
        return int(value * total) if isinstance(value, float) else int(value)

    warmup, remain = steps(opt.warmup_steps), steps(opt.remain_steps)
    interval = max((total - remain) // opt.decay_steps, 1) if opt.decay_interval is None else steps(opt.decay_interval)
    return LearningRateSchedule(opt.learning_rate, min(warmup, remain), remain, interval, opt.decay_steps, opt.decay_factor)


def learning_rate(update: int, schedule: LearningRateSchedule) -> float:
    """The rate of optimizer update number `update` (1-based; module doc)."""
    if update <= schedule.warmup_steps:
        warmup_factor = math.exp(math.log(0.01) / schedule.warmup_steps) if schedule.warmup_steps else 1.0
        return schedule.base * warmup_factor ** (schedule.warmup_steps - update)
    if update >= schedule.remain_steps:
        decays = min((update - schedule.remain_steps) // schedule.decay_interval + 1, schedule.decay_steps)
        return schedule.base * schedule.decay_factor ** decays
    return schedule.base
