"""The TensorFlow training loop on small tiny-format data: compliant logs (ours and mlperf-logging's 0.7.0
transformer rules), same seed same curve, SIGKILL-free resume equals the uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from compliance.smoke_log import errors_besides_the_target, mlperf_logging_failures
from harness.checkpoint import latest_checkpoint
from harness.config import load_config
from harness.errors import ConfigError
from translation.transformer.config import Config
from translation.transformer.tensorflow import train

SMOKE = "translation/transformer/configs/smoke.yaml"
QUICK = ("run.stop_at_target=false", "run.deterministic=true", "run.checkpoint_every_epochs=1",
         "eval.extra_decode_length=8", "optimizer.warmup_steps=20")


def smoke_config(data: Path, out: Path, *overrides: str) -> Config:
    return load_config(Config, SMOKE, [f"run.data_dir={data}", f"run.out_dir={out}", "run.progress=false",
                                       "run.threads=1", *overrides])


def records(log: Path) -> list[dict]:
    return [json.loads(line.split(":::MLLOG ", 1)[1]) for line in log.read_text().splitlines() if ":::MLLOG" in line]


def model_weights(out_dir: Path) -> dict[str, np.ndarray]:
    """The model variables stored in the newest checkpoint: tf_runtime.save_payload writes every Keras
    layer variable (weights and dropout seed states) of the model as the list `model_variables`."""
    reader = tf.train.load_checkpoint(str(latest_checkpoint(out_dir) / "tf_state"))
    names = [name for name in reader.get_variable_to_shape_map() if name.startswith("model_variables/")]
    assert names
    return {name: reader.get_tensor(name) for name in names}


@pytest.fixture(scope="module")
def two_epoch_run(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("tf_run_a")
    cfg = smoke_config(small_data, out, "schedule.max_epochs=2", *QUICK)
    return cfg, train.main(cfg)


def test_two_epoch_log_is_compliant_but_for_the_target(two_epoch_run, tmp_path):
    _, result = two_epoch_run
    assert result.epochs == 2 and len(result.eval_history) == 2 and result.throughput > 0
    log = Path(result.log_file)
    assert errors_besides_the_target(log) == []
    failures = mlperf_logging_failures(log, tmp_path, "closed_transformer.yaml")  # its target is the real one (0.25): only that may fail
    assert failures and all("eval_accuracy" in line or line.endswith("FAILED") for line in failures), failures
    by_key = {record["key"]: record for record in records(log)}
    assert by_key["max_sequence_length"]["value"] == 256 and by_key["max_sequence_length"]["metadata"]["method"] == "discard"
    assert "tok:intl" in by_key["eval_metric_signature"]["value"] and "case:lc" in by_key["eval_metric_signature"]["value"]
    assert by_key["train_samples"]["value"] == 1200 and by_key["eval_samples"]["value"] == 60
    assert 0.0 <= by_key["eval_accuracy"]["value"] <= 1.0


def test_same_seed_same_run(two_epoch_run, small_data, tmp_path):
    cfg, first = two_epoch_run
    second = train.main(smoke_config(small_data, tmp_path, "schedule.max_epochs=2", *QUICK))
    assert second.eval_history == first.eval_history
    ours, theirs = model_weights(Path(cfg.run.out_dir)), model_weights(tmp_path)
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[name], theirs[name]) for name in ours)


def test_resumed_run_reproduces_the_uninterrupted_one(two_epoch_run, small_data, tmp_path):
    cfg, uninterrupted = two_epoch_run
    train.main(smoke_config(small_data, tmp_path, "schedule.max_epochs=1", *QUICK))  # "killed" after epoch 1
    resumed = train.main(smoke_config(small_data, tmp_path, "schedule.max_epochs=2", "run.resume=true", *QUICK))
    assert resumed.eval_history == uninterrupted.eval_history[1:]
    ours, theirs = model_weights(Path(cfg.run.out_dir)), model_weights(tmp_path)
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[name], theirs[name]) for name in ours)
    assert Path(str(resumed.log_file) + ".previous-1").is_file()  # the first log is kept


def test_a_big_model_with_other_sizes_is_a_config_error(small_data, tmp_path):
    with pytest.raises(ConfigError, match="set model.variant=REDUCED"):
        train.main(smoke_config(small_data, tmp_path, "model.variant=big"))
