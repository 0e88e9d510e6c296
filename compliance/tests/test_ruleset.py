"""Rule files: schema validation on load, the strict YAML loader, the constraint vocabulary."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compliance.mllog import constants
from compliance.ruleset import (
    RULES_DIR,
    Constraint,
    RuleFileError,
    UnknownRuleset,
    available_rulesets,
    load_ruleset,
    load_ruleset_from,
    load_yaml_strict,
    values_equal,
)


def test_the_three_rulesets_load():
    assert available_rulesets() == ("mlbench-1.0.0", "mlbench-1.0.0-smoke", "training-0.7.0")
    assert load_ruleset("training-0.7.0").benchmark_names == (
        "resnet", "ssd", "maskrcnn", "gnmt", "transformer", "minigo", "bert", "dlrm")
    suite = ("resnet", "ssd", "maskrcnn", "gnmt", "transformer", "ncf", "minigo", "deepspeech2")
    assert load_ruleset("mlbench-1.0.0").benchmark_names == suite
    assert load_ruleset("mlbench-1.0.0-smoke").benchmark_names == suite


def test_every_rule_file_names_its_source():
    for path in RULES_DIR.glob("*/*.yaml"):
        assert path.read_text().startswith("# Source:"), path


def test_unknown_ruleset_is_a_clear_error():
    with pytest.raises(UnknownRuleset, match="unknown ruleset 'training-9' .*available: mlbench-1.0.0"):
        load_ruleset("training-9")
    with pytest.raises(UnknownRuleset):
        load_ruleset("../rules")


def test_strict_loader_rejects_duplicate_keys(tmp_path):
    path = tmp_path / "closed_ssd.yaml"
    path.write_text("- KEY:\n    NAME: x\n    CHECK: \" a \"\n    CHECK: \" b \"\n")
    with pytest.raises(RuleFileError, match=r"closed_ssd.yaml:4: duplicate key 'CHECK' \(first given at line 3\)"):
        load_yaml_strict(path)


def test_mlperf_loggings_own_closed_ssd_has_a_duplicate_check():
    """The reason for the strict loader: one of mlperf-logging's checks silently never runs."""
    mlperf_logging = pytest.importorskip("mlperf_logging")
    path = Path(mlperf_logging.__file__).parent / "compliance_checker" / "training_0.7.0" / "closed_ssd.yaml"
    with pytest.raises(RuleFileError, match="duplicate key 'CHECK'"):
        load_yaml_strict(path)


@pytest.fixture
def rules_copy(tmp_path):
    """A writable copy of the rules folder, to break on purpose."""
    target = tmp_path / "rules"
    shutil.copytree(RULES_DIR, target, ignore=shutil.ignore_patterns("examples", "__pycache__"))
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("file, old, new, message", [
    ("resnet.yaml", "count: exactly_one, equals: 0.0001", "count: exactly_once, equals: 0.0001",
     r"resnet.yaml:\d+: closed.variants.sgd\[1\] \(sgd_opt_end_learning_rate\).count: wanted one of"),
    ("resnet.yaml", "multiple_of: 0.001,", "multiple_off: 0.001,", "unknown field 'multiple_off'"),
    ("resnet.yaml", "example: 0.0001}", "example: 0.001}", "example 0.001 breaks its own rule: wanted 0.0001"),
    ("resnet.yaml", "  target: 0.759", "  target: high", "quality.target: wanted a number, found string"),
    ("resnet.yaml", "  direction: higher", "  direction: up", "quality.direction: wanted higher or lower"),
    ("resnet.yaml", "number_of_runs: 5", "number_of_runs: 0", "number_of_runs: wanted an integer >= 1"),
    ("resnet.yaml", "# Source:", "# Origin:", "starts with a '# Source:' comment"),
    ("resnet.yaml", "    - {key: opt_name, count: exactly_one",
     "    - {key: opt_name, count: exactly_one}\n    - {key: opt_name, count: exactly_one",
     "key 'opt_name' has two records"),
    ("ssd.yaml", "max_gap: 10}", "max_gap: -1}", "gaps must be > 0"),
    ("ruleset.yaml", "  clock_timed_region: error", "  clock_timed_region: loud", "log.clock_timed_region"),
    ("ruleset.yaml", "benchmarks: [resnet, ssd,", "benchmarks: [resnet, ssd, rnnt,", "no rule file rnnt.yaml"),
    ("common.yaml", "{key: run_start, after: [init_stop]}", "{key: run_start, after: init_stop}",
     r"order\[2\].after: wanted a list of names"),
    ("ncf.yaml", "gt: 0, hyperparameter: true, example: 0.0045", "gt: 2, lt: 1, hyperparameter: true, example: 0.0045",
     "empty range"),
])
def test_schema_errors_name_file_line_and_field(rules_copy, file, old, new, message):
    _edit(rules_copy / "mlbench-1.0.0" / file, old, new)
    with pytest.raises(RuleFileError, match=message):
        load_ruleset_from(rules_copy, "mlbench-1.0.0")


