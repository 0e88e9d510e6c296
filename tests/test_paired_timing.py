"""harness.paired_timing: the rules every bench's ratio relies on, checked with a fake clock and a
known workload (each candidate's cost is set here, so the right answer is known beforehand)."""

from __future__ import annotations

import pytest

from harness.paired_timing import compare


class FakeMachine:
    """A clock and candidates whose calls cost `cost[name] * load(t)` seconds of fake time, where the
    load is a function of the time the call starts: a shared machine whose load comes and goes."""

    def __init__(self, cost: dict[str, float], load=lambda now: 1.0):
        self.now, self.cost, self.load, self.calls = 0.0, cost, load, []

    def clock(self) -> float:
        return self.now

    def candidate(self, name: str):
        def call():
            self.calls.append(name)
            self.now += self.cost[name] * self.load(self.now)
            return name
        return call

    def candidates(self) -> dict:
        return {name: self.candidate(name) for name in self.cost}


def test_a_known_workload_gives_its_rates_and_ratio():
    machine = FakeMachine({"ours": 2.0, "theirs": 3.0})
    timing = compare(machine.candidates(), rounds=3, warmup=1, work_per_call=12, unit="images", clock=machine.clock)
    assert timing.rate("ours") == 6.0 and timing.rate("theirs") == 4.0  # 12 images in 2 s and in 3 s
    assert timing.ratio("ours", "theirs") == 1.5 and timing.ratio("theirs", "ours") == pytest.approx(2 / 3)
    summary = timing.summary("theirs")
    assert summary["ours"]["images_per_s"] == 6.0 and summary["ours"]["ratio"] == 1.5
    assert summary["rounds"] == 3 and summary["warmup_calls"] == 1 and summary["state"] == "warm"
    assert "ratio" not in summary["theirs"]


def test_rounds_alternate_and_every_candidate_gets_the_same_repeats():
    machine = FakeMachine({"a": 1.0, "b": 1.0})
    timing = compare(machine.candidates(), rounds=4, warmup=2, work_per_call=1, clock=machine.clock)
    assert machine.calls[:4] == ["a", "b", "a", "b"]  # warm-up: untimed
    assert timing.order == machine.calls[4:] == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert {name: len(seconds) for name, seconds in timing.seconds.items()} == {"a": 4, "b": 4}
    assert timing.returned == {"a": ["a"] * 4, "b": ["b"] * 4}


def test_warm_up_calls_are_not_timed():
    # the first call of each costs 100x (tracing, autotuning): it must not reach the numbers
    first = {"a": True, "b": True}

    def load_for(name):
        def call():
            machine.now += (100.0 if first[name] else 1.0) * machine.cost[name]
            first[name] = False
        return call

    machine = FakeMachine({"a": 1.0, "b": 2.0})
    timing = compare({name: load_for(name) for name in ("a", "b")}, rounds=3, warmup=1, work_per_call=1,
                     clock=machine.clock)
    assert timing.seconds == {"a": [1.0] * 3, "b": [2.0] * 3}
    cold = compare({name: load_for(name) for name in ("a", "b")}, rounds=1, warmup=0, work_per_call=1,
                   clock=machine.clock)
    assert cold.state == "cold"


def test_load_that_comes_and_goes_favours_neither_candidate():
    # b does 3x a's work per call. The machine is quiet (load 1) only for a moment, while a's call of
    # the third round starts; otherwise it is loaded 2x. A best-of-rounds ratio would compare a's
    # quiet moment with b's loaded ones (6x); the median of the paired ratios is the truth, 3x.
    machine = FakeMachine({"a": 1.0, "b": 3.0}, load=lambda now: 1.0 if 16.0 <= now < 17.0 else 2.0)
    timing = compare(machine.candidates(), rounds=5, warmup=0, work_per_call=1, clock=machine.clock)
    assert min(timing.seconds["b"]) / min(timing.seconds["a"]) == 6.0  # what best-of would have said
    assert timing.ratio("a", "b") == 3.0


def test_a_steady_drift_cancels_out_with_alternating_order():
    # the machine slows down by 5% per second of fake time: who runs first in a round is favoured,
    # so the order alternates and the median of the paired ratios stays within 0.5% of the truth
    machine = FakeMachine({"a": 1.0, "b": 1.0}, load=lambda now: 1.0 + 0.05 * now)
    timing = compare(machine.candidates(), rounds=4, warmup=0, work_per_call=1, clock=machine.clock)
    assert timing.ratio("a", "b") == pytest.approx(1.0, rel=5e-3)
    per_round = timing.round_ratios("a", "b")
    assert per_round[0] > 1.03 and per_round[1] < 0.97  # each round alone is off by the drift


def test_before_each_runs_untimed_before_every_timed_call():
    machine = FakeMachine({"cold": 1.0, "warm": 1.0})
    prepared = []

    def before_each(name):
        prepared.append(name)
        machine.now += 50.0  # e.g. dropping a file from the page cache: not part of the work

    timing = compare(machine.candidates(), rounds=2, warmup=0, work_per_call=1, clock=machine.clock,
                     before_each=before_each, state={"cold": "cold", "warm": "warm"})
    assert prepared == timing.order == ["cold", "warm", "warm", "cold"]
    assert timing.seconds == {"cold": [1.0, 1.0], "warm": [1.0, 1.0]}
    assert timing.states == {"cold": "cold", "warm": "warm"} and timing.state == "mixed"


@pytest.mark.parametrize("arguments", [
    {"rounds": 0}, {"warmup": -1}, {"state": "lukewarm"}, {"state": {"a": "warm"}},
])
def test_impossible_settings_are_refused(arguments):
    settings = {"rounds": 1, "warmup": 0, "work_per_call": 1, **arguments}
    with pytest.raises(ValueError):
        compare({"a": lambda: None, "b": lambda: None}, **settings)
    with pytest.raises(ValueError):
        compare({}, rounds=1, work_per_call=1)
