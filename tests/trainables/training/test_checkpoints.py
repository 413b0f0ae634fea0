"""Trial checkpoints: a trial resumed from one trains as if it had never stopped; a checkpoint
that is broken, of another trial, or that needs code to unpickle is never used."""

import io
import json
import logging
import os

import pytest
import torch

import dataclasses

from sweep.spec import StudySpec
from tests.contexts import make_context, make_run
from trainables.training.checkpoints import (
    checkpoint_paths,
    list_checkpoints,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from trainables.cache.embeddings import ensure_embeddings
from trainables.training.trainable import Checkpointer, trial_epochs

COMPARED = ("epoch", "train_loss", "val_loss", "val_score", "best_val_score", "best_epoch", "test_score", "lr_now")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return {b: ensure_embeddings("digits", None, b, None, cache) for b in ("test_resnet", "test_vit")}


def _config(files, mode, backbones, store, max_epochs=7, every_s=0, lr=3e-3):
    """A trial of the study in ``store`` that checkpoints every ``every_s`` seconds."""
    spec = StudySpec(grid="t", dataset="digits", backbones=backbones, mode=mode, subset="M", n_train=100,
                     fold=1, max_epochs=max_epochs, batch_size=32, proj_dim=32, cpus=1.0)
    embedding = {b: files[b] for b in backbones} if mode != "finetune" else {}
    return make_run(make_context(spec, str(store), embedding_files=embedding, checkpoint_every_s=every_s), lr=lr)


def _run(run, stop_after=None):
    records = []
    for record in trial_epochs(run, checkpointer=Checkpointer.for_trial(run)):
        records.append(record)
        if stop_after is not None and record["epoch"] == stop_after:
            break  # the process dies here: nothing after this epoch happens
    return records


@pytest.mark.parametrize("mode,backbones", [("linear", ("test_resnet",)), ("dvme", ("test_resnet", "test_vit")),
                                            ("finetune", ("test_vit",))])
def test_a_resumed_trial_trains_exactly_as_one_that_never_stopped(files, tmp_path, mode, backbones):
    whole = list(trial_epochs(_config(files, mode, backbones, tmp_path / "unused", every_s=None)))
    config = _config(files, mode, backbones, tmp_path / "ckpt")
    first = _run(config, stop_after=3)
    meta = json.loads(open(config.files.checkpoint_meta).read())
    assert meta["epoch"] == 3 and [r["epoch"] for r in meta["records"]] == [1, 2, 3]
    resumed = _run(config)
    assert [r["epoch"] for r in resumed] == [4, 5, 6, 7]  # not from epoch 1
    assert all(r["resumed_from_epoch"] == 3 for r in resumed) and first[0]["resumed_from_epoch"] is None
    for got, want in zip(first + resumed, whole):
        for key in COMPARED:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), (key, got["epoch"])
    # Wall time counts both attempts.
    assert resumed[0]["trial_wall_s"] > first[-1]["trial_wall_s"]


def test_checkpoints_are_written_only_when_due_and_never_after_the_last_epoch(files, tmp_path):
    config = _config(files, "linear", ("test_resnet",), tmp_path, max_epochs=4, every_s=3600)
    _run(config)
    assert not os.path.exists(config.files.checkpoint)
    checkpointer = Checkpointer(str(tmp_path), "s", "t", every_s=0)
    assert checkpointer.due(3, 4) and not checkpointer.due(4, 4)


def test_a_checkpoint_of_another_learning_rate_or_split_is_not_resumed_from(files, tmp_path):
    config = _config(files, "linear", ("test_resnet",), tmp_path)
    _run(config, stop_after=2)
    other_lr = _run(dataclasses.replace(config, lr=1e-2))
    other_split = _run(dataclasses.replace(config, context=dataclasses.replace(config.context, manifest_digest="m2")))
    assert other_lr[0]["epoch"] == 1 and other_split[0]["epoch"] == 1
    assert other_lr[0]["resumed_from_epoch"] is None


