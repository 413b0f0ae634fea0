"""Two costs Ray Tune puts on the driver of every sweep, which a sweep never uses, avoided
while its Tuner runs (``tune_overheads_avoided``). Both replace a function of Ray Tune's
internals for the Tuner's time only and leave a Ray that has moved them as it is;
tests/sweep/driver/test_tune_overheads.py checks each against a real Tuner, and fails when a
Ray release no longer has the cost, so that the work-around can go.

The callback census. When a Tuner starts with callbacks (medsweep's always has its
recorder), Ray Tune records a usage tag counting them by class. To name the classes it
compares against, it imports its MLflow, Weights & Biases, Comet and Aim integrations, and
the MLflow one imports ``mlflow`` itself wherever it is installed (the test extra and
``--mlflow`` install it): 1.3 CPU-s on the driver's one thread between ``Tuner.fit`` and the
first trial actor asked for, while the machine waits. From ``Tuner.fit`` to the first actor
asked for, a profiled demo run took 1.4 s with it and 0.07 s without. The tag only serves
Ray's usage statistics; medsweep runs offline. (With ``--mlflow`` the tracker's callback
imports MLflow when its first trial starts, where it is needed.)

The trainable's lookups. Tune keeps the trainable (run_trial, wrapped) in Ray's key-value
store and reads it back for every trial: whether it exists when the trial is made, then
twice more (exists, fetch and unpickle) when the trial is handed an actor, each a round trip
to Ray's GCS. Five per trial, about 1.5 ms each on the demo's driver, between one trial's end
and the next one's start on the actor it frees. The trainable does not change while its
Tuner runs: it is read once, then kept.
"""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def tune_overheads_avoided():
    """Both work-arounds below, for one Tuner's run."""
    with callback_census_skipped(), trainable_lookups_cached():
        yield


@contextlib.contextmanager
def callback_census_skipped():
    """Ray Tune's ``tag_callbacks`` answers "nothing recorded" (False, as it does for a Tuner
    without callbacks) instead of importing its integrations. Tune calls it through its module
    (``air_usage.tag_callbacks``), so replacing the module's function is what it calls."""
    try:
        from ray.air._internal import usage
    except ImportError:  # a Ray that moved it: its census runs, and costs what it costs
        yield
        return
    original = getattr(usage, "tag_callbacks", None)
    if original is None:
        yield
        return
    usage.tag_callbacks = lambda callbacks: False
    try:
        yield
    finally:
        usage.tag_callbacks = original


@contextlib.contextmanager
def trainable_lookups_cached():
    """Tune's trainable registry (``ray.tune.registry._global_registry``) answers from memory
    for a trainable it has found or read once: the same class object each time, where Ray
    would unpickle an equal one. Other categories (environments, input readers) and anything
    not seen yet go to Ray's store as before; the registry's own methods are back when the
    block ends."""
    try:
        from ray.tune import registry
    except ImportError:
        yield
        return
    store = getattr(registry, "_global_registry", None)
    category = getattr(registry, "TRAINABLE_CLASS", None)
    if store is None or category is None or not all(callable(getattr(store, m, None)) for m in ("get", "contains")):
        yield
        return
    get, contains = store.get, store.contains
    own = {m: store.__dict__[m] for m in ("get", "contains") if m in store.__dict__}
    known: set = set()  # trainables Ray's store was found to hold
    read: dict = {}  # trainables fetched from it

    def cached_get(of: str, key: str):
        if of != category:
            return get(of, key)
        if key not in read:
            read[key] = get(of, key)
            known.add(key)
        return read[key]

    def cached_contains(of: str, key: str) -> bool:
        if of == category and key in known:
            return True
        held = contains(of, key)
        if held and of == category:
            known.add(key)
        return held

    # Set on the instance: the class's methods come back when these go.
    store.get, store.contains = cached_get, cached_contains
    try:
        yield
    finally:
        for name in ("get", "contains"):
            if name in own:
                setattr(store, name, own[name])
            else:
                delattr(store, name)
