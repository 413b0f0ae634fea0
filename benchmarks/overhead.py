"""Where a sweep's time goes: the demo grid run as `sweep run --grid demo` runs it, with the
machine's CPUs sampled and the driver's parts timed.

    .venv/bin/python benchmarks/overhead.py [--grid demo] [--where mode=linear] [--gpus-per-trial linear=0.1]
                                            [--profile FILE]

Prints:
- the stages (Ray start, data read, image check, extraction, Tuner, finish) and the closing
  read (the cells, answers and counts `sweep run` prints at the end);
- the trials' own time: each trial's ``wall_s`` (inside its process, from the store) times
  its CPUs, summed; the packing ratio, Tuner wall / (trials' CPU-seconds / cores), 1.0 when
  the trials alone filled every core; the per-trial overhead, (Tuner wall - trials'
  CPU-seconds / cores) / trials. Where trials take GPU shares (on a GPU machine, the grid's
  or ``--gpus-per-trial``'s), the GPUs bound the Tuner's wall too: trials' GPU-seconds / GPUs.
  The ratio and the overhead are then taken against the larger of the two bounds, the
  resource that limits the packing, which the output names;
- the cores' seconds during the Tuner: the trials' own, the driver process's (every thread),
  the rest of the busy CPU (Ray's daemons, the trials' processes outside their trials: actor
  start, imports, Tune's own thread in the actor), and idle;
- the driver's main thread during the Tuner (CPU time, ``time.thread_time``), timed around
  each entry point Tune calls in the same run: the searcher (Optuna, per study), the scheduler
  (ASHA, per study), the recorder (the store's rows and histories), the progress line, Tune's
  experiment-state snapshots, and the rest of Tune's loop; Python's garbage collections in it.
  Timers, not a profiler: cProfile slowed the driver's Python unevenly (Tune's snapshot, pure
  Python pickling and JSON, 10 times; the loop about 1.5 times) and made a 0.26 s part look
  like the largest;
- actor start: from the moment the searcher hands a trial to Tune to the moment the trial
  starts in its process (its ``started_at``), median and mean, and that wait summed over the
  trials, divided by the trials that run at once;
- where the cores' seconds outside the trials fall, when every trial asks the same CPUs and
  GPU share (each of the min(cores / CPUs, GPUs / share) places then runs one trial after
  another): before a place's first trial
  (its process starting and importing), between two trials of one place (the trial's last
  report, the driver recording it and handing the place the next, that trial setting up),
  and after its last.

``--profile FILE`` runs the sweep a second time with the driver's main thread under cProfile
and writes its profile (pstats) there, for a closer look (``python -m pstats``): read its
shares with the caution above. ``--no-profile`` is what the benchmark does without
``--profile`` (it once meant skipping a profiled second run that is no longer the default).
Last line: ``packing ratio X, per-trial overhead Y s, demo wall Z s``.
"""

from __future__ import annotations

import argparse
import cProfile
import contextlib
import functools
import gc
import os
import pstats
import resource
import statistics
import sys
import tempfile
import threading
import time
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

def part_entry_points() -> list[tuple[str, type, tuple[str, ...]]]:
    """(part, class, methods) of the driver: the calls Tune makes into each part, timed in the
    measured run (:class:`PartTimers`) and summed from the profile of ``--profile``'s run."""
    from ray.tune.execution.tune_controller import TuneController

    from sweep.driver.progress import SweepProgress
    from sweep.driver.recorder import StoreCallback
    from sweep.driver.routing import StudyScheduler, StudySearcher

    return [
        ("searcher (Optuna per study)", StudySearcher, ("suggest", "on_trial_result", "on_trial_complete", "requeue")),
        ("scheduler (ASHA per study)", StudyScheduler, ("on_trial_add", "on_trial_result", "on_trial_complete",
                                                        "on_trial_remove", "on_trial_error", "choose_trial_to_run")),
        ("recorder (store rows, histories)", StoreCallback, ("on_trial_result", "on_trial_complete", "on_trial_error")),
        ("progress line", SweepProgress, ("trial_written", "on_step_end")),
        ("experiment-state snapshots", TuneController, ("checkpoint",)),
    ]


