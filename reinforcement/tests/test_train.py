"""The training loop in both frameworks, end to end on the tiny run: logs that pass our checker and
mlperf-logging's (but for the target and the 8192-games minimum), seeded runs that repeat exactly,
a run killed with SIGKILL that resumes where an uninterrupted one ends, several worker processes
that give the generation a single process gives."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compliance.checker import check_log
from compliance.mllog import constants
from compliance.smoke_log import errors_besides_the_target, mlperf_logging_failures
from harness.benchmarks import REPO_ROOT
from harness.errors import EXIT_TARGET_MISSED
from harness.runner import load_benchmark_config
from reinforcement.tests.conftest import TINY_RUN

FRAMEWORKS = ["pytorch", "tensorflow"]


def tiny_config(data: Path, out: Path, *overrides: str):
    return load_benchmark_config("reinforcement", "smoke", [*TINY_RUN, f"run.data_dir={data}", f"run.out_dir={out}",
                                                            *overrides])


def train_main(framework: str):
    if framework == "pytorch":
        from reinforcement.pytorch import train
    else:
        from reinforcement.tensorflow import train
    return train.main


def events(log: Path, key: str) -> list[dict]:
    return [event for line in log.read_text().splitlines() if line.startswith(":::MLLOG ")
            for event in [json.loads(line.split(":::MLLOG ", 1)[1])] if event["key"] == key]


@pytest.fixture(scope="module", params=FRAMEWORKS)
def two_generations(request, minigo_data, tmp_path_factory):
    framework = request.param
    out = tmp_path_factory.mktemp(f"minigo-{framework}")
    cfg = tiny_config(minigo_data, out / "run", "run.checkpoint_every_epochs=1", "run.seed=5")
    return framework, minigo_data, out, train_main(framework)(cfg)


def test_log_is_compliant_but_for_the_target(two_generations, tmp_path):
    framework, _, _, result = two_generations
    assert result.epochs == 2 and len(result.eval_history) == 2 and result.throughput > 0
    assert all(0.0 <= value <= 1.0 for _, value in result.eval_history)
    log = Path(result.log_file)
    assert errors_besides_the_target(log) == []
    games = events(log, constants.ACTUAL_SELFPLAY_GAMES_PER_GENERATION)
    assert [(e["value"], e["metadata"]["epoch_num"]) for e in games] == [(4, 1), (4, 2)]
    hyper = {key: events(log, key)[0]["value"] for key in (constants.TRAIN_BATCH_SIZE, constants.LR_BOUNDARIES,
                                                             constants.EVAL_OPPONENT, constants.GO_BOARD_SIZE)}
    assert hyper[constants.TRAIN_BATCH_SIZE] == 32 and hyper[constants.EVAL_OPPONENT] == "heuristic"
    # mlperf-logging's training_0.7.0 minigo rules: only the target and the 8192-games minimum fail
    failures = mlperf_logging_failures(log, tmp_path, "closed_minigo.yaml")
    allowed = ("eval_accuracy", "min_selfplay_games_per_generation", "actual_selfplay_games_per_generation",
               "v['value'] == 8192", "v['value'] >= 8192", "FAILED")
    assert failures and all(any(word in line for word in allowed) for line in failures), failures


def test_same_seed_same_run(two_generations, tmp_path):
    framework, data, out, first = two_generations
    again = train_main(framework)(tiny_config(data, tmp_path / "again", "run.seed=5"))
    assert again.eval_history == first.eval_history
    log_a, log_b = Path(first.log_file), Path(again.log_file)
    for key in (constants.EVAL_ACCURACY, constants.ACTUAL_SELFPLAY_GAMES_PER_GENERATION):
        assert [e["value"] for e in events(log_a, key)] == [e["value"] for e in events(log_b, key)]
    import numpy as np

    for generation in (1, 2):  # the networks themselves, bit for bit
        a = np.load(out / "run" / "models" / f"generation-{generation:04d}.npz")
        b = np.load(tmp_path / "again" / "models" / f"generation-{generation:04d}.npz")
        assert all(np.array_equal(a[name], b[name]) for name in a.files)


def test_resume_after_sigkill_ends_where_the_uninterrupted_run_ends(two_generations, tmp_path):
    """Every run in a process of its own (TensorFlow fixes its thread pools when it starts: the test
    process's may differ, and with them the float sums)."""
    framework, data, _, _ = two_generations

    def args(run_dir: Path) -> list[str]:
        return [sys.executable, "-m", "harness", "train", "reinforcement", "--framework", framework, "--config", "smoke",
                "--json", *[arg for item in TINY_RUN for arg in ("--set", item)], "--set", f"run.data_dir={data}",
                "--set", f"run.out_dir={run_dir}", "--set", "run.checkpoint_every_epochs=1", "--set", "run.seed=5",
                "--set", "schedule.max_generations=3"]  # two generations after the first checkpoint: time to be killed in

    environment = {**os.environ, "MLBENCH_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(args(tmp_path / "reference"), cwd=REPO_ROOT, env=environment, capture_output=True,
                               text=True, timeout=900)
    assert completed.returncode in (0, EXIT_TARGET_MISSED), completed.stderr[-3000:]
    uninterrupted = json.loads(completed.stdout)[0]
    run_dir = tmp_path / "killed"
    process = subprocess.Popen(args(run_dir), cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    first_checkpoint = run_dir / "checkpoints" / "epoch-0001" / "state.json"
    deadline = time.monotonic() + 600
    while not first_checkpoint.exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint after 600 s"
        time.sleep(0.05)
    time.sleep(0.1)  # into generation 2 (a quiet machine plays a tiny generation in under a second)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert '"key": "run_stop"' not in (run_dir / "mllog.txt").read_text(), "the run ended before it was killed"
    completed = subprocess.run([*args(run_dir), "--set", "run.resume=true"], cwd=REPO_ROOT, env=environment,
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode in (0, EXIT_TARGET_MISSED), completed.stderr[-3000:]
    resumed = json.loads(completed.stdout)[0]["eval_history"]
    full = uninterrupted["eval_history"]
    # the resumed run plays the generations after its newest checkpoint (1 or 2), as the uninterrupted one did
    assert len(full) == 3 and 1 <= len(resumed) <= 2 and resumed == full[-len(resumed):], (resumed, full)
    import numpy as np

    a = np.load(tmp_path / "reference" / "models" / "generation-0003.npz")
    b = np.load(run_dir / "models" / "generation-0003.npz")
    assert all(np.array_equal(a[name], b[name]) for name in a.files)  # the same final network, bit for bit
    assert (run_dir / "mllog.txt.previous-1").exists()  # the killed run's log is kept


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_worker_processes_play_what_one_process_plays(framework, minigo_data, tmp_path):
    """Two spawned self-play processes against none: the same generation (games are played in
    seeded groups, whichever process plays them)."""
    cfg = tiny_config(minigo_data, tmp_path / "one", "schedule.max_generations=1", "selfplay.parallel_games=2")
    one = train_main(framework)(cfg)
    two = train_main(framework)(tiny_config(minigo_data, tmp_path / "two", "schedule.max_generations=1",
                                            "selfplay.parallel_games=2", "selfplay.workers=2"))
    assert two.eval_history == one.eval_history
    import numpy as np

    a = np.load(tmp_path / "one" / "models" / "generation-0001.npz")
    b = np.load(tmp_path / "two" / "models" / "generation-0001.npz")
    assert all(np.array_equal(a[name], b[name]) for name in a.files)


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_smoke_config_reaches_its_target_with_a_compliant_log(framework, minigo_data, tmp_path):
    """The smoke config itself, seed 1 (README.md, "Smoke": every seed of the 10-seed sweeps of both
    frameworks reached it), with its worker processes: the target, a log our smoke rules pass
    entirely, and mlperf-logging's rules failing only on the target and the 8192-games minimum."""
    cfg = load_benchmark_config("reinforcement", "smoke", [f"run.data_dir={minigo_data}", f"run.out_dir={tmp_path / 'run'}",
                                                            "run.seed=1", "run.progress=false"])
    result = train_main(framework)(cfg)
    assert result.status == "success" and result.quality >= 0.4
    log = Path(result.log_file)
    assert check_log(str(log), "mlbench-1.0.0-smoke").errors == []
    allowed = ("eval_accuracy", "min_selfplay_games_per_generation", "actual_selfplay_games_per_generation",
               "v['value'] == 8192", "v['value'] >= 8192", "FAILED")
    failures = mlperf_logging_failures(log, tmp_path, "closed_minigo.yaml")
    assert all(any(word in line for word in allowed) for line in failures), failures
