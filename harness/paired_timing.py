"""Time several pieces of the same work so that their speed ratio can be trusted: every bench uses it.

A speed claim ("ours is as fast as torchvision's", "PyTorch trains NCF 1.6x faster than TensorFlow")
is only as good as the way both sides were timed. The rules (issue 18; COMMON.md, "Evidence that can
fail"), which `compare` enforces so that no bench has to re-derive them:

- **the same work**: each candidate is a callable that does the same amount of work (`work_per_call`
  items: the same steps of the same batch, the same events, the same file) and returns only when it
  is done (device synchronised, result on the host);
- **the same repeats**: every candidate runs `warmup` untimed calls, then exactly `rounds` timed ones;
- **alternating rounds**: a round calls every candidate once, in an order reversed every other round
  (A B, B A, A B, ...), so that load that comes and goes on a shared machine, and drift (clocks,
  caches, allocators) favour no candidate;
- **the median of paired ratios**: a ratio of two candidates is the median over rounds of the ratio
  of their two timings *in the same round*; a rate is work over a candidate's median round. The best
  round of each is kept too (`best_seconds`), but never used for the ratio: the best of one side
  against the best of the other compares two lucky moments, not the two candidates;
- **warm or cold, stated**: `warmup > 0` means warm (tracing, autotuning, allocator, page cache
  done before the clock); a cold measurement says so (`warmup=0`, or a `before_each` hook that undoes
  the warmth before every call, e.g. dropping a file from the page cache), and `state` names it.

`before_each(name)` runs untimed before every timed call (e.g. drop a file from the page cache, empty
an output folder). `clock` is injectable so that tests can check these rules with a fake clock.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class PairedTiming:
    """The timings of `compare`: per candidate, the seconds of each timed round, in round order."""

    seconds: dict[str, list[float]]
    returned: dict[str, list[Any]]  # what each timed call returned (e.g. a child process's own stats)
    order: list[str]  # every timed call, in the order it ran (the alternation, for the record)
    work_per_call: float
    unit: str
    warmup: int
    states: dict[str, str]  # per candidate "warm" or "cold", as the caller stated it

    @property
    def state(self) -> str:
        """"warm" or "cold" when every candidate ran so, else "mixed" (see `states`)."""
        distinct = set(self.states.values())
        return distinct.pop() if len(distinct) == 1 else "mixed"

    @property
    def rounds(self) -> int:
        return len(next(iter(self.seconds.values())))

    def median_seconds(self, name: str) -> float:
        return statistics.median(self.seconds[name])

    def best_seconds(self, name: str) -> float:
        return min(self.seconds[name])

    def rate(self, name: str) -> float:
        """Work per second of the candidate's median round."""
        return self.work_per_call / self.median_seconds(name)

    def round_ratios(self, name: str, reference: str) -> list[float]:
        """Per round, how many times faster `name` ran than `reference` in that same round."""
        return [theirs / ours for ours, theirs in zip(self.seconds[name], self.seconds[reference])]

    def ratio(self, name: str, reference: str) -> float:
        """The median over rounds of `name`'s speed over `reference`'s (> 1: `name` is faster)."""
        return statistics.median(self.round_ratios(name, reference))

    def summary(self, reference: str | None = None) -> dict:
        """Plain numbers for a bench's JSON: per candidate its rate and seconds; per other candidate
        its ratio against `reference` (default: the first) with the round ratios behind it."""
        names = list(self.seconds)
        reference = reference or names[0]
        result: dict = {"unit": self.unit, "work_per_call": self.work_per_call, "rounds": self.rounds,
                        "warmup_calls": self.warmup, "state": self.state, "reference": reference,
                        "statistic": "rate: median round; ratio: median over rounds of the paired ratio, "
                                     "rounds alternating (ABBA)"}
        for name in names:
            result[name] = {f"{self.unit}_per_s": self.rate(name), "state": self.states[name],
                            "median_s": self.median_seconds(name),
                            "best_s": self.best_seconds(name), "seconds": list(self.seconds[name])}
            if name != reference:
                result[name]["ratio"] = self.ratio(name, reference)
                result[name]["round_ratios"] = self.round_ratios(name, reference)
        return result


def compare(candidates: Mapping[str, Callable[[], Any]], *, rounds: int, work_per_call: float,
            unit: str = "items", warmup: int = 1, state: str | Mapping[str, str] | None = None,
            before_each: Callable[[str], None] | None = None,
            clock: Callable[[], float] | None = None) -> PairedTiming:
    """Time `candidates` (name -> a call doing `work_per_call` items of the same work) in alternating
    rounds after `warmup` untimed calls each; see the module's docstring for the rules.

    `state`: "warm" or "cold", or one per candidate ({"cold": "cold", "warm": "warm"} when the same
    work is timed both ways); default "warm" when `warmup > 0`, else "cold". A caller whose
    `before_each` undoes the warm-up (drops a cache) states "cold" itself.
    """
    clock = clock or time.perf_counter  # looked up at each call, so a test's fake time.perf_counter is the clock
    names = list(candidates)
    if not names:
        raise ValueError("compare() needs at least one candidate")
    if rounds < 1 or warmup < 0:
        raise ValueError(f"rounds must be >= 1 and warmup >= 0 (got rounds={rounds}, warmup={warmup})")
    state = state or ("warm" if warmup > 0 else "cold")
    states = {name: state for name in names} if isinstance(state, str) else dict(state)
    if set(states) != set(names) or not set(states.values()) <= {"warm", "cold"}:
        raise ValueError(f"state must be 'warm' or 'cold' (or one of them per candidate), not {state!r}")
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    returned: dict[str, list[Any]] = {name: [] for name in names}
    order: list[str] = []
    for round_index in range(rounds):
        for name in (names if round_index % 2 == 0 else names[::-1]):
            if before_each is not None:
                before_each(name)
            began = clock()
            value = candidates[name]()
            seconds[name].append(clock() - began)
            returned[name].append(value)
            order.append(name)
    return PairedTiming(seconds, returned, order, work_per_call, unit, warmup, states)
