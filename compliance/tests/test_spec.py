"""The contract others code against: compliance.spec.benchmark_spec."""

from __future__ import annotations

import pytest

from compliance.mllog import constants
from compliance.spec import SpecError, benchmark_spec

SUITE_TARGETS = {  # benchmark: (metric, target, higher is better, number of runs)
    "resnet": ("top1_accuracy", 0.759, True, 5),
    "ssd": ("map", 0.23, True, 5),
    "maskrcnn": ("box_and_mask_ap", 0.377, True, 5),
    "gnmt": ("bleu", 0.24, True, 10),
    "transformer": ("bleu", 0.25, True, 10),
    "ncf": ("hr_at_10", 0.635, True, 10),
    "minigo": ("win_rate", 0.5, True, 10),
    "deepspeech2": ("wer", 0.23, False, 10),
}


@pytest.mark.parametrize("name", sorted(SUITE_TARGETS))
def test_suite_quality_targets(name):
    metric, target, higher, runs = SUITE_TARGETS[name]
    spec = benchmark_spec(ruleset="mlbench-1.0.0", benchmark=name, division="closed")
    assert (spec.benchmark, spec.quality_metric, spec.quality_target, spec.higher_is_better, spec.number_of_runs) == \
        (name, metric, target, higher, runs)
    assert spec.hyperparameter_keys, "every benchmark logs hyperparameters"


def test_maskrcnn_has_two_targets():
    spec = benchmark_spec("mlbench-1.0.0", "maskrcnn")
    assert spec.quality_targets == {"BBOX": 0.377, "SEGM": 0.339}
    assert spec.target_reached({"BBOX": 0.38, "SEGM": 0.34})
    assert not spec.target_reached({"BBOX": 0.38, "SEGM": 0.33})
    assert not spec.target_reached(0.9)


def test_wer_is_lower_is_better():
    spec = benchmark_spec("mlbench-1.0.0", "deepspeech2")
    assert spec.target_reached(0.23) and spec.target_reached(0.1)
    assert not spec.target_reached(0.2301)
    assert not spec.target_reached(-0.1) and not spec.target_reached(float("nan"))


def test_smoke_targets_and_reachability():
    resnet = benchmark_spec("mlbench-1.0.0-smoke", "resnet", "closed")
    assert resnet.quality_target == 0.5 and benchmark_spec("mlbench-1.0.0-smoke", "ncf").quality_target == 0.5
    assert resnet.target_reached(0.5) and resnet.target_reached(1.0)  # a tiny run may get everything right
    assert not resnet.target_reached(0.4999) and not resnet.target_reached("0.9")


def test_training_0_7_0_keeps_mlperf_loggings_accuracy_below_one():
    spec = benchmark_spec("training-0.7.0", "resnet")
    assert spec.target_reached(0.76) and not spec.target_reached(1.0)


def test_bert_target_depends_on_batch_size_in_closed_only():
    closed, open_ = benchmark_spec("training-0.7.0", "bert", "closed"), benchmark_spec("training-0.7.0", "bert", "open")
    assert closed.target_reached(0.707, {"global_batch_size": 8192})
    assert not closed.target_reached(0.707, {"global_batch_size": 4096})
    assert not open_.target_reached(0.707, {"global_batch_size": 8192})


def test_resnet_keys_are_mlperf_loggings():
    spec = benchmark_spec("mlbench-1.0.0-smoke", "resnet", "closed")
    assert spec.hyperparameter_keys == (
        "opt_name", "sgd_opt_base_learning_rate", "sgd_opt_end_learning_rate",
        "sgd_opt_learning_rate_decay_poly_power", "sgd_opt_learning_rate_decay_steps", "sgd_opt_weight_decay",
        "sgd_opt_momentum", "model_bn_span", "opt_learning_rate_warmup_epochs")
    lars = spec.hyperparameter_keys_for({"opt_name": "lars"})
    assert lars[0] == "opt_name" and all(k.startswith("lars_") for k in lars[1:]) and len(lars) == 9
    assert spec.hyperparameter_keys_for({"opt_name": "sgd"}) == spec.hyperparameter_keys


def test_ncf_keys_are_the_constants_the_recommendation_code_uses():
    spec = benchmark_spec("mlbench-1.0.0", "ncf")
    assert set(spec.hyperparameter_keys) == {
        constants.OPT_NAME, constants.OPT_BASE_LR, constants.OPT_ADAM_BETA_1, constants.OPT_ADAM_BETA_2,
        constants.OPT_ADAM_EPSILON, constants.MODEL_FACTORS, constants.MODEL_MLP_LAYER_SIZES,
        constants.TRAIN_NEGATIVES_PER_POSITIVE, constants.EVAL_NEGATIVES_PER_USER, constants.EVAL_HR_K}


NCF_REFERENCE = {"opt_name": "adam", "opt_base_learning_rate": 0.0045, "opt_adam_beta_1": 0.25,
                 "opt_adam_beta_2": 0.5, "opt_adam_epsilon": 1e-8, "model_factors": 64,
                 "model_mlp_layer_sizes": (256, 256, 128, 64), "train_negatives_per_positive": 4,
                 "eval_negatives_per_user": 999, "eval_hr_k": 10, "global_batch_size": 1_048_576}


def test_check_hyperparameters_messages():
    spec = benchmark_spec("mlbench-1.0.0", "ncf")
    assert spec.check_hyperparameters(NCF_REFERENCE) == []
    problems = spec.check_hyperparameters({**NCF_REFERENCE, "model_factors": 8, "global_batch_size": 0})
    assert problems == ["global_batch_size: wanted a number > 0, found 0", "model_factors: wanted 64, found 8"]
    missing = spec.check_hyperparameters({k: v for k, v in NCF_REFERENCE.items() if k != "eval_hr_k"})
    assert missing == ["eval_hr_k: wanted a value, found none (the key is missing)"]
    resnet = benchmark_spec("mlbench-1.0.0", "resnet")
    assert "sgd_opt_end_learning_rate: wanted 0.0001, found 0.001" in resnet.check_hyperparameters(
        {"opt_name": "sgd", "sgd_opt_end_learning_rate": 0.001})


def test_smoke_ncf_accepts_a_tiny_model_but_not_another_metric():
    spec = benchmark_spec("mlbench-1.0.0-smoke", "ncf")
    tiny = {**NCF_REFERENCE, "model_factors": 8, "model_mlp_layer_sizes": [32, 16], "eval_negatives_per_user": 99,
            "global_batch_size": 512}
    assert spec.check_hyperparameters(tiny) == []
    assert spec.check_hyperparameters({**tiny, "eval_hr_k": 5}) == ["eval_hr_k: wanted 10, found 5"]


def test_open_division_needs_the_keys_but_not_the_values():
    spec = benchmark_spec("mlbench-1.0.0", "ncf", "open")
    assert spec.check_hyperparameters({**NCF_REFERENCE, "model_factors": 8}) == []
    assert spec.check_hyperparameters({}) and all("missing" in p for p in spec.check_hyperparameters({}))


@pytest.mark.parametrize("args, message", [
    (("mlbench-9", "resnet"), "unknown ruleset 'mlbench-9'"),
    (("mlbench-1.0.0", "bert"), "unknown benchmark 'bert' in ruleset 'mlbench-1.0.0'"),
    (("mlbench-1.0.0", "resnet", "semi"), "unknown division 'semi'"),
])
def test_spec_errors(args, message):
    with pytest.raises(SpecError, match=message) as error:
        benchmark_spec(*args)
    assert isinstance(error.value, ValueError) and "\n" not in str(error.value)