def test_a_broken_checkpoint_is_reported_and_the_trial_starts_from_epoch_1(files, tmp_path, caplog):
    config = _config(files, "linear", ("test_resnet",), tmp_path)
    _run(config, stop_after=2)
    weights = config.files.checkpoint
    with open(weights, "r+b") as f:
        f.truncate(os.path.getsize(weights) // 2)  # a write cut short by a dying node
    with caplog.at_level(logging.WARNING, logger="trainables.training.checkpoints"):
        records = _run(config)
    assert records[0]["epoch"] == 1 and len(records) == 7
    assert any("is not usable" in m and weights in m for m in caplog.messages)


class _Payload:
    """A pickle that runs code when loaded: it would create a file named by its argument."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_needs_code_to_unpickle_never_runs_it(tmp_path, caplog):
    marker = tmp_path / "code-ran"
    weights, _ = checkpoint_paths(str(tmp_path), "study", "trial")
    os.makedirs(os.path.dirname(weights))
    buffer = io.BytesIO()
    torch.save({"meta": {"format": 1}, "state": {"fit": _Payload(str(marker))}}, buffer)
    with open(weights, "wb") as f:
        f.write(buffer.getvalue())
    with caplog.at_level(logging.WARNING, logger="trainables.training.checkpoints"):
        assert load_checkpoint(str(tmp_path), "study", "trial") is None
    assert not marker.exists()
    assert any("UnpicklingError" in m for m in caplog.messages)


def test_checkpoints_are_listed_by_their_json_and_removed_whole(tmp_path):
    save_checkpoint(str(tmp_path), "s1", "a", {"x": torch.zeros(2)}, {"lr": 0.1, "epoch": 2, "records": []})
    save_checkpoint(str(tmp_path), "s2", "b", {"x": torch.ones(2)}, {"lr": 0.2, "epoch": 5, "records": []})
    (tmp_path / "s2" / "junk.json").write_text("{not json")
    metas = sorted(list_checkpoints(str(tmp_path)), key=lambda m: m["trial_id"])
    assert [(m["study_id"], m["trial_id"], m["epoch"]) for m in metas] == [("s1", "a", 2), ("s2", "b", 5)]
    assert torch.equal(load_checkpoint(str(tmp_path), "s2", "b")["state"]["x"], torch.ones(2))
    remove_checkpoint(str(tmp_path), "s1", "a")
    remove_checkpoint(str(tmp_path), "s1", "a")  # twice: already gone is fine
    assert [m["trial_id"] for m in list_checkpoints(str(tmp_path))] == ["b"]
    assert not any(p.exists() for p in map(__import__("pathlib").Path, checkpoint_paths(str(tmp_path), "s1", "a")))


def test_a_kill_between_the_two_writes_resumes_from_the_whole_newer_pt_with_every_epoch_in_its_json(files, tmp_path):
    """Killed after the .pt of epoch 3 replaced the old one but before its .json: the .json
    still says epoch 2. The trial resumes from the .pt (whole, newer) and the .json is made to
    say so, records of epochs 1-3 included: the driver's history misses no epoch."""
    config = _config(files, "linear", ("test_resnet",), tmp_path)
    _run(config, stop_after=2)
    stale = open(config.files.checkpoint_meta).read()
    _run(dataclasses.replace(config, trial_id="twin"), stop_after=3)  # a twin trial saves epoch 3
    twin = config.files.checkpoint.replace("trial_1.pt", "twin.pt")
    state = torch.load(twin, weights_only=True)
    state["meta"]["trial_id"] = "trial_1"
    torch.save(state, config.files.checkpoint)  # the .pt of epoch 3 in place, the .json of epoch 2
    assert json.loads(stale)["epoch"] == 2 and open(config.files.checkpoint_meta).read() == stale
    # Resumed by a run that saves no checkpoint of its own: the .json left is the settled one.
    resumed = _run(_config(files, "linear", ("test_resnet",), tmp_path, every_s=3600))
    assert resumed[0]["epoch"] == 4 and resumed[0]["resumed_from_epoch"] == 3
    meta = json.loads(open(config.files.checkpoint_meta).read())
    assert meta["epoch"] == 3 and [r["epoch"] for r in meta["records"]] == [1, 2, 3]
