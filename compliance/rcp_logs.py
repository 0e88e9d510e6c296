"""What the RCP check and the RCP builder need from one result log, read in one streaming pass.

From a `:::MLLOG` log: the benchmark (`submission_benchmark`), the ruleset (`submission_ruleset`),
the `global_batch_size`, the seed, every value logged before `run_start` (the hyperparameters), the
status of the first `run_stop`, and the progress of the evaluations: the `epoch_num`,
`samples_count` and `step_num` of the last `eval_accuracy` (or `eval_error`) before that `run_stop`,
and, per evaluation step, each metric's value (for a `first_passing` convergence rule).

Samples to converge (`converged_at`), as mlperf-logging's `read_submission_file`: a run whose
`run_stop` says `success` converged at the `convergence.field` of its last evaluation (`epoch_num`
rounded to 3 decimals); with `first_passing`, at the first evaluation step whose metrics all meet
their bounds. Anything else (no `run_stop`, another status, no evaluation, no such field) did not
converge. Reading never raises for what is inside a file; a file that cannot be read at all has
`problem` set.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compliance.logparse import UnusableInput, iter_events, open_log
from compliance.rcp import Convergence
from compliance.ruleset import is_number

PROGRESS_FIELDS = ("epoch_num", "samples_count", "step_num")
QUALITY_KEYS = ("eval_accuracy", "eval_error")
MAX_EVAL_STEPS = 100_000  # bounded memory for the first_passing table of a hostile log
_BOUNDS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


@dataclass
class RunLog:
    path: Path
    problem: str | None = None  # the file cannot be read at all
    benchmark: str | None = None
    ruleset: str | None = None
    batch_sizes: list[Any] = field(default_factory=list)  # every global_batch_size value, in order
    seed: Any = None
    before_run_start: dict[str, Any] = field(default_factory=dict)  # key -> first value
    status: str | None = None
    last_eval: dict[str, Any] | None = None  # progress fields of the last evaluation before run_stop
    evals_by_step: dict[tuple[str, Any], dict[str, Any]] = field(default_factory=dict)  # (field, step) -> {metric: value}
    evaluations: int = 0

    @property
    def global_batch_size(self) -> Any:
        """The logged global batch size (the last one, as mlperf-logging), or None."""
        return self.batch_sizes[-1] if self.batch_sizes else None

    def converged_at(self, convergence: Convergence) -> float | None:
        """Samples (or epochs) to converge, or None when the run did not converge."""
        if self.status != "success":
            return None
        if convergence.first_passing:
            steps = [step for (name, step), metrics in self.evals_by_step.items()
                     if name == convergence.field and is_number(step)
                     and all(metric in metrics and is_number(metrics[metric]) and _BOUNDS[op](metrics[metric], bound)
                             for metric, op, bound in convergence.first_passing)]
            return min(steps) if steps else None
        if self.last_eval is None:
            return None
        value = self.last_eval.get(convergence.field)
        if not is_number(value) or not value > 0:
            return None
        return round(value, 3) if convergence.field == "epoch_num" else value  # mlperf-logging rounds epoch_num


def read_run(path: str | Path) -> RunLog:
    run = RunLog(path=Path(path))
    try:
        with open_log(path) as handle:
            started = stopped = False
            for _, event in iter_events(handle):
                if isinstance(event, str) or stopped:
                    continue
                key, value = event.get("key"), event.get("value")
                metadata = event.get("metadata")
                metadata = metadata if isinstance(metadata, dict) else {}
                if key == "submission_benchmark" and run.benchmark is None and isinstance(value, str):
                    run.benchmark = value
                elif key == "submission_ruleset" and run.ruleset is None and isinstance(value, str):
                    run.ruleset = value
                elif key == "global_batch_size":
                    run.batch_sizes.append(value)
                elif key == "seed" and run.seed is None:
                    run.seed = value
                elif key == "run_start":
                    started = True
                elif key in QUALITY_KEYS:
                    run.evaluations += 1
                    run.last_eval = {name: metadata[name] for name in PROGRESS_FIELDS if name in metadata}
                    metric = metadata.get("metric")
                    if isinstance(metric, str) and len(run.evals_by_step) < MAX_EVAL_STEPS:
                        for name in PROGRESS_FIELDS:
                            step = metadata.get(name)
                            if is_number(step):
                                run.evals_by_step.setdefault((name, step), {})[metric] = value
                elif key == "run_stop":
                    status = metadata.get("status")
                    run.status = status if isinstance(status, str) else None
                    stopped = True
                if not started and isinstance(key, str) and key not in run.before_run_start and len(run.before_run_start) < 1000:
                    run.before_run_start[key] = value
    except UnusableInput as error:
        run.problem = str(error)
    except OSError as error:
        run.problem = f"cannot read ({error.strerror or error})"
    return run


__all__ = ["RunLog", "read_run", "PROGRESS_FIELDS"]