class PartTimers:
    """The driver's main-thread CPU seconds (``time.thread_time``) in each part, timed around
    the methods Tune calls (:func:`part_entry_points`), and in the whole of ``Tuner.fit``. A
    part's time leaves out the timed calls nested in it (the recorder calling the searcher's
    ``requeue``): each second counts once. Calls from other threads are not timed. About a
    microsecond a call, against the milliseconds the parts take."""

    def __init__(self):
        self.seconds: dict = {}
        self.calls: dict = {}
        self.fit_s = 0.0
        self.fitting = False  # inside Tuner.fit now
        self._nested: list[float] = []  # per open timed call: the seconds of timed calls inside it
        self._patched: list = []  # (class, name, its own attribute or None)

    def _timed(self, part: str, method):
        timers = self

        @functools.wraps(method)
        def timed(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                return method(*args, **kwargs)
            started = time.thread_time()
            timers._nested.append(0.0)
            if part is None:
                timers.fitting = True
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = time.thread_time() - started
                inside = timers._nested.pop()
                if part is not None:
                    timers.seconds[part] = timers.seconds.get(part, 0.0) + elapsed - inside
                    timers.calls[part] = timers.calls.get(part, 0) + 1
                    if timers._nested:
                        timers._nested[-1] += elapsed
                else:  # Tuner.fit: the whole
                    timers.fit_s += elapsed
                    timers.fitting = False
        return timed

    def _patch(self, owner: type, name: str, part: Optional[str]) -> None:
        own = owner.__dict__.get(name)
        self._patched.append((owner, name, own))
        setattr(owner, name, self._timed(part, getattr(owner, name)))

    def __enter__(self):
        from ray import tune

        for part, owner, names in part_entry_points():
            for name in names:
                self._patch(owner, name, part)
        self._patch(tune.Tuner, "fit", None)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, own in reversed(self._patched):
            if own is None:
                delattr(owner, name)  # inherited: the base class's again
            else:
                setattr(owner, name, own)
        self._patched = []


def _stat_fields(pid) -> list[int]:
    """/proc/PID/stat's fields after the command name, as numbers (0: the state letter, as 0;
    11, 12: utime, stime in clock ticks; 19: start time since boot)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    state, *rest = stat[stat.rindex(")") + 2:].split()
    return [0, *map(int, rest)]


class CpuSampler(threading.Thread):
    """Samples, every ``interval`` s: (time, the machine's busy CPU-seconds from /proc/stat,
    this process's CPU-seconds, every thread)."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval, self.samples, self.stopped = interval, [], threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.processes: dict = {}  # pid -> (name, start time, CPU-seconds at its last sample)
        self.since = _stat_fields("self")[19] / self.tick  # this process's start, since boot

    def sample(self):
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal: busy leaves out idle, iowait, steal
        busy = sum(fields[:3]) + sum(fields[5:7])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.time(), busy / self.tick, usage.ru_utime + usage.ru_stime

    def run(self):
        while not self.stopped.is_set():
            self.samples.append(self.sample())
            if len(self.samples) % 10 == 1:
                self.scan_processes()
            self.stopped.wait(self.interval)

    def scan_processes(self):
        """Every other process's CPU-seconds so far, by pid, and its name: Ray's daemons
        (raylet, gcs_server, ...) and its workers (``ray::...`` once they run a task or actor)."""
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                fields = _stat_fields(pid)
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    command = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue  # ended meanwhile
            seconds = (fields[11] + fields[12]) / self.tick  # utime, stime
            start = fields[19] / self.tick  # since boot
            name = os.path.basename(command.split()[0]) if command else ""
            previous = self.processes.get(pid)
            if start < self.since:
                continue  # running before this benchmark: not the sweep's
            if previous is None or previous[1] == start:
                self.processes[pid] = (name if not previous or name.startswith("ray::") else previous[0], start, seconds)

    def process_groups(self) -> dict:
        """name group -> (processes, CPU-seconds) of the processes seen (their last sample)."""
        groups: dict = {}
        for name, _start, seconds in self.processes.values():
            if name.startswith("ray::") or name in ("default_worker.py", "python", "python3"):
                group = "Ray workers (trial actors, tasks)"
            elif name in ("raylet", "gcs_server"):
                group = name
            else:
                group = "other (" + name[:30] + ")" if name else "other"
            count, total = groups.get(group, (0, 0.0))
            groups[group] = (count + 1, total + seconds)
        return groups

    def between(self, start: float, end: float) -> tuple[float, float]:
        """(machine busy CPU-s, driver CPU-s) from the samples nearest ``start`` and ``end``."""
        def at(t):
            return min(self.samples, key=lambda s: abs(s[0] - t))
        a, b = at(start), at(end)
        return b[1] - a[1], b[2] - a[2]


def profile_groups(profile: cProfile.Profile) -> tuple[dict, float, float]:
    """CPU seconds of the driver's main thread per part (the cumulative time of its entry
    points, found by their code as cProfile keys it), Tune's loop (TuneController.step, the
    parts left out), and the whole profile."""
    from ray.tune.execution.tune_controller import TuneController

    def key(function) -> tuple:
        code = function.__code__
        return code.co_filename, code.co_firstlineno, code.co_name

    parts = {key(getattr(owner, name)): part for part, owner, names in part_entry_points() for name in names}
    stats = pstats.Stats(profile).stats
    groups: dict = {}
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.values())
    step = stats.get(key(TuneController.step), (0, 0, 0.0, 0.0, {}))[3]
    for function, (_cc, _nc, _tt, ct, _callers) in stats.items():
        if function in parts:
            groups[parts[function]] = groups.get(parts[function], 0.0) + ct
    return groups, step - sum(groups.values()), total


class Run:
    """One sweep of the studies in a fresh results store and cache, with the CPUs sampled, the
    driver's parts timed (:class:`PartTimers`) and, when ``profiled``, the driver's main
    thread under cProfile (``thread_time``) instead."""

    def __init__(self, studies: list, profiled: bool, resources=None):
        from sweep.driver import routing
        from sweep.driver.runner import run_sweep
        from sweep.options import Resources, RunOptions, StoreOptions
        from sweep.store.store import ResultsStore

        self.handed: dict = {}  # trial id -> when the searcher handed it to Tune
        suggest = routing.StudySearcher.suggest
        handed = self.handed

        def stamped(searcher, trial_id):
            config = suggest(searcher, trial_id)
            if isinstance(config, dict):
                handed[trial_id] = time.time()
            return config

        routing.StudySearcher.suggest = stamped
        self.collections = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}  # generation -> [count, seconds]
        collecting = {}
        # A profiled run is for its pstats only: timers inside it would time the profiler too.
        self.timers = PartTimers() if not profiled else None
        timers = self.timers

        def on_collection(phase, info):
            if threading.current_thread() is not threading.main_thread():
                return
            if not timers.fitting and phase == "start":
                return  # the Tuner's collections only
            if phase == "start":
                collecting["t"] = time.thread_time()
            elif "t" in collecting:
                entry = self.collections[info["generation"]]
                entry[0] += 1
                entry[1] += time.thread_time() - collecting.pop("t")

        self.sampler = CpuSampler()
        self.sampler.start()
        self.profile = cProfile.Profile(time.thread_time) if profiled else None
        try:
            with tempfile.TemporaryDirectory() as work:
                options = RunOptions(store=StoreOptions(results=os.path.join(work, "results"),
                                                        cache=os.path.join(work, "cache")),
                                     resources=resources or Resources(), verbose=1)
                if timers is not None:  # reported with the timed parts only
                    gc.callbacks.append(on_collection)
                started = time.perf_counter()
                if self.profile:
                    self.profile.enable()
                with (self.timers or contextlib.nullcontext()):
                    self.summary = run_sweep(studies, options)
                if self.profile:
                    self.profile.disable()
                read_started = time.perf_counter()
                store = ResultsStore(self.summary.results)
                self.outcome = self.summary.outcome(store)
                self.read_s = time.perf_counter() - read_started
                self.wall = time.perf_counter() - started
                self.rows = store.read_trials().to_pylist()
        finally:
            routing.StudySearcher.suggest = suggest
            if on_collection in gc.callbacks:
                gc.callbacks.remove(on_collection)
            self.sampler.scan_processes()
            self.sampler.stopped.set()
            # run_sweep stops the Ray it started: the next run starts its own, as `sweep run` would.


