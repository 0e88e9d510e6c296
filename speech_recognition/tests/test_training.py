"""Both frameworks' training loops on the tiny data: compliant logs, determinism, resume, the untrained WER,
and the direction of the metric (lower is better) through the lifecycle, checker, summarizer and plots."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from compliance.checker import check_log
from compliance.mllog import constants
from compliance.smoke_log import errors_besides_the_target
from harness.config import load_config
from speech_recognition.config import Config

SMOKE = "speech_recognition/configs/smoke.yaml"
FRAMEWORKS = ["pytorch", "tensorflow"]
# two epochs on a third of the tiny training set: the loop, the log and the checkpoints, not convergence
SHORT = ("data.eval_splits=[dev-clean]", "schedule.max_epochs=2", "run.stop_at_target=false", "run.deterministic=true", "run.checkpoint_every_epochs=1")


def train_main(framework: str):
    if framework == "pytorch":
        from speech_recognition.pytorch.train import main
    else:
        from speech_recognition.tensorflow.train import main
    return main


def smoke_config(data: Path, out: Path, *overrides: str) -> Config:
    return load_config(Config, SMOKE, [f"run.data_dir={data}", f"run.out_dir={out}", "run.progress=false",
                                       "run.threads=1", "run.num_workers=0", *overrides])


@pytest.fixture(scope="module")
def short_data(tiny_librispeech, tmp_path_factory):
    """The tiny data with training cut to its 48 shortest utterances (a manifest is a list: cut it)."""
    import shutil

    folder = tmp_path_factory.mktemp("short") / "tiny"
    shutil.copytree(tiny_librispeech, folder)
    manifest = folder / "manifests" / "train-clean-100.csv"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:49]))
    from harness.datasets import write_manifest

    write_manifest(folder)
    return folder


@pytest.fixture(scope="module", params=FRAMEWORKS)
def two_epoch_run(request, short_data, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"run_{request.param}")
    cfg = smoke_config(short_data, out, *SHORT)
    return request.param, cfg, train_main(request.param)(cfg)


def test_two_epoch_log_is_compliant_but_for_the_target(two_epoch_run):
    framework, cfg, result = two_epoch_run
    assert result.epochs == 2 and len(result.eval_history) == 2 and result.throughput > 0
    assert all(0.0 <= wer < 5.0 for _, wer in result.eval_history), result.eval_history
    assert errors_besides_the_target(Path(result.log_file)) == []
    log = Path(result.log_file).read_text()
    for key, value in (("opt_nesterov", "true"), ("model_rnn_layers", "3"), ("model_rnn_bidirectional", "false"),
                       ("opt_learning_rate_anneal_factor", "1.1"), ("global_batch_size", "8")):
        assert f'"key": "{key}", "value": {value}' in log, key


def test_same_seed_same_curve(two_epoch_run, short_data, tmp_path):
    framework, _, first = two_epoch_run
    second = train_main(framework)(smoke_config(short_data, tmp_path, *SHORT))
    assert second.eval_history == first.eval_history


def test_resumed_run_reproduces_the_uninterrupted_one(two_epoch_run, short_data, tmp_path):
    framework, _, uninterrupted = two_epoch_run
    main = train_main(framework)
    main(smoke_config(short_data, tmp_path, *SHORT, "schedule.max_epochs=1"))  # "killed" after epoch 1
    resumed = main(smoke_config(short_data, tmp_path, *SHORT, "run.resume=true"))
    assert resumed.eval_history == uninterrupted.eval_history[1:]  # epoch 2 only, the same value
    assert Path(str(resumed.log_file) + ".previous-1").is_file()


def test_lower_wer_is_better_through_lifecycle_checker_summarizer_and_plots(tmp_path):
    """The WER target is met from below: the lifecycle stops at WER <= target, the checker accepts a log
    whose last WER is under the target (and rejects one that ends above it), the summarizer scores it
    and the plot marks the target with <=."""
    from compliance.summarizer import run_summarize
    from harness.lifecycle import TrainingRun

    cfg = load_config(Config, SMOKE, [f"run.out_dir={tmp_path / 'work'}", "submission.org=ds2"])
    run = TrainingRun(cfg, benchmark=cfg.benchmark)
    target = run.spec.quality_target
    assert not run.spec.higher_is_better
    run.init_start()
    from speech_recognition.config import hyperparameters

    run.log_hyperparameters(hyperparameters(cfg), global_batch_size=8, train_samples=240, eval_samples=50)
    run.start()
    stops = []
    for epoch in run.epochs(5):
        wer = [1.02, target + 0.2, target + 0.01, target - 0.05, 0.0][epoch - 1]
        with run.evaluation(epoch):
            pass
        stops.append(run.record_eval(wer, epoch))
        if stops[-1]:
            break
    result = run.stop()
    assert stops == [False, False, False, True] and result.status == "success"
    assert check_log(result.log_file).compliant

    # the same run scored by the summarizer (3 runs: the smoke ruleset's number) and plotted
    import shutil

    results = tmp_path / "submission" / "ds2" / "results" / "cpu-pytorch" / "deepspeech2"
    results.mkdir(parents=True)
    text = Path(result.log_file).read_text()
    assert '"key": "seed", "value": 1,' in text
    for index in range(3):  # distinct seeds, as the package rules ask
        (results / f"result_{index}.txt").write_text(text.replace('"key": "seed", "value": 1,', f'"key": "seed", "value": {index + 1},'))
    from harness.system_info import describe_system

    systems = tmp_path / "submission" / "ds2" / "systems"
    systems.mkdir(parents=True)
    import json

    (systems / "cpu-pytorch.json").write_text(json.dumps(describe_system("cpu-pytorch", submitter="ds2", division="closed",
                                                                          status="onprem", framework="pytorch")))
    import io

    out = io.StringIO()
    code = run_summarize(str(tmp_path / "submission"), out_dir=str(tmp_path / "summary"), out=out)
    assert code == 0, out.getvalue()
    assert "deepspeech2" in out.getvalue()
    plots = list((tmp_path / "summary" / "plots").glob("*deepspeech2*.png"))
    assert len(plots) == 1 and plots[0].stat().st_size > 0
    shutil.rmtree(tmp_path / "summary")

    # a log whose last WER stays above the target is not a success for the checker
    above = tmp_path / "above.txt"
    above.write_text(Path(result.log_file).read_text().replace(f'"value": {target - 0.05}', '"value": 0.95'))
    assert not math.isclose(target - 0.05, 0.95)
    failed = check_log(str(above))
    assert not failed.compliant and any(f.key == constants.EVAL_ACCURACY for f in failed.errors)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_untrained_model_scores_about_one(tiny_librispeech, framework):
    """The smoke target (0.5) sits far below what the untrained REDUCED model scores on the held-out
    voices: about 1.0 (it emits blanks or noise: all deletions, or as many errors as words)."""
    from compliance.spec import benchmark_spec
    from speech_recognition.untrained_wer import untrained_wer

    cfg = smoke_config(tiny_librispeech, Path("unused"))
    wer = untrained_wer(cfg, framework, seed=1)  # the model a seed-1 run starts from, scored by train.py's evaluate
    target = benchmark_spec(cfg.ruleset, cfg.benchmark).quality_target
    assert 0.9 <= wer <= 3.0 and target <= wer / 2, (wer, target)


# The tiny-data overrides of the reference config (README.md, "Running"): the tiny splits, one epoch
# on the 16 shortest training utterances (the full 104M-parameter model: minutes a step on 2 cores).
REFERENCE_ON_TINY = ("data.train_splits=[train-clean-100]", "data.eval_splits=[dev-clean]", "schedule.max_epochs=1",
                     "run.threads=2", "run.num_workers=0", "run.progress=false", "run.verify_data=full")
# The fast version also narrows the network (8 convolution channels, GRUs of 32: 0.03 M parameters). The
# closed division fixes both (32, 2560) and refuses to start, so these runs are open-division ones: the
# open rules check the same keys, layout, seeds and package, with the model's values free.
SMALL_NETWORK = ("model.conv_channels=8", "model.rnn_hidden_size=32", "submission.division=open")


def reference_runs_package(short_data: Path, tmp_path: Path, framework: str, runs: int, *overrides: str) -> None:
    """`--config reference --runs N` on tiny data: N logs in the submission layout with distinct seeds, which
    our checker and the package checker accept apart from the missed target."""
    import shutil

    from harness.datasets import write_manifest
    from harness.reference_runs import check_reference_runs_package

    data = tmp_path / "data"
    shutil.copytree(short_data, data)
    manifest = data / "manifests" / "train-clean-100.csv"
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:17]))
    write_manifest(data)
    # LibriSpeech's 0.23 after one tiny epoch: missed; 10 results for a real package
    check_reference_runs_package("deepspeech2", framework, data, [*REFERENCE_ON_TINY, *overrides], runs=runs,
                                 required=10, tmp_path=tmp_path)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_reference_config_runs_package_with_a_small_network(short_data, tmp_path, framework):
    """The fast version of the next test: the same runs, layout and checks, on a narrowed network."""
    reference_runs_package(short_data, tmp_path, framework, 3, *SMALL_NETWORK)


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_reference_config_runs_in_the_submission_layout(short_data, tmp_path, framework):
    """`--config reference --runs 3` on tiny data: the full 104M-parameter model, every check but the target."""
    reference_runs_package(short_data, tmp_path, framework, 3)


def test_a_corrupt_flac_met_in_training_is_one_line(short_data, tmp_path):
    """With verification off, the file that does not decode is named in one line, also from a DataLoader worker."""
    import shutil
    import subprocess
    import sys

    from harness.benchmarks import REPO_ROOT

    data = tmp_path / "data"
    shutil.copytree(short_data, data)
    first = (data / "manifests" / "train-clean-100.csv").read_text().splitlines()[1].split(",")[0]
    victim = data / first
    victim.write_bytes(victim.read_bytes()[:200])
    completed = subprocess.run([sys.executable, "-m", "harness", "train", "speech_recognition", "--framework", "pytorch",
                                "--config", "smoke", "--set", f"run.data_dir={data}", "--set", f"run.out_dir={tmp_path / 'run'}",
                                "--set", "run.verify_data=off", "--set", "run.num_workers=1", "--set", "run.progress=false"],
                               cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert completed.returncode == 2, completed.stderr[-2000:]
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {victim}: not a readable audio file"] or (
        len(errors) == 1 and errors[0].startswith(f"error: {victim}: not a readable audio file")), completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