def test_a_rule_file_nobody_lists_is_an_error(rules_copy):
    shutil.copy(rules_copy / "mlbench-1.0.0" / "ncf.yaml", rules_copy / "mlbench-1.0.0" / "rnnt.yaml")
    with pytest.raises(RuleFileError, match="rnnt.yaml is not listed"):
        load_ruleset_from(rules_copy, "mlbench-1.0.0")


def test_smoke_derivation_errors(rules_copy):
    _edit(rules_copy / "mlbench-1.0.0-smoke" / "ruleset.yaml", "ncf: [model_factors,", "ncf: [model_size,")
    with pytest.raises(RuleFileError, match="'model_size' is not a closed-division key"):
        load_ruleset_from(rules_copy, "mlbench-1.0.0-smoke")


def test_smoke_needs_three_runs():
    assert load_ruleset("mlbench-1.0.0-smoke").benchmark("ncf").number_of_runs == 3
    assert load_ruleset("mlbench-1.0.0").benchmark("ncf").number_of_runs == 10


def test_smoke_targets_are_one_edit_away(rules_copy):
    _edit(rules_copy / "mlbench-1.0.0-smoke" / "ruleset.yaml", "resnet: 0.5 ", "resnet: 0.6 ")
    assert load_ruleset_from(rules_copy, "mlbench-1.0.0-smoke").benchmark("resnet").quality.target == 0.6


def test_smoke_relaxes_values_but_keeps_keys():
    full = load_ruleset("mlbench-1.0.0").benchmark("ncf").division("closed")
    smoke = load_ruleset("mlbench-1.0.0-smoke").benchmark("ncf").division("closed")
    assert [r.key for r in full.keys] == [r.key for r in smoke.keys]
    relaxed = {r.key: r for r in smoke.keys}
    assert relaxed["eval_negatives_per_user"].value.check(99) is None
    assert relaxed["eval_hr_k"].value.check(5) == "10"  # not relaxed: the metric is HR@10


def test_open_division_logs_the_closed_keys_with_free_values():
    open_ = load_ruleset("mlbench-1.0.0").benchmark("resnet").division("open")
    sgd = dict(open_.variants)["sgd"]
    assert all(rule.value.check(12345.678) is None for rule in sgd if rule.value.type is None)
    assert {r.key for r in sgd} >= {"sgd_opt_end_learning_rate", "model_bn_span"}


def test_suite_keys_are_constants():
    """Every key of this suite's rules has a name in compliance.mllog.constants (no string literals)."""
    names = {value for name, value in vars(constants).items() if name.isupper() and isinstance(value, str)}
    rules = load_ruleset("mlbench-1.0.0")
    keys = {r.key for r in rules.common}
    for _, bench in rules.benchmarks:
        for _, division in bench.divisions:
            keys |= {r.key for r in division.keys}
            keys |= {r.key for _, variant in division.variants for r in variant}
    assert sorted(keys - names) == []


@pytest.mark.parametrize("constraint, good, bad, wanted", [
    (Constraint(multiple_of=0.001), [0.256, 2.0, 10], [0.2565, "1"], "a multiple of 0.001"),
    (Constraint(power_of_two_times=0.0001), [0.0001, 0.00005, 0.0004], [0.0003, 0, -0.0001], "0.0001 * 2^N"),
    (Constraint(equals=0.0001), [0.0001, 1e-4 * (1 + 1e-12)], [0.001, "0.0001", None], "0.0001"),
    (Constraint(equals=[256, 256, 128, 64]), [[256, 256, 128, 64], [256.0, 256, 128, 64]], [[256, 256], (1,)],
     "[256, 256, 128, 64]"),
    (Constraint(one_of=("sgd", "lars")), ["sgd", "lars"], ["adam", 1, None], "one of 'sgd', 'lars'"),
    (Constraint(gt=0), [1, 0.5, 10**400], [0, -1, True, float("nan"), "5"], "> 0"),
    (Constraint(type="integer", ge=0), [0, 5, 5.0], [5.5, -1, "5", True], ""),
    (Constraint(items=(Constraint(multiple_of=4), Constraint(multiple_of=5))), [[44, 55], [40, 50, 1]],
     [[45, 55], [44, 56], [44], "44"], "item"),
    (Constraint(not_empty=True), ["x", 0, False], ["", None, [], {}], "a non-empty value"),
    (Constraint(type="boolean"), [True, False], [1, 0, "true"], "a value of type boolean"),
])
def test_constraint_vocabulary(constraint, good, bad, wanted):
    for value in good:
        assert constraint.check(value) is None, value
    for value in bad:
        result = constraint.check(value)
        assert result is not None and wanted in result, (value, result)


def test_huge_integers_do_not_crash_numeric_rules():
    huge = 10**400
    assert Constraint(multiple_of=0.001).check(huge) is not None
    assert Constraint(power_of_two_times=0.0001).check(huge) is not None
    assert values_equal(huge, 0.5) is False
    assert Constraint(equals=0.0001).check(huge) == "0.0001"
