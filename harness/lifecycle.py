"""The run lifecycle every benchmark's training loop goes through, in both frameworks.

It writes the standard log in the order the rules expect and keeps the run's clock:

    run = TrainingRun(cfg, benchmark="resnet")          # opens the log
    run.init_start()                                     # cache_clear, init_start, submission_*, seed
    ...build data, model, optimizer...
    run.log_hyperparameters({...}, global_batch_size=..., train_samples=..., eval_samples=...)
    run.start()                                          # init_stop, run_start: the clock starts
    for epoch in run.epochs(max_epochs):                 # block/epoch intervals
        train_one_epoch(...)
        if run.eval_due(epoch):
            with run.evaluation(epoch):
                accuracy = evaluate(...)
            if run.record_eval(accuracy, epoch):         # eval_accuracy; True once the target is met
                break                                    # (Mask R-CNN: {"BBOX": .., "SEGM": ..}, both)
    result = run.stop()                                  # run_stop(status=success|aborted)

Key names come from `compliance.mllog.constants`; the hyperparameter keys and the quality target come
from the ruleset spec (`compliance.spec`), so the writer, the docs and the checker cannot drift apart.
Time to train is `run_stop - run_start`, the two timestamps written in the log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from compliance import mllog
from compliance.mllog import constants
from compliance.spec import SpecError, benchmark_spec
from harness.config import BaseConfig
from harness.errors import ConfigError
from harness.provenance import code_provenance


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What `main(cfg)` of every benchmark returns."""

    benchmark: str
    status: str  # success | aborted
    time_to_train_s: float
    # last eval value (nan when no eval ran); a {component: value} dict where the rules' quality has
    # several components (Mask R-CNN: {"BBOX": box AP, "SEGM": mask AP})
    quality: float | dict[str, float]
    quality_target: float | dict[str, float]
    epochs: int
    eval_history: tuple[tuple[int, float | dict[str, float]], ...]
    throughput: float = 0.0  # samples/s over the timed region, filled by the benchmark
    log_file: str = ""

    @property
    def time_to_train_minutes(self) -> float:
        return self.time_to_train_s / 60.0

    def describe_quality(self) -> str:
        """`0.7312 (target 0.635)`, or `BBOX 0.3801, SEGM 0.3412 (target BBOX 0.377, SEGM 0.339)`."""
        def show(value):
            if isinstance(value, Mapping):
                return ", ".join(f"{name} {number:.4f}" if isinstance(number, float) else f"{name} {number}"
                                 for name, number in value.items())
            return f"{value:.4f}" if isinstance(value, float) else str(value)

        target = self.quality_target
        target_text = ", ".join(f"{k} {v}" for k, v in target.items()) if isinstance(target, Mapping) else str(target)
        return f"{show(self.quality)} (target {target_text})"

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "time_to_train_minutes": self.time_to_train_minutes}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _finite(value: float | Mapping[str, float]) -> bool:
    values = value.values() if isinstance(value, Mapping) else [value]
    return all(math.isfinite(v) for v in values)


def log_path_for(config: BaseConfig) -> Path:
    return Path(config.run.log_file or os.path.join(config.run.out_dir, "mllog.txt"))


