"""Every config file loads strictly and logs exactly the hyperparameters its ruleset's minigo rules ask
for; the reference config is the v0.5 reference on 9x9."""

from __future__ import annotations

from pathlib import Path

import pytest

from compliance.spec import benchmark_spec
from harness.config import load_config
from harness.errors import ConfigError
from reinforcement import loop, mcts
from reinforcement.config import Config, hyperparameters

CONFIGS = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))
REFERENCE_OPPONENT = "gnugo-3.8-level-10"


def opponent_of(cfg: Config) -> str:
    return f"gnugo-3.8-level-{cfg.evaluation.gnugo_level}" if cfg.evaluation.opponent == "gnugo" else cfg.evaluation.opponent


def test_there_are_reference_and_smoke_configs():
    assert {path.stem for path in CONFIGS} == {"reference", "smoke"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_config_fits_its_rules(path):
    cfg = load_config(Config, path)
    loop.check_config(cfg)
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark=cfg.benchmark, division=cfg.submission.division)
    logged = hyperparameters(cfg, opponent_of(cfg))
    assert set(logged) == set(spec.hyperparameter_keys_for(logged))
    assert spec.check_hyperparameters({**logged, "global_batch_size": cfg.train.batch_size}) == []
    assert cfg.schedule.eval_every_generations == 1  # the rules ask for an evaluation every generation


def test_reference_is_the_v05_9x9_setting():
    cfg = load_config(Config, next(path for path in CONFIGS if path.stem == "reference"))
    assert cfg == Config(run=cfg.run)  # the file states the defaults, which are the reference's
    assert (cfg.game.board_size, cfg.game.komi) == (9, 7.5)
    assert (cfg.model.filters, cfg.model.blocks, cfg.model.fc_width) == (32, 9, 64)
    assert cfg.train.batch_size == 16 and cfg.train.lr_rates == (0.01, 0.001, 0.0001)
    assert cfg.selfplay.games_per_generation == 2000 and cfg.selfplay.readouts == 200
    params = loop.search_params(cfg)
    assert params.temperature_moves == 6 and params.max_game_length == 114
    assert params.dirichlet_alpha == pytest.approx(0.03 * 361 / 81) and mcts.C_PUCT == 1.38
    assert benchmark_spec(ruleset=cfg.ruleset, benchmark="minigo", division="closed").quality_target == 0.5
    logged = hyperparameters(cfg, REFERENCE_OPPONENT)
    assert logged["eval_opponent"] == REFERENCE_OPPONENT and logged["min_selfplay_games_per_generation"] == 2000


def test_learning_rate_steps_as_tf_piecewise_constant():
    assert [loop.learning_rate(step, (2, 4), (1.0, 0.1, 0.01)) for step in range(6)] == [1.0, 1.0, 1.0, 0.1, 0.1, 0.01]


def test_closed_division_refuses_another_opponent_or_a_smaller_network():
    cfg = load_config(Config, next(path for path in CONFIGS if path.stem == "reference"), ["model.filters=16"])
    spec = benchmark_spec(ruleset=cfg.ruleset, benchmark="minigo", division="closed")
    problems = spec.check_hyperparameters({**hyperparameters(cfg, "gnugo-3.8-level-1"), "global_batch_size": 16})
    assert len(problems) == 2 and any("model_filters" in p for p in problems) and any("eval_opponent" in p for p in problems)


@pytest.mark.parametrize("override, message", [
    ("train.lr_rates=[0.1]", "one more rate than boundaries"),
    ("evaluation.opponent=alphago", "expected one of gnugo, heuristic, random"),
    ("selfplay.readouts=0", "must be at least 1"),
])
def test_unusable_values_are_one_line(override, message):
    cfg = load_config(Config, next(path for path in CONFIGS if path.stem == "smoke"), [override])
    with pytest.raises(ConfigError, match=message):
        loop.check_config(cfg)
