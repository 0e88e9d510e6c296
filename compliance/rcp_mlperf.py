"""MLPerf's own RCPs (mlperf-logging's `rcp_checker/training_<version>/rcps_<benchmark>.json`) in our format.

mlperf-logging keeps, per record, `Benchmark`, `BS`, `Hyperparams` and the runs' `Epochs to
converge` (`samples to converge` for llama2_70b_lora and flux1), plus `Creator`, `When`, `Platform`,
`Precision`. The test's parameters are in its code; here they become data
(Source: mlperf-logging 4.1.68, `rcp_checker/rcp_checker.py`):

- `submission_runs`: its `submission_runs["training"]` table; that table has no `dlrm` (MLPerf 1.0.0 to
  2.1.0), so rcp_checker crashes (KeyError) on every DLRM submission of those rounds; we take the 5
  result files of `mlperf_logging/benchmark_meta.py`;
- olympic scoring drops 4 runs at each end and accepts 4 failed runs for unet3d, 1 otherwise;
- samples to converge: `samples_count` of the last evaluation for the LLM-era benchmarks below,
  `epoch_num` (rounded to 3 decimals) otherwise; Stable Diffusion: the first evaluation step (`step_num`
  in 3.1.0, else `samples_count`) with FID <= 90 and CLIP >= 0.15;
- llama31_405b from 5.0.0: the smallest acceptable mean is lowered by 46,080 samples.
"""

from __future__ import annotations

import json
from pathlib import Path

from compliance.rcp import ANY_FRAMEWORK, Convergence, RcpFile, RcpPoint, Statistics, parse_rcp, point_summary

SUBMISSION_RUNS = {
    "bert": 10, "dlrm": 5, "dlrm_dcnv2": 10, "gpt3": 3, "maskrcnn": 5, "resnet": 5, "ssd": 5, "retinanet": 5,
    "unet3d": 40, "rnnt": 10, "stable_diffusion": 10, "gnn": 10, "rgat": 10, "llama2_70b_lora": 10, "flux1": 10,
    "llama31_405b": 3, "llama31_8b": 10, "gpt_oss_20b": 10, "deepseekv3_671b": 3, "qwen35_397b_grpo": 3, "dlrmv4": 10,
}
SAMPLES_COUNT_BENCHMARKS = frozenset({"llama2_70b_lora", "flux1", "llama31_405b", "llama31_8b", "gpt_oss_20b",
                                      "deepseekv3_671b", "qwen35_397b_grpo", "dlrmv4"})
SAMPLES_KEY_BENCHMARKS = frozenset({"llama2_70b_lora", "flux1"})  # their files say "samples to converge"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def convergence_of(benchmark: str, version: str) -> Convergence:
    if benchmark == "stable_diffusion":
        field = "step_num" if version == "3.1.0" else "samples_count"
        return Convergence(unit="samples", field=field, first_passing=(("FID", "le", 90.0), ("CLIP", "ge", 0.15)))
    if benchmark in SAMPLES_COUNT_BENCHMARKS:
        return Convergence(unit="samples", field="samples_count")
    # bert and gpt3 log samples as epoch_num
    return Convergence(unit="samples" if benchmark in ("bert", "gpt3") else "epochs", field="epoch_num")


def statistics_of(benchmark: str, version: str) -> Statistics:
    drop = 4 if benchmark == "unet3d" else 1
    allowance = 46080 if benchmark == "llama31_405b" and _version(version) >= (5, 0, 0) else 0
    return Statistics(submission_runs=SUBMISSION_RUNS[benchmark], olympic_drop=drop, max_failed_runs=drop,
                      min_mean_allowance=allowance)


def convert(path: str | Path) -> RcpFile:
    """One mlperf-logging RCP file (`.../training_<version>/rcps_<benchmark>.json`) as an RcpFile."""
    path = Path(path)
    version = path.parent.name.split("_", 1)[1]
    benchmark = path.stem.split("_", 1)[1]
    statistics = statistics_of(benchmark, version)
    records = json.loads(path.read_text(encoding="utf-8"))
    points = []
    for name, record in records.items():
        runs = record["samples to converge" if benchmark in SAMPLES_KEY_BENCHMARKS else "Epochs to converge"]
        mean, stdev = point_summary(runs, statistics.olympic_drop)
        provenance = {"source": f"mlperf-logging 4.1.68 rcp_checker/{path.parent.name}/{path.name}", "record": name}
        provenance.update({key.lower(): record[key] for key in ("Creator", "When", "Platform", "Precision") if key in record})
        points.append(RcpPoint(framework=ANY_FRAMEWORK, global_batch_size=record["BS"], runs=len(runs),
                               converged_at=tuple(runs), mean=mean, stdev=stdev,
                               hyperparameters=record.get("Hyperparams", {}), provenance=provenance, name=name))
    rcp = RcpFile(ruleset=f"training-{version}", benchmark=benchmark, convergence=convergence_of(benchmark, version),
                  statistics=statistics, points=tuple(points),
                  source=f"MLPerf Training {version} reference convergence points, from mlperf-logging 4.1.68")
    return parse_rcp(rcp.as_dict(), str(path))  # through the schema, as any RCP file


def mlperf_rcp_files(root: str | Path) -> list[Path]:
    """Every training_<version>/rcps_*.json of an installed mlperf-logging rcp_checker folder."""
    return sorted(Path(root).glob("training_*/rcps_*.json"), key=lambda p: (_version(p.parent.name.split("_", 1)[1]), p.name))


__all__ = ["SUBMISSION_RUNS", "convergence_of", "statistics_of", "convert", "mlperf_rcp_files"]