class TrainingRun:
    """The MLLOG lifecycle and clock of one training run (see the module docstring)."""

    def __init__(self, config: BaseConfig, benchmark: str, *, barrier: Callable[[], None] | None = None,
                 eval_every_epochs: int = 1, eval_due: Callable[[int], bool] | None = None):
        try:
            self.spec = benchmark_spec(ruleset=config.ruleset, benchmark=benchmark,
                                       division=config.submission.division)
        except SpecError as error:
            raise ConfigError(f"config: {error}") from None
        self.config = config
        self.benchmark = benchmark
        self.barrier = barrier or (lambda: None)
        self.eval_every_epochs = max(1, eval_every_epochs)
        # an explicit schedule (SSD evaluates at epochs 40, 50, 55, ...) instead of every N epochs
        self._eval_due = eval_due
        self.log_file = log_path_for(config)
        mllog.reset()
        if mllog.detect_rank() == 0:  # other ranks neither touch the file nor write to it
            self._keep_previous_log()
            mllog.config(filename=str(self.log_file), echo=False, default_stack_offset=2)
        else:
            mllog.config(echo=False, default_stack_offset=2)
        self.logger = mllog.get_mllogger()
        self.run_start_ms: int | None = None
        self.eval_history: list[tuple[int, float]] = []
        self.epochs_done = 0
        self._stopped: RunResult | None = None

    def _keep_previous_log(self) -> None:
        """Nothing a user wrote is lost: an existing log is renamed, never appended to or overwritten."""
        if self.log_file.exists() and self.log_file.stat().st_size > 0:
            for index in range(1, 10_000):
                kept = self.log_file.with_name(f"{self.log_file.name}.previous-{index}")
                if not kept.exists():
                    os.replace(self.log_file, kept)
                    break

    # -- initialization ----------------------------------------------------------------------
    def init_start(self) -> None:
        submission = self.config.submission
        log = self.logger
        log.event(key=constants.CACHE_CLEAR, value=True)
        log.start(key=constants.INIT_START)
        log.event(key=constants.SUBMISSION_BENCHMARK, value=self.benchmark)
        log.event(key=constants.SUBMISSION_ORG, value=submission.org)
        log.event(key=constants.SUBMISSION_DIVISION, value=submission.division)
        log.event(key=constants.SUBMISSION_STATUS, value=submission.status)
        log.event(key=constants.SUBMISSION_PLATFORM, value=submission.platform)
        # which rules the run was written for: the checker then tells a smoke log from a full one
        log.event(key=constants.SUBMISSION_RULESET, value=self.config.ruleset)
        # the commit (and, in a vendor fork, the upstream commit) that produced the result
        log.event(key=constants.SUBMISSION_UPSTREAM, value=code_provenance())
        if submission.poc_name:
            log.event(key=constants.SUBMISSION_POC_NAME, value=submission.poc_name)
        if submission.poc_email:
            log.event(key=constants.SUBMISSION_POC_EMAIL, value=submission.poc_email)
        log.event(key=constants.SEED, value=self.config.run.seed)

    def log_hyperparameters(self, hyperparameters: dict[str, Any], *, global_batch_size: int,
                            train_samples: int, eval_samples: int,
                            gradient_accumulation_steps: int = 1,
                            metadata: dict[str, dict] | None = None) -> None:
        """Log every hyperparameter the rules require, under the rules' key names.

        A key the spec requires but the benchmark did not give, or one it gave that the spec does
        not know, is a bug in the benchmark (assert). A closed-division value outside the rules is
        the user's doing (a `--set`): ConfigError names the key, the rule and the value.
        `metadata` adds a key's metadata where the rules ask for it (max_sequence_length: method).
        """
        required = set(self.spec.hyperparameter_keys_for(hyperparameters))
        given = set(hyperparameters)
        assert required <= given, f"{self.benchmark}: hyperparameters missing {sorted(required - given)}"
        assert given <= required, f"{self.benchmark}: hyperparameters not in the rules {sorted(given - required)}"
        if self.config.submission.division == constants.CLOSED:
            violations = self.spec.check_hyperparameters(
                {**hyperparameters, constants.GLOBAL_BATCH_SIZE: global_batch_size})
            if violations:
                raise ConfigError(f"closed division ({self.config.ruleset}): {violations[0]}"
                                  + (f" (+{len(violations) - 1} more)" if len(violations) > 1 else "")
                                  + "; use submission.division=open to change it")
        for key, value in hyperparameters.items():
            self.logger.event(key=key, value=value, metadata=(metadata or {}).get(key))
        self.logger.event(key=constants.GLOBAL_BATCH_SIZE, value=global_batch_size)
        if gradient_accumulation_steps != 1:
            self.logger.event(key=constants.GRADIENT_ACCUMULATION_STEPS, value=gradient_accumulation_steps)
        self.logger.event(key=constants.TRAIN_SAMPLES, value=train_samples)
        self.logger.event(key=constants.EVAL_SAMPLES, value=eval_samples)

    def start(self, metadata: dict | None = None) -> None:
        """init_stop then run_start, after every rank is ready: the timed region begins."""
        self.barrier()
        now = _now_ms()
        self.logger.end(key=constants.INIT_STOP, time_ms=now)
        self.logger.start(key=constants.RUN_START, time_ms=now, metadata=metadata)
        self.run_start_ms = now

    # -- the timed region ----------------------------------------------------------------------
    def eval_due(self, epoch: int) -> bool:
        if self._eval_due is not None:
            return bool(self._eval_due(epoch))
        return epoch % self.eval_every_epochs == 0

    def _block_length(self, block_first: int, max_epochs: int) -> int:
        """Epochs from `block_first` up to and including the next evaluation (or the last epoch)."""
        if self._eval_due is None:
            return min(self.eval_every_epochs - (block_first - 1) % self.eval_every_epochs,
                       max_epochs - block_first + 1)
        last = block_first
        while last < max_epochs and not self.eval_due(last):
            last += 1
        return last - block_first + 1

    def epochs(self, max_epochs: int, first_epoch: int = 1) -> Iterator[int]:
        """Yield 1-based epoch numbers, wrapped in block and epoch intervals.

        A block spans the epochs between two evaluations (`eval_every_epochs`, or the `eval_due`
        schedule given to the constructor), as the rules ask.
        Breaking out of the loop (target reached) closes the open intervals.
        """
        epoch = first_epoch
        while epoch <= max_epochs:
            block_first = epoch
            count = self._block_length(block_first, max_epochs)
            self.logger.start(key=constants.BLOCK_START, value=block_first,
                              metadata={"first_epoch_num": block_first, "epoch_count": count})
            try:
                for epoch in range(block_first, block_first + count):
                    self.logger.start(key=constants.EPOCH_START, value=epoch, metadata={"epoch_num": epoch})
                    try:
                        yield epoch  # the body trains, then evaluates on the block's last epoch
                    finally:
                        self.epochs_done = epoch
                        self.logger.end(key=constants.EPOCH_STOP, value=epoch, metadata={"epoch_num": epoch})
            finally:
                self.logger.end(key=constants.BLOCK_STOP, value=block_first,
                                metadata={"first_epoch_num": block_first})
            epoch = block_first + count

    @contextlib.contextmanager
    def evaluation(self, epoch: int) -> Iterator[None]:
        # stack_offset 3: past contextlib's __enter__/__exit__, so the log names the caller's line
        self.logger.start(key=constants.EVAL_START, value=epoch, metadata={"epoch_num": epoch}, stack_offset=3)
        yield
        self.logger.end(key=constants.EVAL_STOP, value=epoch, metadata={"epoch_num": epoch}, stack_offset=3)

    def event(self, key: str, value: Any, metadata: dict | None = None) -> None:
        """A point event of the benchmark's own (minigo's games per generation, a second quality
        figure); `key` from the constants module, the log names the caller's file and line."""
        self.logger.event(key=key, value=value, metadata=metadata)

    def record_eval(self, value: float | Mapping[str, float], epoch: int) -> bool:
        """Log eval_accuracy; True when it meets the target (direction from the rules) and the run
        should stop there (`run.stop_at_target`). Where the rules' quality has components (Mask
        R-CNN), `value` maps each to its number ({"BBOX": .., "SEGM": ..}): logged as that object
        (the v0.7 submissions' form) and the target needs every component."""
        value = {str(k): float(v) for k, v in value.items()} if isinstance(value, Mapping) else float(value)
        self.logger.event(key=constants.EVAL_ACCURACY, value=value, metadata={"epoch_num": epoch})
        self.eval_history.append((epoch, value))
        return self.config.run.stop_at_target and _finite(value) and self.spec.target_reached(value)

    def stop(self, throughput: float = 0.0) -> RunResult:
        """run_stop with status success (target met) or aborted (budget spent); closes the log."""
        if self._stopped is not None:
            return self._stopped
        assert self.run_start_ms is not None, "stop() before start()"
        reached = bool(self.eval_history) and _finite(self.eval_history[-1][1]) \
            and self.spec.target_reached(self.eval_history[-1][1])
        status = constants.SUCCESS if reached else constants.ABORTED
        now = _now_ms()
        self.logger.end(key=constants.RUN_STOP, time_ms=now,
                        metadata={"status": status, "epoch_num": self.epochs_done})
        mllog.reset()
        self._stopped = RunResult(
            benchmark=self.benchmark, status=status, time_to_train_s=(now - self.run_start_ms) / 1000.0,
            quality=self.eval_history[-1][1] if self.eval_history else math.nan,
            quality_target=self.spec.quality_targets if self.spec.quality.components else self.spec.quality_target,
            epochs=self.epochs_done,
            eval_history=tuple(self.eval_history), throughput=throughput, log_file=str(self.log_file))
        return self._stopped
