"""ast.parse from several threads while garbage collections run finalizers that let other
threads in: what Ray's and Tune's threads do beside a sweep's driver. On the CPythons whose AST
constructor shares its recursion count between threads (gh-106905), that race raised
SystemError within the first round; importing trainables serializes the parses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainables.astlock import AFFECTED

STRESS = r'''
import ast, gc, sys, threading, time
import trainables  # noqa: F401  (the fix, as every process of a sweep imports it)
assert getattr(ast.parse, "__medsweep_serialized__", False) == {affected}
SOURCE = "\n".join(f"def f{{i}}(a, b=[1, {{{{'x': (3, 4)}}}}]):\n    return [x * {{i}} for x in range(a) if x % 2]"
                   for i in range(50))

class Cycle:  # garbage only a collection frees, whose finalizer hands the GIL to another thread
    def __init__(self):
        self.me = self
    def __del__(self):
        time.sleep(0)

errors = []
def parse():
    for _ in range(20):
        for _ in range(20):
            Cycle()
        try:
            tree = ast.parse(SOURCE)
            assert len(tree.body) == 50
        except SystemError as exc:
            errors.append(str(exc))
            return

gc.set_threshold(50, 5, 5)
threads = [threading.Thread(target=parse) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors)
sys.exit(1 if errors else 0)
'''


def test_parses_from_many_threads_during_collections_never_fail():
    done = subprocess.run([sys.executable, "-c", STRESS.format(affected=AFFECTED)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]


@pytest.mark.skipif(not AFFECTED, reason="this Python's AST constructor keeps a count per call")
def test_the_lock_is_reentrant_and_installed_once():
    import ast
    import threading

    from trainables.astlock import _LOCK, serialize_ast_parse

    wrapped = ast.parse
    serialize_ast_parse()
    assert ast.parse is wrapped and wrapped.__medsweep_serialized__
    # A finalizer that parses while its thread is inside a parse gets through (a plain lock
    # would hang here: the thread would wait on itself).
    parsed = []

    def nested():
        with _LOCK:
            parsed.append(ast.parse("x = 1"))

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive() and isinstance(parsed[0], ast.Module)
