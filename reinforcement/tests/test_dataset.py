"""The data step: the professional games verified by their published git SHA-1, the engine checked,
the manifest written; broken input stops with one line and exit 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from harness.benchmarks import REPO_ROOT
from harness.datasets import MANIFEST_NAME, verify_manifest
from harness.errors import DatasetError
from reinforcement import dataset, sgf
from reinforcement.dataset import BENCHMARK_GAMES, SHIPPED_GAMES, git_blob_sha1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return dataset.make_tiny(tmp_path_factory.mktemp("minigo") / "tiny", seed=0)


def test_shipped_games_are_the_references_files():
    for name, expected in BENCHMARK_GAMES.items():
        data = (SHIPPED_GAMES / name).read_bytes()
        assert git_blob_sha1(data) == expected
        # the published identity is git's: sha1("blob <size>\0" + contents)
        assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_tiny_layout_manifest_and_engine_report(tiny):
    assert sorted(p.name for p in (tiny / dataset.GAMES_DIR).iterdir()) == sorted(BENCHMARK_GAMES)
    assert len(list((tiny / dataset.CHECK_DIR).glob("random-*.sgf"))) == dataset.TINY_RANDOM_GAMES
    assert verify_manifest(tiny) == len(BENCHMARK_GAMES) + dataset.TINY_RANDOM_GAMES + 1
    report = json.loads((tiny / dataset.CHECK_FILE).read_text())
    assert all(game["openspiel_final_board"] == "equal" for game in report["professional"].values())
    for name, game in report["random"].items():
        replay = sgf.replay_file(tiny / dataset.CHECK_DIR / name)
        assert replay.final.is_game_over() and game["openspiel_area"] == replay.final.area() == game["final_area"]
    assert [r.moves for r in dataset.load_benchmark_games(tiny)] == [sgf.replay_file(SHIPPED_GAMES / n).moves
                                                                   for n in BENCHMARK_GAMES]


def test_tiny_is_deterministic_from_the_seed(tiny, tmp_path):
    again = dataset.make_tiny(tmp_path / "again", seed=0)
    assert (again / MANIFEST_NAME).read_text() == (tiny / MANIFEST_NAME).read_text()
    other = dataset.make_tiny(tmp_path / "other", seed=1)
    assert (other / MANIFEST_NAME).read_text() != (tiny / MANIFEST_NAME).read_text()


def test_prepare_reads_a_source_folder_and_names_a_bad_file(tmp_path):
    source = tmp_path / "benchmark_sgf"
    shutil.copytree(SHIPPED_GAMES, source)
    prepared = dataset.prepare(source, tmp_path / "full")
    assert verify_manifest(prepared) > 4
    (source / "9x9_pro_YKSH.sgf").write_bytes((source / "9x9_pro_YKSH.sgf").read_bytes()[:-20])
    with pytest.raises(DatasetError, match="9x9_pro_YKSH.sgf: git SHA-1 .* truncated"):
        dataset.prepare(source, tmp_path / "again")
    (source / "9x9_pro_IYHN.sgf").unlink()
    with pytest.raises(DatasetError, match="9x9_pro_IYHN.sgf: missing"):
        dataset.prepare(source, tmp_path / "again")


def test_broken_records_are_one_line_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a readable SGF"):
        sgf.replay(b"(;GM[1]SZ[9];B[ee];W[", "broken.sgf")
    with pytest.raises(DatasetError, match="move 2 is illegal"):
        sgf.replay(b"(;GM[1]FF[4]SZ[9];B[ee];W[ee])", "occupied.sgf")


def test_cli_exit_code_2_and_one_line_on_a_corrupt_dataset(tiny, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny, broken)
    game = broken / dataset.GAMES_DIR / "9x9_pro_IYMD.sgf"
    game.write_bytes(game.read_bytes().replace(b"B[fd]", b"B[fe]"))
    command = [sys.executable, "-m", "harness", "train", "reinforcement", "--config", "smoke",
               "--set", f"run.data_dir={broken}", "--set", f"run.out_dir={tmp_path / 'run'}", "--set", "run.progress=false"]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 2
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "9x9_pro_IYMD.sgf" in last and "checksum" in last
