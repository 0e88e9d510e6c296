"""Both frameworks train the reference NeuMF on the real MovieLens-100k to the same HR@10.

configs/ml100k.yaml: the reference model (64 factors, MLP 256-256-128-64, 4 negatives, 999 eval
negatives) with the MLPerf v0.5 reference's small-batch optimizer (batch 2048, Adam lr 5e-4, betas
0.9/0.999), since ml-20m's 2^20 batch would be a single step per ml-100k epoch; 5 epochs, seed 1.
Each framework runs in its own process (as `python -m harness train` would), one after the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from harness.benchmarks import REPO_ROOT

EPOCHS = 5
RUN = textwrap.dedent("""
    import json, sys
    from recommendation.ml100k import run_ml100k
    result = run_ml100k(sys.argv[1], sys.argv[2], sys.argv[3], epochs=int(sys.argv[4]), seed=1, threads=2)
    print(json.dumps(result.as_dict()))
""")


def train_ml100k(framework: str, data_dir, out_dir) -> dict:
    completed = subprocess.run([sys.executable, "-c", RUN, framework, str(data_dir), str(out_dir), str(EPOCHS)],
                               cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=1800,
                               env={**os.environ, "MLBENCH_NO_PROGRESS": "1"})
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two reference-model trainings of 5 epochs: ~2-8 min on 2 CPU cores
def test_both_frameworks_reach_the_same_hr_on_ml100k(ml100k_data, tmp_path):
    results = {framework: train_ml100k(framework, ml100k_data, tmp_path / framework)
               for framework in ("pytorch", "tensorflow")}
    curves = {framework: [value for _, value in result["eval_history"]] for framework, result in results.items()}
    print(f"ml-100k HR@10 per epoch (seed 1, configs/ml100k.yaml): {json.dumps(curves)}; minutes: "
          + json.dumps({framework: round(result["time_to_train_minutes"], 2) for framework, result in results.items()}))
    assert all(len(curve) == EPOCHS for curve in curves.values())
    assert curves["tensorflow"][-1] > 0.1  # both learn: random ranking among 1000 items gives HR@10 = 0.01
    assert abs(curves["tensorflow"][-1] - curves["pytorch"][-1]) < 0.02
