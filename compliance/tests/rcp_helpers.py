"""Submission trees and RCP files for the RCP tests: real logs from `compliance.synth`, any speed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from compliance.synth import write_log

SYSTEM_FIELDS = {
    "submitter": "Org", "division": "closed", "status": "onprem", "number_of_nodes": "1",
    "host_processors_per_node": "1", "host_processor_model_name": "cpu", "accelerators_per_node": "0",
    "accelerator_model_name": "N/A", "hw_notes": "", "sw_notes": "",
}


def write_submission(root: Path, epochs: Sequence[int | None], *, framework: str = "PyTorch 2.14.1",
                     system: str = "sys", benchmark: str = "ncf", ruleset: str = "mlbench-1.0.0-smoke",
                     batch_size: int = 2048, first_seed: int = 1, org: str = "Org",
                     overrides: dict | None = None) -> Path:
    """<root>/<org>/{systems/<system>.json, results/<system>/<benchmark>/result_i.txt}: run i converges at
    epochs[i] (its last evaluation reaches the target), or is aborted after 2 epochs when None.
    Returns the benchmark folder."""
    org_folder = root / org
    (org_folder / "systems").mkdir(parents=True, exist_ok=True)
    (org_folder / "systems" / f"{system}.json").write_text(json.dumps(
        {**SYSTEM_FIELDS, "submitter": org, "system_name": system, "framework": framework}))
    folder = org_folder / "results" / system / benchmark
    for index, epoch in enumerate(epochs):
        write_log(folder / f"result_{index}.txt", ruleset, benchmark, epochs=epoch or 2, reach_target=epoch is not None,
                  seed=first_seed + index, org=org, overrides={"global_batch_size": batch_size, **(overrides or {})})
    return folder


__all__ = ["write_submission", "SYSTEM_FIELDS"]