def tight_bounds(rows: list, cores: int, gpus: int = 0) -> dict:
    """The Tuner's least possible wall by each resource the trials take: their seconds times
    their share of it, summed, over the machine's amount of it. "cores" always; "GPUs" where
    a trial took a GPU share and the machine has GPUs."""
    bounds = {"cores": sum((r["wall_s"] or 0) * r["cpus"] for r in rows) / cores}
    gpu_seconds = sum((r["wall_s"] or 0) * (r.get("gpus") or 0) for r in rows)
    if gpu_seconds and gpus:
        bounds["GPUs"] = gpu_seconds / gpus
    return bounds


def at_once(cores: int, gpus: int, cpus: float, share: float) -> int:
    """Trials of ``cpus`` CPUs and ``share`` of a GPU that fit the machine at once."""
    fit = int(cores / cpus + 1e-9)
    if share:
        fit = min(fit, int(gpus / share + 1e-9))  # 1 / 0.1 is 9.999... in floating point
    return max(1, fit)


def machine_gpus(rows: list) -> int:
    """The GPUs the trials had to share (torch's count; 0 where no trial took a GPU share)."""
    if not any(r.get("gpus") for r in rows):
        return 0
    import torch

    return torch.cuda.device_count()


def packing_figures(run: Run, cores: int, gpus: int) -> dict:
    """The packing of an unprofiled run: the Tuner's wall against its least possible wall,
    the resource that bounds it, the per-trial overhead, when the first trial started."""
    rows, (tuner_start, tuner_end) = run.rows, run.summary.phases["tuner"]
    tuner = tuner_end - tuner_start
    bounds = tight_bounds(rows, cores, gpus)
    bound = max(bounds, key=bounds.get)
    starts = [r["started_at"] for r in rows if r.get("started_at") is not None]
    return {"trials": len(rows), "cores": cores, "gpus": gpus, "demo_wall_s": round(run.wall, 1),
            "tuner_s": round(tuner, 1), "tight_s": {k: round(v, 1) for k, v in bounds.items()}, "bound": bound,
            "packing_ratio": round(tuner / bounds[bound], 3),
            "per_trial_overhead_s": round((tuner - bounds[bound]) / len(rows), 4),
            "first_trial_after_s": round(min(starts) - tuner_start, 1) if starts else None}


