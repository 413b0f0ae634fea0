"""Long-lived objects frozen out of the collector's reach: in a trial's actor, in an extraction
task's worker (once per process), and in the CLI's and the workers' processes as they exit. Each case runs in a
fresh Python process: freezing this test process's objects would change the collector for
every test after it."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


ONCE = """
import gc, json
from trainables.gcfreeze import freeze_long_lived
before = gc.get_freeze_count()
freeze_long_lived(once=True)
first = gc.get_freeze_count()
later = [[i] for i in range(1000)]  # new tracked objects
freeze_long_lived(once=True)
again = gc.get_freeze_count()
freeze_long_lived()
every = gc.get_freeze_count()
print(json.dumps({"before": before, "first": first, "again": again, "every": every}))
"""


def test_once_freezes_the_first_time_only_and_a_plain_call_every_time():
    counts = _python(ONCE)
    assert counts["before"] == 0 and counts["first"] > 0
    assert counts["again"] == counts["first"]  # the objects made after the first call stay collectable
    assert counts["every"] >= counts["first"] + 1000


EXTRACT = """
import atexit, gc, json, sys
# Registered first, so it runs last, after the worker's own exit freeze
atexit.register(lambda: print(json.dumps(dict(out, frozen_at_exit=gc.get_freeze_count()))))
from trainables.cache.embeddings import extract_views_if_missing, extract_views_in_worker
cache = sys.argv[1]
plain = extract_views_if_missing("digits", None, "test_resnet", None, cache + "/plain", progress=False, workers=0)
unfrozen = gc.get_freeze_count()
in_worker = extract_views_in_worker("digits", None, "test_resnet", None, cache + "/worker", progress=False, workers=0)
frozen = gc.get_freeze_count()
again = extract_views_in_worker("digits", None, "test_resnet", None, cache + "/again", progress=False, workers=0)
def names(out):
    return {str(v): [[f.rsplit("/", 1)[-1] for f in files], fresh] for v, (files, fresh) in out.items()}
out = {"unfrozen": unfrozen, "frozen": frozen, "again": gc.get_freeze_count(),
       "plain": names(plain), "worker": names(in_worker), "second": names(again)}
made_after = [[i] for i in range(200_000)]  # alive until the exit: frozen as it begins

"""


def test_the_extraction_task_freezes_its_worker_once_and_extracts_the_same(tmp_path):
    out = _python(EXTRACT, str(tmp_path))
    assert out["unfrozen"] == 0  # called in a process that goes on, extraction leaves the collector alone
    assert out["frozen"] > 0 and out["again"] == out["frozen"]
    assert out["worker"] == out["plain"] == out["second"]  # same files (content-addressed names), all extracted
    assert all(fresh for _, fresh in out["worker"].values())
    assert out["frozen_at_exit"] > out["frozen"] + 150_000  # made after the task: the exit walks none of it


CLI_EXIT = """
import atexit, gc, sys
# Registered before the CLI runs, so it runs after the CLI's own exit handlers: it sees the
# collector as Python's exit will.
atexit.register(lambda: print('{"frozen_at_exit": %d}' % gc.get_freeze_count()))
if sys.argv[1] == "cli":
    from sweep.cli import main
    main(["grids"])
"""


def test_the_cli_freezes_what_is_alive_before_the_process_exits():
    assert _python(CLI_EXIT, "cli")["frozen_at_exit"] > 100_000  # torch's, click's, the grids' objects
    assert _python(CLI_EXIT, "none")["frozen_at_exit"] == 0


INSPECT = """
import atexit, gc, json, sys
# Registered first, so it runs last, after the worker's own exit freeze
atexit.register(lambda: print(json.dumps(dict(out, frozen_at_exit=gc.get_freeze_count()))))
import numpy as np
from PIL import Image
from trainables.data.filedigests import inspect_files, inspect_files_in_worker
good, bad = sys.argv[1] + "/good.png", sys.argv[1] + "/bad.png"
Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(good)
open(bad, "wb").write(b"not a png")
plain = inspect_files([good, bad], True)
unfrozen = gc.get_freeze_count()
in_worker = inspect_files_in_worker([good, bad], True)
out = {"unfrozen": unfrozen, "frozen": gc.get_freeze_count(), "plain": plain, "worker": in_worker}
made_after = [[i] for i in range(200_000)]  # alive until the exit: frozen as it begins

"""


def test_the_image_check_task_freezes_its_worker_and_checks_the_same(tmp_path):
    out = _python(INSPECT, str(tmp_path))
    assert out["unfrozen"] == 0 and out["frozen"] > 0
    assert out["frozen_at_exit"] > out["frozen"] + 150_000  # made after the task: the exit walks none of it
    # The same digests and outcomes (PIL's message names a BytesIO's address, which differs).
    assert [(d, p is None) for d, p in out["worker"]] == [(d, p is None) for d, p in out["plain"]]
    (good_digest, good_problem), (_, bad_problem) = out["worker"]
    assert len(good_digest) == 64 and good_problem is None and "bad.png" in bad_problem


AT_EXIT = """
import atexit, gc, json, sys
# Registered first, so it runs last: it sees the collector as Python's own exit will.
atexit.register(lambda: print(json.dumps({"frozen_at_exit": gc.get_freeze_count(), "handlers": handlers})))
from trainables.gcfreeze import freeze_at_exit  # its imports may register handlers of their own
before = atexit._ncallbacks()
if sys.argv[1] == "direct":
    freeze_at_exit()
    freeze_at_exit()  # a second trial in the same actor: still one handler
elif sys.argv[1] == "trial":
    from trainables.training.entry import run_trial
    for _ in range(2):
        try:
            run_trial({})  # no trial context: the trial itself fails, the actor's exit is still cheap
        except Exception:
            pass
handlers = atexit._ncallbacks() - before
made_after = [[i] for i in range(200_000)]  # objects the work leaves alive until the exit
"""


def test_freeze_at_exit_freezes_what_is_alive_when_the_exit_begins_registered_once():
    direct = _python(AT_EXIT, "direct")
    assert direct["handlers"] == 1
    assert direct["frozen_at_exit"] > 150_000  # made after the call, frozen all the same
    assert _python(AT_EXIT, "none") == {"frozen_at_exit": 0, "handlers": 0}


def test_a_trial_actor_registers_the_exit_freeze_even_when_its_trial_fails():
    trial = _python(AT_EXIT, "trial")
    assert trial["frozen_at_exit"] > 150_000
