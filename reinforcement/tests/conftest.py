"""Shared fixtures of the Minigo tests: the prepared data folder (made once per session) and a tiny
run config (the smoke config made smaller still, so a generation takes seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def minigo_data(tmp_path_factory) -> Path:
    """`make_tiny(seed=0)`: the four professional games and the engine's check; read-only."""
    from reinforcement import dataset

    return dataset.make_tiny(tmp_path_factory.mktemp("minigo") / "tiny", seed=0)


# A run of the smoke config's code path, small enough for the default suite: a smaller network,
# few short games, one process. The log keys and the loop are the smoke run's.
TINY_RUN = ["model.filters=8", "model.blocks=1", "model.fc_width=16",
            "selfplay.games_per_generation=4", "selfplay.readouts=8", "selfplay.num_parallel=2",
            "selfplay.workers=0", "selfplay.parallel_games=4",
            "train.batch_size=32", "train.examples_per_generation=128", "train.window_size=4000",
            "evaluation.games=4", "evaluation.readouts=8", "evaluation.parallel_games=4",
            "evaluation.prediction_readouts=0", "schedule.max_generations=2",
            "run.stop_at_target=false", "run.progress=false", "run.threads=1"]