def report_figures(run: Run, grid: str, cores: int) -> tuple[float, float]:
    """Stages, trials' own time, packing, the cores' seconds, processes, actor start of an
    unprofiled run; (packing ratio, per-trial overhead)."""
    rows, phases = run.rows, run.summary.phases
    tuner_start, tuner_end = phases["tuner"]
    tuner = tuner_end - tuner_start
    gpus = machine_gpus(rows)
    figures = packing_figures(run, cores, gpus)
    own = sum((r["wall_s"] or 0) * r["cpus"] for r in rows)
    own_raw = sum(r["wall_s"] or 0 for r in rows)
    packing, overhead = figures["packing_ratio"], figures["per_trial_overhead_s"]
    tight = figures["tight_s"][figures["bound"]]
    busy, driver_cpu = run.sampler.between(tuner_start, tuner_end)
    print(f"{grid}: {run.summary.studies} studies, {len(rows)} trials, {len(run.outcome['cells'])} cells, "
          f"{cores} cores{f', {gpus} GPUs' if gpus else ''}; wall {run.wall:.1f} s")
    print("stages: " + ", ".join(f"{name} {end - start:.1f} s" for name, (start, end) in phases.items())
          + f", closing read {run.read_s:.1f} s")
    print(f"trials' own time: {own_raw:.1f} s wall, {own:.1f} CPU-s (x each trial's CPUs); "
          f"tight on {cores} cores: {own / cores:.1f} s"
          + (f"; tight on {gpus} GPUs (x each trial's GPU share): {figures['tight_s']['GPUs']:.1f} s"
             if "GPUs" in figures["tight_s"] else ""))
    print(f"packing ratio: Tuner {tuner:.1f} s / {tight:.1f} s (bound by the {figures['bound']}) = {packing:.2f}; "
          f"per-trial overhead {overhead:.3f} s")
    starts = [r["started_at"] for r in rows if r.get("started_at") is not None]
    if starts:
        ends = [r["started_at"] + (r["wall_s"] or 0) for r in rows if r.get("started_at") is not None]
        print(f"the Tuner's first trial started {figures['first_trial_after_s']:.1f} s after the Tuner did (the first "
              f"actors' processes starting and importing), its last trial ended {tuner_end - max(ends):.1f} s "
              f"before the Tuner did")
    capacity = tuner * cores
    rest = max(0.0, busy - own - driver_cpu)
    idle = max(0.0, capacity - busy)
    print(f"the cores' {capacity:.0f} CPU-s during the Tuner: trials' own {own:.0f} ({own / capacity:.0%}), "
          f"driver process {driver_cpu:.0f} ({driver_cpu / capacity:.0%}), Ray and the trials' processes outside "
          f"their trials {rest:.0f} ({rest / capacity:.0%}), idle {idle:.0f} ({idle / capacity:.0%})")
    print("processes other than the driver, CPU-s over the whole run (a process's last sample; one that "
          "ended between samples loses its last second):")
    for group, (count, seconds) in sorted(run.sampler.process_groups().items(), key=lambda g: -g[1][1]):
        if seconds >= 0.5:
            print(f"  {group:<44} {count:4d} processes {seconds:8.1f}")
    waits = [r["started_at"] - run.handed[r["trial_id"]] for r in rows
             if r.get("started_at") is not None and r["trial_id"] in run.handed]
    if waits:
        concurrent = at_once(cores, gpus, min(r["cpus"] for r in rows), min(r.get("gpus") or 0 for r in rows))
        print(f"actor start (handed to Tune -> started in its process; trials wait for a free actor too): "
              f"median {statistics.median(waits):.2f} s, mean {statistics.mean(waits):.2f} s; summed / "
              f"{concurrent} at once: {sum(waits) / concurrent:.1f} s of the Tuner's {tuner:.1f} s")
    report_places(rows, tuner_start, tuner_end, cores, gpus)
    return packing, overhead


