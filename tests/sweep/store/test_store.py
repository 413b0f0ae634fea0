import json
import os

import pyarrow.parquet as pq
import pytest

from sweep.store.store import SCHEMA_VERSION, ResultsStore, StoreError, TRIAL_SCHEMA


def _row(study="s1", trial="t1", val=0.8, test=0.7, status="ok", **kw):
    return {"grid": "g", "dataset": "digits", "backbone": "b", "backbones": ["b"], "mode": "linear",
            "study_id": study, "cell_id": "c", "trial_id": trial, "lr": 1e-3, "val_score": val,
            "test_score": test, "status": status, "fold": 0, "n_train": 50, **kw}


def test_one_parquet_file_per_trial_with_the_full_schema(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    path = store.write_trial(_row())
    assert path == os.path.join(str(tmp_path), "trials", "s1", "t1.parquet")
    assert pq.read_schema(path).equals(TRIAL_SCHEMA)
    table = store.read_trials()
    assert table.num_rows == 1 and table.column("val_score").to_pylist() == [0.8]


def test_rewriting_a_trial_replaces_it_instead_of_duplicating(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    store.write_trial(_row(val=0.5))
    store.write_trial(_row(val=0.9))
    store.write_trial(_row(trial="t2"))
    rows = store.read_trials().to_pylist()
    assert sorted((r["trial_id"], r["val_score"]) for r in rows) == [("t1", 0.9), ("t2", 0.8)]


def test_leftover_temporary_files_of_a_crashed_write_are_not_read(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    store.write_trial(_row())
    with open(os.path.join(str(tmp_path), "trials", "s1", ".tmp-abc.parquet"), "wb") as f:
        f.write(b"PAR1 half a file")
    assert store.read_trials().num_rows == 1


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    store = ResultsStore(str(tmp_path))
    store.open_for("g")

    def boom(src, dst):  # the bytes are on disk under a temporary name; the rename fails
        raise OSError("disk full")

    monkeypatch.setattr("trainables.storage.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.write_trial(_row())
    assert os.listdir(os.path.join(str(tmp_path), "trials", "s1")) == []


def test_done_trials_counts_only_successful_ones(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    store.write_trial(_row(trial="t1", val=0.8))
    store.write_trial(_row(trial="t2", val=None, status="error", error="boom"))
    assert store.done_trials() == {"s1": [(1e-3, 0.8)]}


def test_store_of_another_grid_is_refused_unless_asked(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.open_for("demo")
    with pytest.raises(StoreError, match="holds results of grid\\(s\\) demo, not 'paper'.*--allow-other-grid"):
        store.open_for("paper")
    store.open_for("paper", allow_other_grid=True)
    assert store.meta()["grids"] == ["demo", "paper"]


def test_store_of_another_schema_version_is_refused(tmp_path):
    (tmp_path / "store.json").write_text(f'{{"schema_version": {SCHEMA_VERSION + 1}, "grids": ["demo"]}}')
    with pytest.raises(StoreError, match="schema version"):
        ResultsStore(str(tmp_path)).open_for("demo")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_directory_is_a_clear_error(tmp_path):
    tmp_path.chmod(0o500)
    with pytest.raises(StoreError, match="not writable"):
        ResultsStore(str(tmp_path / "r")).open_for("g")


def test_unwritable_directory_is_a_clear_error_even_as_root(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="not writable"):
        ResultsStore(str(blocker / "results")).open_for("g")


def test_holdout_is_fixed_per_store(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.open_for("g", holdout=0.2)
    store.open_for("g", holdout=0.2)
    with pytest.raises(StoreError, match="was swept with --holdout 0.2, not None"):
        store.open_for("g")


def test_schema_has_one_column_per_name_and_every_study_field():
    import dataclasses

    from sweep.spec import StudySpec

    names = TRIAL_SCHEMA.names
    assert len(names) == len(set(names))
    assert {f.name for f in dataclasses.fields(StudySpec)} <= set(names)


def test_results_store_on_a_uri(bucket):
    from trainables import storage

    store = ResultsStore(storage.join(bucket, "results"))
    store.open_for("g")
    store.write_trial(_row())
    store.write_trial(_row(trial="t2"))
    assert json.loads(storage.read_bytes(store.meta_path))["grids"] == ["g"]
    assert sorted(store.read_trials().column("trial_id").to_pylist()) == ["t1", "t2"]
    store.write_trial(_row())  # rewritten, not duplicated
    assert store.read_trials().num_rows == 2


def test_the_read_index_follows_new_rewritten_and_removed_trial_files(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    for t in ("t1", "t2", "t3"):
        store.write_trial(_row(trial=t))
    assert store.read_trials().num_rows == 3 and len(os.listdir(tmp_path / "index")) == 1
    store.write_trial(_row(trial="t2", val=0.99, test=0.11, study="s1"))  # rewritten (a resumed sweep)
    os.remove(store.trial_path("s1", "t3"))
    store.write_trial(_row(trial="t4"))
    rows = {r["trial_id"]: r for r in store.read_trials().to_pylist()}
    assert sorted(rows) == ["t1", "t2", "t4"] and rows["t2"]["val_score"] == 0.99
    for segment in (tmp_path / "index").iterdir():
        segment.write_bytes(b"not parquet")  # a broken index: its rows are read from their files
    assert sorted(r["trial_id"] for r in store.read_trials().to_pylist()) == ["t1", "t2", "t4"]


def test_reads_never_start_pyarrows_dataset_scanner(tmp_path, monkeypatch):
    """The scanner's threads can outlive a read and abort the process at exit
    (apache/arrow#39862): rows, history, index segments and the file index are read without it."""
    import pyarrow.dataset
    import pyarrow.parquet as pq

    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    store.write_trial(_row(trial="t1"), index=True)
    store.flush_index()
    store.write_trial(_row(trial="t2"))  # not in the index: read from its file
    store.write_history("s1", "t1", [{"epoch": 1, "val_score": 0.5}])

    def scanner(*args, **kwargs):
        raise AssertionError("pyarrow's dataset scanner was used")

    for module, name in ((pyarrow.dataset, "dataset"), (pq, "read_table"), (pq, "ParquetDataset")):
        monkeypatch.setattr(module, name, scanner)
    fresh = ResultsStore(str(tmp_path), warn=lambda m: pytest.fail(m))
    assert sorted(fresh.read_trials().column("trial_id").to_pylist()) == ["t1", "t2"]
    assert fresh.read_history().column("epoch").to_pylist() == [1]


def test_the_driver_indexes_the_rows_it_writes_in_segments_merged_when_many(tmp_path, monkeypatch):
    """The first read after a sweep opens no trial file; segments stay few; pandas reads them."""
    import pandas
    import pyarrow.parquet as pq

    from sweep.store import store as store_module

    monkeypatch.setattr(store_module, "INDEX_SEGMENT_ROWS", 3)
    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    for i in range(40):
        store.write_trial(_row(trial=f"t{i}", val=i / 100), index=True)
    store.flush_index()
    segments = sorted(os.listdir(tmp_path / "index"))
    # 14 flushes (13 of 3 rows, 1 of 1): merged into one each time 8 segments pile up.
    assert 1 <= len(segments) < store_module.INDEX_MAX_SEGMENTS
    opened = []
    monkeypatch.setattr(ResultsStore, "_read_files", lambda self, fs, paths, schema: opened.append(paths) or (schema.empty_table(), []))
    rows = store.read_trials().to_pylist()
    assert opened == [] and sorted(r["trial_id"] for r in rows) == sorted(f"t{i}" for i in range(40))
    assert {r["trial_id"]: r["val_score"] for r in rows}["t7"] == 0.07
    frame = pandas.concat(pandas.read_parquet(tmp_path / "index" / name) for name in segments)
    assert len(frame) == 40 and set(frame["_file"]) == {store.trial_path("s1", f"t{i}") for i in range(40)}
    assert len(pq.ParquetDataset(str(tmp_path / "trials")).read()) == 40  # trials/ as any reader sees it


def test_history_holds_one_row_per_epoch(tmp_path):
    from sweep.store.store import HISTORY_SCHEMA

    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    store.write_history("s1", "t1", [{"epoch": e, "val_score": 0.5 + e / 10, "extra": "ignored"} for e in (1, 2, 3)])
    store.write_history("s2", "t9", [{"epoch": 1, "val_score": 0.4}])
    table = store.read_history()
    assert table.schema == HISTORY_SCHEMA and table.num_rows == 4
    only = store.read_history({"s1"}).to_pylist()
    assert [(r["trial_id"], r["epoch"], r["val_score"]) for r in only] == [("t1", 1, 0.6), ("t1", 2, 0.7), ("t1", 3, 0.8)]
    assert store.read_history({"nope"}).num_rows == 0


def test_the_schema_page_documents_every_column_and_no_other():
    import re

    from sweep.store.store import HISTORY_SCHEMA

    page = open(os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "schema.md")).read()
    assert f"schema version {SCHEMA_VERSION}" in page
    trials = page.split("## trials", 1)[1].split("## history", 1)[0]
    history = page.split("## history", 1)[1].split("## studies", 1)[0]
    for section, schema in ((trials, TRIAL_SCHEMA), (history, HISTORY_SCHEMA)):
        documented = re.findall(r"^\| (\w+) \| ([^|]+) \|", section, flags=re.M)
        documented = [(name, kind.strip()) for name, kind in documented if name != "column"]
        types = {"string": "string", "int64": "int64", "double": "double", "bool": "bool",
                 "list<item: string>": "list&lt;string&gt;"}
        assert documented == [(f.name, types[str(f.type)]) for f in schema]


def test_one_driver_per_store_and_a_dead_drivers_lock_is_taken_over_only_on_resume(tmp_path):
    import json as _json
    import socket
    import subprocess
    import sys

    store = ResultsStore(str(tmp_path))
    store.open_for("g")
    lock = tmp_path / "driver.lock"
    with store.driver_lock():
        assert _json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(StoreError, match=rf"in use by another sweep \(pid {os.getpid()}"):
            with store.driver_lock(take_over=True):
                pass
    assert not lock.exists()  # released at the end

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(_json.dumps({"host": socket.gethostname(), "pid": alive.pid, "since": "then"}))
        with pytest.raises(StoreError, match="in use by another sweep"):
            with store.driver_lock(take_over=True):
                pass
    finally:
        alive.kill()
        alive.wait()
    # Its driver is dead now: refused without --resume, taken over with it.
    with pytest.raises(StoreError, match="did not finish .*pass --resume"):
        with store.driver_lock():
            pass
    with store.driver_lock(take_over=True):
        assert _json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def _damaged_store(tmp_path):
    """Three trials with history and manifest; one row file truncated (an interrupted copy),
    one history file gone, one manifest gone, and two orphan checkpoints."""
    from trainables.training.checkpoints import save_checkpoint

    warnings = []
    store = ResultsStore(str(tmp_path / "r"), warn=warnings.append)
    store.open_for("g")
    os.makedirs(store.manifests_dir)
    for i in range(3):
        digest = f"m{i}"
        with open(os.path.join(store.manifests_dir, f"{digest}.json"), "w") as f:
            f.write("{}")
        store.write_history("s1", f"t{i}", [{"epoch": 1, "val_score": 0.5}])
        store.write_trial(_row(trial=f"t{i}", manifest_digest=digest))
    path = store.trial_path("s1", "t0")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    os.remove(store.history_path("s1", "t1"))
    os.remove(os.path.join(store.manifests_dir, "m2.json"))
    import torch

    save_checkpoint(store.checkpoints_dir, "s1", "t2", {"w": torch.zeros(1)}, {"lr": 1e-3, "epoch": 1})  # has its row
    save_checkpoint(store.checkpoints_dir, "s1", "t9", {"w": torch.zeros(1)}, {"lr": 1e-3, "epoch": 1})  # in flight
    os.remove(os.path.join(store.checkpoints_dir, "s1", "t9.pt"))  # half of one
    return store, warnings


def test_a_damaged_row_file_is_left_out_and_named_once(tmp_path):
    store, warnings = _damaged_store(tmp_path)
    rows = store.read_trials().to_pylist()
    assert sorted(r["trial_id"] for r in rows) == ["t1", "t2"]
    store.read_trials()  # the index holds the good rows; the damaged file is named once
    assert len(warnings) == 1 and store.trial_path("s1", "t0") in warnings[0] and "unreadable" in warnings[0]
    assert list(store.unreadable) == [store.trial_path("s1", "t0")]


def test_store_check_lists_every_problem_and_exits_1(tmp_path):
    from click.testing import CliRunner

    from sweep.cli import main

    store, _ = _damaged_store(tmp_path)
    result = CliRunner().invoke(main, ["store", "check", "--results", store.root, "--json"])
    assert result.exit_code == 1, result.output
    found = sorted((p["kind"], os.path.basename(p["path"])) for p in json.loads(result.output))
    assert found == [("no history", "t1.parquet"), ("no manifest", "t2.parquet"), ("orphan checkpoint", "t2.json"),
                     ("orphan checkpoint", "t9.json"), ("unreadable", "t0.parquet")]
    table = CliRunner().invoke(main, ["store", "check", "--results", store.root])
    assert table.exit_code == 1 and "5 problem(s)" in table.output and store.trial_path("s1", "t0") in table.output


def test_results_and_resume_quarantine_on_a_damaged_store(tmp_path):
    from click.testing import CliRunner

    from sweep.cli import main

    store, _ = _damaged_store(tmp_path)
    listed = CliRunner().invoke(main, ["results", "--results", store.root, "--level", "trials", "--format", "json"])
    assert listed.exit_code == 0, listed.output
    assert sorted(r["trial_id"] for r in json.loads(listed.stdout)) == ["t1", "t2"]
    assert f"warning: {store.trial_path('s1', 't0')}: unreadable" in listed.stderr
    # One more trial, its history file truncated: the row alone would count it done for good.
    store.write_history("s1", "t3", [{"epoch": 1, "val_score": 0.5}])
    store.write_trial(_row(trial="t3"))
    with open(store.history_path("s1", "t3"), "r+b") as f:
        f.truncate(10)
    moved = store.quarantine_unreadable()
    assert moved == {
        store.history_path("s1", "t0"): "the history of an unreadable row",
        store.history_path("s1", "t3"): "unreadable",
        store.trial_path("s1", "t0"): "unreadable",
        store.trial_path("s1", "t1"): "its history file is gone",
        store.trial_path("s1", "t3"): "its history file is unreadable",
    }
    for path in moved:
        assert not os.path.exists(path)
        assert os.path.exists(os.path.join(store.root, "quarantine", os.path.relpath(path, store.root)))
    clean = ResultsStore(store.root, warn=lambda m: pytest.fail(m))
    assert clean.read_trials().column("trial_id").to_pylist() == ["t2"]  # the others run again
    assert clean.done_trials() == {"s1": [(1e-3, 0.8)]}
