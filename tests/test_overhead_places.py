"""benchmarks/overhead.py's places: the trials laid out on the processes that ran them, one
after another, so that the cores' seconds outside the trials split into before the first
trial, between two trials and after the last, and those add up with the trials' own. And its
timers of the driver's parts: each second counted once, the classes left as they were."""

from __future__ import annotations

import importlib.util
import os
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _overhead():
    spec = importlib.util.spec_from_file_location("overhead", os.path.join(ROOT, "benchmarks", "overhead.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(start, end):
    return {"started_at": start, "wall_s": end - start, "cpus": 1.0}


def test_a_trial_goes_to_the_process_freed_last_before_it_and_the_seconds_add_up(capsys):
    overhead = _overhead()
    rows = [_row(10.0, 11.0), _row(10.5, 12.0), _row(11.02, 11.5), _row(12.03, 13.0), _row(11.6, 11.9)]
    first, second = overhead.places_of(rows, 2)
    # 11.02 reuses the process freed at 11.0; 12.03 the one freed at 12.0 (not the one free
    # since 11.9, which 11.6 had taken after 11.5)
    assert first == [(10.0, 11.0), (11.02, 11.5), (11.6, 11.9)]
    assert second == [(10.5, 12.0), (12.03, 13.0)]
    overhead.report_places(rows, tuner_start=9.0, tuner_end=13.5, cores=2)
    line = capsys.readouterr().out
    # before: 1.0 + 1.5; between: 0.02 + 0.1 + 0.03; after: 1.6 + 0.5
    assert "before the first 2.5, between trials 0.1 (3 gaps, median 30 ms), after the last 2.1" in line
    own = sum(r["wall_s"] for r in rows)
    assert own + 2.5 + 0.15 + 2.1 == pytest.approx((13.5 - 9.0) * 2)


def test_more_trials_at_once_than_places_is_refused():
    overhead = _overhead()
    with pytest.raises(ValueError, match="more trials at once than places"):
        overhead.places_of([_row(0.0, 2.0), _row(0.5, 1.5), _row(1.0, 3.0)], 2)


def test_rows_without_a_start_are_named_instead_of_split(capsys):
    overhead = _overhead()
    overhead.report_places([{"started_at": None, "wall_s": 1.0, "cpus": 1.0}], tuner_start=0.0, tuner_end=2.0, cores=2)
    assert capsys.readouterr().out.strip() == (
        "the seconds outside the trials are not split by place: no trial row has a started_at")


def test_the_gpus_bound_the_tuner_where_the_trials_gpu_shares_fill_them_first():
    overhead = _overhead()
    # 20 trials of 1 s, 1 CPU and 0.1 GPU each, on 16 cores and 1 GPU: 10 fit at once (the
    # GPU's tenths), not 16, so the least wall is 2 s, not 1.25 s.
    rows = [{"started_at": 0.0, "wall_s": 1.0, "cpus": 1.0, "gpus": 0.1} for _ in range(20)]
    assert overhead.tight_bounds(rows, cores=16, gpus=1) == pytest.approx({"cores": 1.25, "GPUs": 2.0})
    assert overhead.at_once(16, 1, 1.0, 0.1) == 10  # 1 / 0.1 is not 10 in floating point
    assert overhead.at_once(16, 1, 1.0, 0.0) == 16
    assert overhead.at_once(2, 0, 1.0, 0.0) == 2
    # Without GPUs (or trials that took none) only the cores bound it.
    assert overhead.tight_bounds(rows, cores=16, gpus=0) == pytest.approx({"cores": 1.25})
    assert overhead.tight_bounds([{**r, "gpus": 0.0} for r in rows], cores=16, gpus=1) == pytest.approx({"cores": 1.25})


def test_places_on_a_gpu_are_as_many_as_the_gpu_shares_allow(capsys):
    overhead = _overhead()
    # 10 trials at once from 0 to 1 and 10 more from 1.01 to 2: on 16 cores and 1 GPU at 0.1
    # each, 10 places, each running two trials with a 10 ms gap.
    rows = [{"started_at": start, "wall_s": 0.99 if start else 1.0, "cpus": 1.0, "gpus": 0.1}
            for start in [0.0] * 10 + [1.01] * 10]
    overhead.report_places(rows, tuner_start=0.0, tuner_end=2.5, cores=16, gpus=1)
    assert capsys.readouterr().out.strip() == (
        "the 10 places' seconds outside their trials: before the first 0.0, between trials 0.1 (10 gaps, median 10 ms), "
        "after the last 5.0")
    mixed = rows[:-1] + [{**rows[-1], "gpus": 0.05}]
    overhead.report_places(mixed, tuner_start=0.0, tuner_end=2.5, cores=16, gpus=1)
    assert "the trials ask GPU shares [0.05, 0.1]" in capsys.readouterr().out


def _spin(seconds: float) -> None:
    """Busy this thread for ``seconds`` of its own CPU time."""
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


class _Base:
    def inherited(self):
        return "base"


class _Part(_Base):
    def outer(self):
        _spin(0.05)
        return self.inner()

    def inner(self):
        _spin(0.1)
        return "inner"


def test_a_part_timer_leaves_out_the_timed_calls_inside_it_and_other_threads():
    overhead = _overhead()
    outer, inner = _Part.outer, _Part.inner
    timers = overhead.PartTimers()
    timers._patch(_Part, "outer", "outer part")
    timers._patch(_Part, "inner", "inner part")
    timers._patch(_Part, "inherited", "never called")
    try:
        assert _Part().outer() == "inner"
        other = threading.Thread(target=_Part().inner)  # Tune's other threads: not the driver's loop
        other.start()
        other.join()
    finally:
        timers.__exit__(None, None, None)
    assert timers.calls == {"outer part": 1, "inner part": 1}
    assert 0.1 <= timers.seconds["inner part"] < 0.15
    assert 0.05 <= timers.seconds["outer part"] < 0.09  # its own 0.05, not the inner call's 0.1 again
    # Every class as it was: its own methods back, the inherited one its base's again.
    assert _Part.outer is outer and _Part.inner is inner and "inherited" not in _Part.__dict__
    assert _Part().inherited() == "base"


def test_the_part_timers_wrap_what_tune_calls_and_restore_it():
    overhead = _overhead()
    from ray import tune

    from sweep.driver.routing import StudyScheduler, StudySearcher

    suggest, fit = StudySearcher.__dict__["suggest"], tune.Tuner.__dict__["fit"]
    with overhead.PartTimers():
        assert StudySearcher.__dict__["suggest"] is not suggest and tune.Tuner.__dict__["fit"] is not fit
        assert "choose_trial_to_run" in StudyScheduler.__dict__  # FIFOScheduler's, timed on medsweep's class
    assert StudySearcher.__dict__["suggest"] is suggest and tune.Tuner.__dict__["fit"] is fit
    assert "choose_trial_to_run" not in StudyScheduler.__dict__