def places_of(rows: list, places: int) -> list[list[tuple[float, float]]]:
    """The trials' (start, end) on ``places`` places that each run one trial at a time: each
    trial on the place freed last before it started (a place is a process Tune reuses, and
    what frees one is a trial ending there)."""
    out: list[list[tuple[float, float]]] = [[] for _ in range(places)]
    for r in sorted(rows, key=lambda r: r["started_at"]):
        start, end = r["started_at"], r["started_at"] + (r["wall_s"] or 0)
        free = [p for p in out if not p or p[-1][1] <= start + 1e-3]
        if not free:
            raise ValueError(f"more trials at once than places ({places}) at {start:.3f}")
        # A freed process first (Tune reuses it), else one not used yet.
        used = [p for p in free if p]
        place = max(used, key=lambda p: p[-1][1]) if used else free[0]
        place.append((start, end))
    return out


def report_places(rows: list, tuner_start: float, tuner_end: float, cores: int, gpus: int = 0) -> None:
    """The places' seconds outside the trials, by when they fall (see the module's docstring)."""
    timed = [r for r in rows if r.get("started_at") is not None]
    if not timed:
        print("the seconds outside the trials are not split by place: no trial row has a started_at")
        return
    cpus = {r["cpus"] for r in timed}
    if len(cpus) != 1:
        print(f"the seconds outside the trials are not split by place: the trials ask {sorted(cpus)} CPUs, and "
              f"trials of different sizes share the cores unevenly")
        return
    shares = {r.get("gpus") or 0 for r in timed} if gpus else {0}
    if len(shares) != 1:
        print(f"the seconds outside the trials are not split by place: the trials ask GPU shares {sorted(shares)}, "
              f"and trials of different sizes share the GPUs unevenly")
        return
    places = at_once(cores, gpus, cpus.pop(), shares.pop())
    try:
        trials = places_of(timed, places)
    except ValueError as exc:
        print(f"the seconds outside the trials are not split by place: {exc}")
        return
    before = sum(p[0][0] - tuner_start for p in trials if p)
    gaps = [b[0] - a[1] for p in trials for a, b in zip(p, p[1:])]
    after = sum(tuner_end - p[-1][1] for p in trials if p)
    unused = (tuner_end - tuner_start) * sum(1 for p in trials if not p)
    parts = [f"before the first {before:.1f}"]
    if gaps:
        parts.append(f"between trials {sum(gaps):.1f} ({len(gaps)} gaps, median {statistics.median(gaps) * 1000:.0f} ms)")
    parts.append(f"after the last {after:.1f}")
    if unused:
        parts.append(f"never used {unused:.1f}")
    print(f"the {places} places' seconds outside their trials: " + ", ".join(parts))


