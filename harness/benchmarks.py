"""The benchmarks of the suite: where each lives, its MLLOG key, its config schema, its entry points.

A folder holds one benchmark (image_classification/, recommendation/) or two (translation/,
object_detection/). In a two-benchmark folder the folder's own modules are the shared toolkit
(dataset, metric, search) and each model has a subfolder of its own with its config, configs/,
pytorch/, tensorflow/, bench.py, Dockerfile and tests (STYLE.md, "One folder, two benchmarks"):

    translation/            the toolkit: WMT data, subwords, BLEU, length batching, beam search
      transformer/          config.py, configs/, dataset.py?, pytorch/, tensorflow/, bench.py, Dockerfile, tests/
      gnmt/                 likewise

A benchmark is named on the command line by its MLLOG key (`transformer`), its path
(`translation/transformer`), or, where the folder holds only one, by its folder (`recommendation`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("pytorch", "tensorflow")


@dataclasses.dataclass(frozen=True)
class Benchmark:
    folder: str  # the top-level folder, e.g. image_classification, translation
    key: str  # the MLLOG submission_benchmark value, e.g. resnet, transformer
    title: str
    subfolder: str = ""  # the model's own subfolder in a two-benchmark folder, e.g. transformer
    built: bool = True

    @property
    def name(self) -> str:
        """The benchmark's path from the repo root: `recommendation`, `translation/transformer`."""
        return f"{self.folder}/{self.subfolder}" if self.subfolder else self.folder

    @property
    def package(self) -> str:
        """Its Python package: `recommendation`, `translation.transformer`."""
        return self.name.replace("/", ".")

    @property
    def slug(self) -> str:
        """A name without slashes (image tags, file names): `recommendation`, `translation-transformer`."""
        return self.name.replace("/", "-")

    @property
    def path(self) -> Path:
        return REPO_ROOT / self.name

    @property
    def present(self) -> bool:
        """False in a fork of another benchmark (harness/fork.py), whose checkout lacks this one."""
        return (self.path / "config.py").is_file()

    def config_class(self) -> type:
        return importlib.import_module(f"{self.package}.config").Config

    def config_path(self, name: str) -> Path:
        """`smoke` / `reference` name a file in the benchmark's configs/; anything else is a path."""
        if name in ("smoke", "reference") or not name.endswith((".yaml", ".yml")):
            return self.path / "configs" / f"{name}.yaml"
        return Path(name)

    def train_main(self, framework: str) -> Callable[[Any], Any]:
        if framework not in FRAMEWORKS:
            raise UserError(f"framework '{framework}': expected one of {', '.join(FRAMEWORKS)}")
        return importlib.import_module(f"{self.package}.{framework}.train").main

    @property
    def dataset_package(self) -> str:
        """Where `dataset.py` lives: the benchmark's own package when it has one (translation's two
        benchmarks train on different WMT years), else the folder's (object_detection's two share COCO)."""
        if self.subfolder and importlib.util.find_spec(f"{self.package}.dataset") is not None:
            return self.package
        return self.folder

    def dataset_module(self):
        return importlib.import_module(f"{self.dataset_package}.dataset")

    def default_data_dir(self, tiny: bool) -> str:
        """`data/<dataset folder>/tiny|full`: two benchmarks that share a dataset share its folder."""
        return f"data/{self.dataset_package.replace('.', '/')}/{'tiny' if tiny else 'full'}"


BENCHMARKS = {b.key: b for b in (
    Benchmark("image_classification", "resnet", "ResNet-50 v1.5 on ImageNet"),
    Benchmark("recommendation", "ncf", "NCF (NeuMF) on MovieLens-20M"),
    Benchmark("object_detection", "ssd", "SSD (ResNet-34) on COCO 2017", subfolder="ssd"),
    Benchmark("object_detection", "maskrcnn", "Mask R-CNN (ResNet-50 FPN) on COCO 2017", subfolder="maskrcnn"),
    Benchmark("translation", "transformer", "Transformer (big) on WMT17 En-De", subfolder="transformer"),
    Benchmark("translation", "gnmt", "GNMT on WMT16 En-De", subfolder="gnmt"),
    Benchmark("reinforcement", "minigo", "Minigo on 9x9 Go"),
    Benchmark("speech_recognition", "deepspeech2", "DeepSpeech2 on LibriSpeech"),
)}


def built_benchmarks() -> list[Benchmark]:
    """The benchmarks this checkout can train: built, and present (a fork holds only its own)."""
    return [benchmark for benchmark in BENCHMARKS.values() if benchmark.built and benchmark.present]


def get_benchmark(name: str) -> Benchmark:
    """By MLLOG key (resnet), path (translation/transformer, translation.transformer) or, where the
    folder holds one benchmark, folder (image_classification); UserError naming the choices."""
    wanted = name.strip().strip("/").replace(".", "/")
    matches = [b for b in BENCHMARKS.values() if wanted in (b.key, b.name)]
    if not matches:
        in_folder = [b for b in BENCHMARKS.values() if b.folder == wanted]
        if len(in_folder) == 1:
            matches = in_folder
        elif in_folder:
            names = ", ".join(f"{b.key} ({b.name})" for b in in_folder)
            raise UserError(f"'{name}' holds {len(in_folder)} benchmarks: name one of {names}")
    if not matches:
        built = ", ".join(b.key for b in built_benchmarks())
        raise UserError(f"unknown benchmark '{name}' (built: {built})")
    benchmark = matches[0]
    if not benchmark.built:
        raise UserError(f"benchmark '{name}' is not built yet (see {benchmark.folder}/README.md)")
    if not benchmark.present:
        here = ", ".join(b.key for b in built_benchmarks())
        raise UserError(f"benchmark '{name}' is not in this checkout ({benchmark.name}/ is absent; here: {here})")
    return benchmark
