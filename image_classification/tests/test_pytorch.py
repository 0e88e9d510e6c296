"""The PyTorch training loop on the tiny data: compliant logs, determinism, resume, one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compliance.checker import check_log
from compliance.mllog import constants
from harness.checkpoint import latest_checkpoint
from harness.config import load_config
from harness.errors import ConfigError, DatasetError
from harness.torch_runtime import PAYLOAD_FILE
from image_classification.config import Config
from image_classification.pytorch import train

SMOKE = "image_classification/configs/smoke.yaml"


def smoke_config(data: Path, out: Path, *overrides: str) -> Config:
    return load_config(Config, SMOKE, [f"run.data_dir={data}", f"run.out_dir={out}", "run.progress=false",
                                       "run.threads=1", "run.num_workers=1", *overrides])


def target_only_errors(log: Path, ruleset: str = "mlbench-1.0.0-smoke") -> list[str]:
    """Errors of our checker on `log` other than 'the target was not reached'."""
    result = check_log(str(log), ruleset)
    assert result.unusable is None, result.unusable
    return [f.format(str(log)) for f in result.errors
            if not (f.key == constants.EVAL_ACCURACY and f.wanted.startswith("an evaluation reaching"))]


def mlperf_failures(log: Path, cwd: Path) -> list[str]:
    """The failed checks of mlperf-logging's own checker (ruleset 0.7.0) on `log`."""
    completed = subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", "--usage", "training",
                                "--ruleset", "0.7.0", str(log)], cwd=cwd, capture_output=True, text=True,
                               check=False)
    output = completed.stdout + completed.stderr
    assert "Compliance checks: training_0.7.0/closed_resnet_sgd.yaml" in output, output
    return [line for line in output.splitlines() if "Failed" in line or "ERROR" in line]


def model_weights(out_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(latest_checkpoint(out_dir) / PAYLOAD_FILE, weights_only=False)["model"]


@pytest.fixture(scope="module")
def two_epoch_run(tiny_imagenet, tmp_path_factory):
    """Two smoke epochs, deterministic, a checkpoint after each (the reference run of the tests)."""
    out = tmp_path_factory.mktemp("run_a")
    cfg = smoke_config(tiny_imagenet, out, "schedule.max_epochs=2", "run.stop_at_target=false",
                       "run.deterministic=true", "run.checkpoint_every_epochs=1")
    return cfg, train.main(cfg)


def test_two_epoch_log_is_compliant_but_for_the_target(two_epoch_run, tmp_path):
    _, result = two_epoch_run
    assert result.epochs == 2 and len(result.eval_history) == 2 and result.throughput > 0
    log = Path(result.log_file)
    assert target_only_errors(log) == []
    failures = mlperf_failures(log, tmp_path)
    assert failures and all("eval_accuracy" in line or line.endswith("FAILED") for line in failures), failures


def test_same_seed_same_run(two_epoch_run, tiny_imagenet, tmp_path):
    cfg, first = two_epoch_run
    second = train.main(smoke_config(tiny_imagenet, tmp_path, "schedule.max_epochs=2", "run.stop_at_target=false",
                                     "run.deterministic=true", "run.checkpoint_every_epochs=1"))
    assert second.eval_history == first.eval_history
    ours, theirs = model_weights(Path(cfg.run.out_dir)), model_weights(tmp_path)
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)


def test_resumed_run_reproduces_the_uninterrupted_one(two_epoch_run, tiny_imagenet, tmp_path):
    cfg, uninterrupted = two_epoch_run
    common = ("run.stop_at_target=false", "run.deterministic=true", "run.checkpoint_every_epochs=1")
    train.main(smoke_config(tiny_imagenet, tmp_path, "schedule.max_epochs=1", *common))  # "killed" after 1
    resumed = train.main(smoke_config(tiny_imagenet, tmp_path, "schedule.max_epochs=2", "run.resume=true", *common))
    assert resumed.eval_history == uninterrupted.eval_history[1:]  # epoch 2 only, the same value
    ours, theirs = model_weights(Path(cfg.run.out_dir)), model_weights(tmp_path)
    assert all(torch.equal(ours[name], theirs[name]) for name in ours)
    assert Path(str(resumed.log_file) + ".previous-1").is_file()  # the first log is kept


def test_gradient_accumulation_is_logged(tiny_imagenet, tmp_path):
    result = train.main(smoke_config(tiny_imagenet, tmp_path, "schedule.max_epochs=1", "data.batch_size=16",
                                     "data.gradient_accumulation_steps=2"))
    log = Path(result.log_file).read_text()
    assert '"key": "global_batch_size", "value": 32' in log
    assert '"key": "gradient_accumulation_steps", "value": 2' in log
    assert '"key": "model_bn_span", "value": 16' in log
    assert target_only_errors(Path(result.log_file)) == []


def test_wrong_number_of_classes_is_a_config_error(tiny_imagenet, tmp_path):
    with pytest.raises(ConfigError, match="model.num_classes=1000, but .* holds 10 classes"):
        train.main(smoke_config(tiny_imagenet, tmp_path, "model.num_classes=1000"))


