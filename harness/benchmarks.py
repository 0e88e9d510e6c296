"""The benchmarks of the suite: folder, MLLOG benchmark key, config schema, training entry points."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("pytorch", "tensorflow")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    folder: str  # the benchmark's folder and Python package, e.g. image_classification
    key: str  # the MLLOG submission_benchmark value, e.g. resnet
    title: str
    built: bool = True

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.folder

    def config_class(self) -> type:
        return importlib.import_module(f"{self.folder}.config").Config

    def config_path(self, name: str) -> Path:
        """`smoke` / `reference` name a file in the benchmark's configs/; anything else is a path."""
        if name in ("smoke", "reference") or not name.endswith((".yaml", ".yml")):
            return self.path / "configs" / f"{name}.yaml"
        return Path(name)

    def train_main(self, framework: str) -> Callable[[Any], Any]:
        if framework not in FRAMEWORKS:
            raise UserError(f"framework '{framework}': expected one of {', '.join(FRAMEWORKS)}")
        return importlib.import_module(f"{self.folder}.{framework}.train").main

    def dataset_module(self):
        return importlib.import_module(f"{self.folder}.dataset")


BENCHMARKS = {b.folder: b for b in (
    Benchmark("image_classification", "resnet", "ResNet-50 v1.5 on ImageNet"),
    Benchmark("recommendation", "ncf", "NCF (NeuMF) on MovieLens-20M"),
    Benchmark("object_detection", "ssd", "SSD and Mask R-CNN on COCO", built=False),
    Benchmark("translation", "transformer", "GNMT and Transformer on WMT En-De", built=False),
    Benchmark("reinforcement", "minigo", "Minigo on 9x9 Go", built=False),
    Benchmark("speech_recognition", "deepspeech2", "DeepSpeech2 on LibriSpeech", built=False),
)}


def get_benchmark(name: str) -> Benchmark:
    """By folder (image_classification) or MLLOG key (resnet); UserError naming the choices."""
    for benchmark in BENCHMARKS.values():
        if name in (benchmark.folder, benchmark.key):
            if not benchmark.built:
                raise UserError(f"benchmark '{name}' is not built yet (see {benchmark.folder}/README.md)")
            return benchmark
    built = ", ".join(b.folder for b in BENCHMARKS.values() if b.built)
    raise UserError(f"unknown benchmark '{name}' (built: {built})")