def report_parts(run: Run) -> None:
    """The driver's main thread during the Tuner by part, from the measured run's timers."""
    timers, trials = run.timers, len(run.rows)
    print(f"driver main thread in the Tuner, CPU-s, timed around each part Tune calls: {timers.fit_s:.2f} "
          f"({timers.fit_s / trials * 1000:.1f} ms a trial)")
    for part, seconds in sorted(timers.seconds.items(), key=lambda g: -g[1]):
        print(f"  {part:<36} {seconds:7.2f}  {seconds / trials * 1000:6.1f} ms a trial  "
              f"{timers.calls[part]:6d} calls")
    loop = timers.fit_s - sum(timers.seconds.values())
    print(f"  {'the rest of Tune loop':<36} {loop:7.2f}  {loop / trials * 1000:6.1f} ms a trial")
    print("  Python's garbage collections in it: " + ", ".join(
        f"generation {g} {n} x {s:.2f} s" for g, (n, s) in run.collections.items()))


def report_profile(run: Run) -> None:
    """The driver's main thread by part, from a profiled run (``--profile``)."""
    groups, loop, total = profile_groups(run.profile)
    trials = len(run.rows)
    print(f"driver main thread, CPU-s, from a second run under cProfile (which slows the driver's Python "
          f"unevenly, Tune's snapshots 10x: the timed parts above are the figures; that run's Tuner took "
          f"{run.summary.phases['tuner'][1] - run.summary.phases['tuner'][0]:.1f} s; whole thread {total:.1f}):")
    for group, seconds in sorted(groups.items(), key=lambda g: -g[1]):
        print(f"  {group:<36} {seconds:7.2f}  {seconds / trials * 1000:6.1f} ms a trial")
    print(f"  {'the rest of Tune loop':<36} {loop:7.2f}  {loop / trials * 1000:6.1f} ms a trial")


def gpu_shares(values: list):
    """``--gpus-per-trial`` values as `sweep run` reads them, into its Resources."""
    from sweep.cli import _gpus, _modes, _pairs
    from sweep.options import Resources

    return Resources(gpus_per_trial=_modes(_pairs(tuple(values), "--gpus-per-trial", _gpus), "--gpus-per-trial"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="demo")
    parser.add_argument("--where", action="append", default=[], help="as sweep run --where, e.g. mode=linear")
    parser.add_argument("--gpus-per-trial", action="append", default=[], metavar="MODE=FRACTION",
                        help="as sweep run --gpus-per-trial, e.g. linear=0.1 (ignored without GPUs)")
    parser.add_argument("--profile", default=None,
                        help="run the sweep a second time with the driver profiled and write its profile (pstats) here")
    parser.add_argument("--no-profile", action="store_true", help="no profiled second run (the default)")
    args = parser.parse_args()

    import click

    from sweep.cli import _studies

    studies = _studies(args.grid, tuple(args.where), None, None)
    try:
        resources = gpu_shares(args.gpus_per_trial)
    except click.BadParameter as exc:
        parser.error(exc.format_message())
    cores = os.cpu_count() or 1
    # The figures come from a run as `sweep run` runs it: a profiler on the driver's thread
    # would slow the very loop whose cost is measured (the Tuner took 75 s profiled, 59 s not).
    measured = Run(studies, profiled=False, resources=resources)
    packing, overhead = report_figures(measured, args.grid, cores)
    report_parts(measured)
    if args.profile and not args.no_profile:
        profiled = Run(studies, profiled=True, resources=resources)
        report_profile(profiled)
        profiled.profile.dump_stats(args.profile)
    print(f"packing ratio {packing:.2f}, per-trial overhead {overhead:.3f} s, demo wall {measured.wall:.1f} s")


if __name__ == "__main__":
    main()
