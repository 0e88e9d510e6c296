"""The command lines: `python -m harness train|data ...`, and each train.py's `__main__`.

Thin by design: parse, call the library, report a UserError in one line (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from harness.benchmarks import FRAMEWORKS, get_benchmark
from harness.errors import exit_on_user_error


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--framework", choices=FRAMEWORKS, default="pytorch")
    parser.add_argument("--config", default="smoke", help="smoke, reference, or a YAML path")
    parser.add_argument("--runs", type=int, default=1, help="number of runs (distinct seeds)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the first run")
    parser.add_argument("--out", default=None, help="write the submission layout under this folder")
    parser.add_argument("--system", default=None, help="system name in the submission layout")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set run.seed=3 (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")


def _run_train(args: argparse.Namespace) -> int:
    from harness.runner import train

    if args.runs < 1:
        raise SystemExit("error: --runs must be at least 1")
    results = train(args.benchmark, args.framework, args.config, runs=args.runs, seed=args.seed,
                    out=args.out, overrides=args.overrides, system=args.system)
    if args.json:
        print(json.dumps([result.as_dict() for result in results], indent=1))
    return 0 if all(result.status == "success" for result in results) else 1


def _run_list(args: argparse.Namespace) -> int:
    from harness.benchmarks import BENCHMARKS

    for benchmark in BENCHMARKS.values():
        state = "built" if benchmark.built and benchmark.present else ("not in this checkout" if benchmark.built
                                                                        else "not built yet")
        print(f"{benchmark.key:12} {benchmark.name:26} {benchmark.title} ({state})")
    return 0


def _run_fork(args: argparse.Namespace) -> int:
    from harness.fork import fork_benchmark

    result = fork_benchmark(args.benchmark, args.dest, allow_uncommitted=args.allow_uncommitted)
    print(f"{result.path}: {result.benchmark.name} forked from {result.upstream_commit[:12]} "
          f"({result.files} files); next: cd {result.path} && python3 -m venv .venv && "
          f".venv/bin/pip install -e \".[all]\" && .venv/bin/invoke demo")
    return 0


def _run_data(args: argparse.Namespace) -> int:
    bench = get_benchmark(args.benchmark)
    dataset = bench.dataset_module()
    data_dir = args.data_dir or bench.default_data_dir(args.tiny)
    if args.tiny:
        dataset.make_tiny(data_dir, seed=args.seed)
    else:
        dataset.prepare(args.source, data_dir)
    print(data_dir)
    return 0


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a benchmark to its quality target")
    train.add_argument("benchmark")
    _train_arguments(train)
    data = commands.add_parser("data", help="prepare a benchmark's dataset (full or --tiny)")
    data.add_argument("benchmark")
    data.add_argument("--tiny", action="store_true", help="generate the small dataset")
    data.add_argument("--source", default=None, help="folder holding the official downloads")
    data.add_argument("--data-dir", default=None, help="where the prepared dataset goes")
    data.add_argument("--seed", type=int, default=0)
    commands.add_parser("list", help="the benchmarks: key, path, title, whether built")
    fork = commands.add_parser("fork", help="write one benchmark as a standalone repository (vendor fork)")
    fork.add_argument("benchmark")
    fork.add_argument("dest", help="a new or empty folder")
    fork.add_argument("--allow-uncommitted", action="store_true",
                      help="take files with uncommitted changes as they are")
    args = parser.parse_args(argv)
    return {"train": _run_train, "data": _run_data, "list": _run_list, "fork": _run_fork}[args.command](args)


def train_entry(folder: str, framework: str) -> None:
    """`python -m <folder>.<framework>.train [--config ...]`: the same as `python -m harness train`."""

    @exit_on_user_error
    def run() -> int:
        parser = argparse.ArgumentParser(prog=f"python -m {folder}.{framework}.train")
        _train_arguments(parser)
        parser.set_defaults(framework=framework)
        args = parser.parse_args()
        args.benchmark = folder
        return _run_train(args)

    sys.exit(run())
