"""python -m compliance {check,summarize,package,rules,rcp} ...: thin command line over the library.

Exit codes: 0 compliant / all fine, 1 not compliant / something failed, 2 unusable input or usage.
Every problem a user can cause is one line on stdout (findings) or stderr (usage), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from compliance.checker import CheckResult, check_log
from compliance.rcp import RcpFileError
from compliance.ruleset import RuleFileError, UnknownRuleset, available_rulesets, load_ruleset

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2
LOG_NAME = re.compile(r"^(result_.*\.txt|.*mllog.*\.txt|.*\.log)$")


class UsageError(Exception):
    """A bad command line: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit; we want one line
        raise UsageError(f"{self.prog}: error: {message} (see --help)")


def natural_key(text: str) -> list:
    """result_2 before result_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def find_logs(folder: Path) -> list[Path]:
    """Log files under a folder: result_*.txt, *mllog*.txt, *.log (symbolic links to folders not followed)."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False, onerror=lambda error: None):
        dirs.sort(key=natural_key)
        found.extend(Path(root) / name for name in sorted(files, key=natural_key) if LOG_NAME.match(name))
    return found


def _ruleset_arg(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        load_ruleset(name)
    except UnknownRuleset as error:
        raise UsageError(f"python -m compliance: error: --ruleset: {error}") from None
    except RuleFileError as error:
        raise UsageError(f"python -m compliance: error: --ruleset {name}: broken rule file: {error}") from None
    return name


def collect_targets(paths: Sequence[str]) -> list[tuple[str, str | None]]:
    """(path, why unusable or None) for every log named or found under a named folder."""
    targets: list[tuple[str, str | None]] = []
    for name in paths:
        path = Path(name)
        try:
            is_dir = path.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            logs = find_logs(path)
            if not logs:
                targets.append((name, "no log files (result_*.txt, *mllog*.txt, *.log) in this folder"))
            targets.extend((str(log), None) for log in logs)
        else:
            targets.append((name, None))
    return targets


def run_check(paths: Sequence[str], ruleset: str | None, as_json: bool, quiet: bool, out=None) -> int:
    out = out or sys.stdout
    results: list[CheckResult] = []
    for path, unusable in collect_targets(paths):
        if unusable is not None:
            result = CheckResult(path=path, unusable=unusable)
        else:
            result = check_log(path, ruleset)
        results.append(result)
        if not as_json:
            if not quiet:
                for finding in result.findings:
                    out.write(finding.format(path) + "\n")
                for (severity, key), count in sorted(result.suppressed.items()):
                    out.write(f"{path}: {severity}: {key}: {count} more like the above, not listed\n")
            out.write(f"{path}: {result.verdict()}\n")
    code = exit_code(results)
    if as_json:
        json.dump({"exit_code": code, "results": [r.as_dict() for r in results]}, out, indent=1)
        out.write("\n")
    elif len(results) > 1:
        compliant = sum(r.compliant for r in results)
        unusable_count = sum(r.unusable is not None for r in results)
        out.write(f"{compliant} of {len(results)} logs compliant"
                  + (f", {unusable_count} unusable" if unusable_count else "") + "\n")
    return code


def exit_code(results: Sequence[CheckResult]) -> int:
    if any(r.unusable is not None for r in results):
        return EXIT_UNUSABLE
    return EXIT_OK if all(r.compliant for r in results) else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    rulesets = ", ".join(available_rulesets())
    parser = _Parser(prog="python -m compliance",
                     description="Check MLLOG result logs, summarize results, check submission packages.")
    commands = parser.add_subparsers(dest="command", metavar="{check,summarize,package,rules,rcp}", parser_class=_Parser)
    check = commands.add_parser("check", help="check logs against a ruleset")
    check.add_argument("paths", nargs="+", metavar="PATH", help="a log file or a folder of logs")
    check.add_argument("--ruleset", help=f"one of: {rulesets} (default: from the log)")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument("--quiet", action="store_true", help="one verdict line per log")
    summarize = commands.add_parser("summarize", help="scores of a submission tree (table, CSV, JSON, plots)")
    summarize.add_argument("folder", metavar="DIR", help="<org>/ or a folder of organisations")
    summarize.add_argument("--ruleset", help=f"one of: {rulesets} (default: from each log)")
    summarize.add_argument("--out", default=None, help="where to write summary.csv/.json and plots "
                           "(default: ./summary)")
    summarize.add_argument("--confidence", type=float, default=0.95,
                           help="confidence for the number of runs needed (default 0.95)")
    summarize.add_argument("--margin", type=float, default=0.05,
                           help="relative error of the mean time to train (default 0.05)")
    summarize.add_argument("--no-plots", action="store_true")
    package = commands.add_parser("package", help="check a submission package")
    package.add_argument("folder", metavar="DIR", help="<org>/ or a folder of organisations")
    package.add_argument("--ruleset", help=f"one of: {rulesets} (default: from each log)")
    package.add_argument("--json", action="store_true")
    package.add_argument("--rcp-bypass", action="store_true",
                         help="an RCP failure becomes NEEDS REVIEW (a warning), as mlperf-logging's --rcp_bypass")
    rules = commands.add_parser("rules", help="print a ruleset's benchmarks, targets and keys (markdown)")
    rules.add_argument("ruleset", nargs="?", default=None, help=f"one of: {rulesets} (default: all)")
    rules.add_argument("--validate", action="store_true",
                       help="load every rule file (schema) and check the examples beside them")
    _add_rcp_commands(commands, rulesets)
    return parser


def _add_rcp_commands(commands, rulesets: str) -> None:
    rcp = commands.add_parser("rcp", help="reference convergence points: build them, check a submission against them")
    actions = rcp.add_subparsers(dest="rcp_command", metavar="{build,check}", parser_class=_Parser)
    build = actions.add_parser("build", help="RCP files from reference result logs (e.g. invoke train --runs N)")
    build.add_argument("folders", nargs="+", metavar="DIR", help="folders holding result_*.txt (searched recursively)")
    build.add_argument("--out", default="rcps", help="a folder (<benchmark>.json in it) or one .json file (default: ./rcps)")
    build.add_argument("--ruleset", help=f"one of: {rulesets} (default: from the logs)")
    build.add_argument("--unit", choices=("epochs", "samples"), default="epochs",
                       help="progress at convergence: epoch_num or samples_count of the last evaluation")
    build.add_argument("--framework", help="framework of every run (default: from <org>/systems/<system>.json)")
    build.add_argument("--submission-runs", type=int, help="runs of a submission (default: the ruleset's)")
    build.add_argument("--min-runs", type=int, help="converged runs a point needs (default: 2 x submission runs)")
    build.add_argument("--force", action="store_true", help="replace existing RCP files")
    check = actions.add_parser("check", help="check a submission's convergence against the RCPs")
    check.add_argument("folder", metavar="DIR", help="a folder of result_*.txt, an <org>/ or a folder of organisations")
    check.add_argument("--ruleset", help=f"one of: {rulesets} (default: from the logs)")
    check.add_argument("--rcp", help="an RCP file (default: compliance/rules/<ruleset>/rcps/<benchmark>.json)")
    check.add_argument("--framework", help="the submission's framework (default: from its system description)")
    check.add_argument("--rcp-bypass", action="store_true",
                       help="a failure becomes NEEDS REVIEW, as mlperf-logging's --rcp_bypass")
    check.add_argument("--json", action="store_true")


def _dispatch_rcp(args: argparse.Namespace) -> int:
    if args.rcp_command == "build":
        from compliance.rcp_build import run_build

        for name in ("submission_runs", "min_runs"):
            if getattr(args, name) is not None and getattr(args, name) < 1:
                raise UsageError(f"python -m compliance rcp build: error: --{name.replace('_', '-')}: wanted an integer >= 1")
        return run_build(args.folders, out=args.out, ruleset=_ruleset_arg(args.ruleset), unit=args.unit,
                         framework=args.framework, submission_runs=args.submission_runs, min_runs=args.min_runs,
                         force=args.force)
    if args.rcp_command == "check":
        from compliance.rcp_check import run_rcp_check

        return run_rcp_check(args.folder, ruleset=_ruleset_arg(args.ruleset), rcp_file=args.rcp,
                             framework=args.framework, bypass=args.rcp_bypass, as_json=args.json)
    raise UsageError("python -m compliance rcp: error: build or check (see --help)")


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return run_check(args.paths, _ruleset_arg(args.ruleset), args.json, args.quiet)
    if args.command == "summarize":
        from compliance.summarizer import run_summarize  # pandas/matplotlib only when summarizing

        if not 0.0 < args.confidence < 1.0:
            raise UsageError("python -m compliance summarize: error: --confidence: wanted a number between 0 and 1")
        if not args.margin > 0.0:
            raise UsageError("python -m compliance summarize: error: --margin: wanted a number > 0")
        return run_summarize(args.folder, ruleset=_ruleset_arg(args.ruleset), out_dir=args.out,
                             confidence=args.confidence, margin=args.margin, plots=not args.no_plots)
    if args.command == "package":
        from compliance.package_checker import run_package_check

        return run_package_check(args.folder, ruleset=_ruleset_arg(args.ruleset), as_json=args.json,
                                 rcp_bypass=args.rcp_bypass)
    if args.command == "rcp":
        return _dispatch_rcp(args)
    if args.command == "rules":
        names = [_ruleset_arg(args.ruleset)] if args.ruleset else list(available_rulesets())
        if args.validate:
            from compliance.validate import validate_ruleset

            failed = False
            for name in names:
                problems = validate_ruleset(name)
                for problem in problems:
                    sys.stdout.write(problem + "\n")
                rules = load_ruleset(name)
                sys.stdout.write(f"{name}: {'INVALID' if problems else 'valid'} ({len(rules.benchmarks)} benchmarks, "
                                 f"rule files in {Path(rules.folder).name}/)\n")
                failed = failed or bool(problems)
            return EXIT_FAILED if failed else EXIT_OK
        from compliance.docs import rules_markdown

        sys.stdout.write("\n".join(rules_markdown(load_ruleset(name)) for name in names))
        return EXIT_OK
    raise UsageError("python -m compliance: error: a command is required: check, summarize, package, rules or rcp "
                     "(see --help)")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit code (0 fine, 1 failed, 2 unusable input or usage)."""
    try:
        args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
        return _dispatch(args)
    except UsageError as error:
        sys.stderr.write(f"{error}\n")
        return EXIT_UNUSABLE
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0) if isinstance(exit_.code, int) or exit_.code is None else EXIT_UNUSABLE
    except RuleFileError as error:
        sys.stderr.write(f"python -m compliance: broken rule file: {error}\n")
        return EXIT_UNUSABLE
    except RcpFileError as error:
        sys.stderr.write(f"python -m compliance: broken RCP file: {error}\n")
        return EXIT_UNUSABLE
    except BrokenPipeError:  # `... | head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("python -m compliance: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