def test_corrupt_jpeg_stops_the_loader_with_one_line(tiny_imagenet, tmp_path):
    from harness import torch_runtime
    from image_classification.pytorch.data import batches, build_data

    data = tmp_path / "data"
    shutil.copytree(tiny_imagenet, data)
    victim = sorted((data / "train").glob("*/*.JPEG"))[5]
    victim.write_bytes(victim.read_bytes()[:300])
    cfg = smoke_config(data, tmp_path / "out", "run.verify_data=off")
    train_loader, _ = build_data(cfg, torch_runtime.setup(cfg.run))
    train_loader.sampler.set_epoch(1)
    with pytest.raises(DatasetError) as error:
        for _ in batches(train_loader):  # decoded in a worker process: the message crosses over
            pass
    message = str(error.value)
    assert message.startswith(f"{victim}: not a readable image") and "\n" not in message


def test_augmentation_depends_on_seed_epoch_and_index_only(tiny_imagenet):
    from image_classification.pytorch.data import ImageFolder, train_transform

    cfg = load_config(Config, SMOKE)
    dataset = ImageFolder(str(tiny_imagenet / "train"), train_transform(cfg.data), seed=5)
    first, _ = dataset[(3, 17)]
    torch.manual_seed(123)  # the global RNG plays no part, and is left as it was
    state = torch.get_rng_state()
    again, _ = dataset[(3, 17)]
    assert torch.equal(first, again) and torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(first, dataset[(4, 17)][0])


@pytest.mark.slow
def test_smoke_run_reaches_the_target_with_a_compliant_log(tiny_imagenet, tmp_path):
    result = train.main(smoke_config(tiny_imagenet, tmp_path))
    assert result.status == "success" and result.quality >= 0.5
    log = Path(result.log_file)
    assert check_log(str(log), "mlbench-1.0.0-smoke").errors == []
    failures = mlperf_failures(log, tmp_path)  # 0.7.0's target is the real one: 0.759
    assert all("eval_accuracy" in line or line.endswith("FAILED") for line in failures), failures


@pytest.mark.slow
def test_reference_config_five_runs_in_the_submission_layout(tmp_path):
    """`--config reference --runs 5` on tiny data: the full ResNet-50 at 224 pixels, one epoch of one
    step each (7 images x 10 classes; 64 a batch keeps the peak lr 0.1 x 64 / 256 a multiple of 0.001)
    and one evaluation; overrides only what the tiny data forces."""
    from harness.runner import train as run_train
    from image_classification import dataset

    data = dataset.make_tiny(tmp_path / "data", seed=0, train_per_class=7, val_per_class=2)
    results = run_train("image_classification", "pytorch", "reference", runs=5, out=str(tmp_path / "submission"),
                        overrides=[f"run.data_dir={data}", "model.num_classes=10", "run.threads=2",
                                   "run.num_workers=1", "run.progress=false", "data.batch_size=64",
                                   "schedule.max_epochs=1", "schedule.eval_every_epochs=1"])
    logs = sorted((tmp_path / "submission").glob("*/results/*/resnet/result_*.txt"))
    assert len(logs) == 5 and len({result.log_file for result in results}) == 5
    seeds = set()
    for log in logs:
        assert target_only_errors(log, "mlbench-1.0.0") == []
        seeds.add(check_log(str(log), "mlbench-1.0.0").seed)
    assert len(seeds) == 5
    # the package checker: layout, system description, 5 results, distinct seeds; only the target fails
    from compliance.package_checker import check_organisation
    from compliance.submission import find_organisations

    (organisation,) = find_organisations(tmp_path / "submission")
    report = check_organisation(organisation, "mlbench-1.0.0")
    assert report.runs_checked == 5
    assert [problem for problem in report.problems
            if "eval_accuracy: wanted an evaluation reaching" not in problem[2]
            and not problem[2].startswith("5 runs failed")] == []


def test_pytorch_reads_the_same_files_and_labels_as_the_shared_lister(tiny_imagenet):
    """torchvision's ImageFolder and `dataset.image_list` (which tf.data reads) agree image for image."""
    from image_classification import dataset
    from image_classification.pytorch.data import ImageFolder, eval_transform

    classes = dataset.class_names(tiny_imagenet)
    for split in ("train", "val"):
        folder = ImageFolder(str(tiny_imagenet / split), eval_transform(load_config(Config, SMOKE).data), seed=0)
        assert folder.classes == classes
        assert folder.samples == dataset.image_list(tiny_imagenet, split, classes)


@pytest.mark.multiprocess
def test_torchrun_two_processes_reach_the_target(tiny_imagenet, tmp_path):
    """DDP over gloo: sharded sampler, BN statistics averaged, eval counts summed, one log."""
    import os
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(port),
         "--module", "image_classification.pytorch.train", "--config", "smoke",
         "--set", f"run.data_dir={tiny_imagenet}", "--set", f"run.out_dir={out}", "--set", "run.threads=1",
         "--set", "run.num_workers=1", "--set", "data.batch_size=16", "--set", "optimizer.base_lr=0.2"],
        cwd=Path(__file__).resolve().parents[2], env={**os.environ, "MLBENCH_NO_PROGRESS": "1"},
        capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, completed.stderr[-4000:]
    log = (out / "mllog.txt").read_text()
    assert log.count('"key": "run_start"') == 1
    assert '"key": "global_batch_size", "value": 32' in log and '"key": "eval_samples", "value": 100' in log
    assert check_log(str(out / "mllog.txt"), "mlbench-1.0.0-smoke").errors == []
