"""A small grid through the real path: Ray, the one Tuner, the routers, the store."""

import os

import pytest
import timm
import torch

from sweep.store.queries import aggregate_cells, select_studies
from sweep.driver.runner import run_sweep
from tests.contexts import run_options
from sweep.spec import StudySpec
from sweep.store.store import ResultsStore, StoreError

COMMON = dict(grid="mini", dataset="digits", subset="S", n_train=60, max_epochs=6, grace_period=1,
              reduction_factor=2, batch_size=32, cpus=0.5)


def _grid():
    linear = [StudySpec(backbones=("test_resnet",), mode="linear", fold=f, n_trials=4,
                        lr_min=1e-3, lr_max=1e-1, **COMMON) for f in (0, 1)]
    dvme = [StudySpec(backbones=("test_resnet", "test_vit"), mode="dvme", fold=0, n_trials=3,
                      proj_dim=32, **COMMON)]
    finetune = [StudySpec(backbones=("test_vit",), mode="finetune", fold=0, n_trials=2,
                          **{**COMMON, "cpus": 1.0, "max_epochs": 3})]
    return linear + dvme + finetune


@pytest.fixture(scope="module")
def swept(ray_local, tmp_path_factory):
    results = str(tmp_path_factory.mktemp("results"))
    studies = _grid()
    summary = run_sweep(studies, run_options(results=results, verbose=0))
    return studies, results, summary


def test_every_trial_of_every_study_lands_once(swept):
    studies, results, summary = swept
    rows = ResultsStore(results).read_trials().to_pylist()
    assert summary.trials_written == len(rows) == sum(s.n_trials for s in studies) == 13
    assert len({r["trial_id"] for r in rows}) == len(rows)
    for s in studies:
        mine = [r for r in rows if r["study_id"] == s.study_id]
        assert len(mine) == s.n_trials
        assert all(s.lr_min <= r["lr"] <= s.lr_max for r in mine)
    assert all(r["status"] == "ok" and r["node_id"] and r["metric"] == "auc" for r in rows)
    assert all(0 <= r["test_score"] <= 1 and 1 <= r["epochs"] <= r["max_epochs"] for r in rows)


def test_rows_carry_the_study_and_what_reproduces_it(swept):
    _, results, _ = swept
    row = next(r for r in ResultsStore(results).read_trials().to_pylist() if r["mode"] == "dvme")
    assert row["backbone"] == "test_resnet+test_vit" and row["backbones"] == ["test_resnet", "test_vit"]
    assert '"torch": "' in row["versions"] and row["data_fingerprint"].startswith("digits-")
    assert set(__import__("json").loads(row["embedding_keys"])) == {"test_resnet", "test_vit"}
    manifest = os.path.join(results, "manifests", f"{row['manifest_digest']}.json")
    with open(manifest) as f:
        split = __import__("json").load(f)
    assert len(split["train_ids"]) + len(split["val_ids"]) == row["n_train"]
    assert len(__import__("json").loads(row["backbone_attention"])) == 2  # test_resnet x test_vit


def test_every_epoch_of_every_trial_is_in_the_history_table(swept):
    _, results, _ = swept
    store = ResultsStore(results)
    trials = {r["trial_id"]: r for r in store.read_trials().to_pylist()}
    history = store.read_history().to_pylist()
    for tid, trial in trials.items():
        epochs = [h for h in history if h["trial_id"] == tid]
        assert sorted(h["epoch"] for h in epochs) == list(range(1, trial["epochs"] + 1))
        assert max(h["best_val_score"] for h in epochs) == pytest.approx(trial["val_score"])


def test_asha_stopped_some_trials_within_their_study(swept):
    _, results, _ = swept
    rows = ResultsStore(results).read_trials().to_pylist()
    linear = [r for r in rows if r["mode"] == "linear"]
    assert any(r["stopped_early"] for r in linear)
    # In every study the first trial to reach a rung sets it, so some trial ran to the end.
    for sid in {r["study_id"] for r in rows}:
        assert any(r["epochs"] == r["max_epochs"] for r in rows if r["study_id"] == sid)


def test_a_trial_that_runs_to_its_last_epoch_writes_its_bootstrap_before_its_report_ends_it(swept):
    # Its last report says "done" and Tune may stop its thread right there (when no next trial
    # takes its actor over): the selected epoch's scores on the test set's resamples are
    # written before that report. (A trial ASHA stops at a rung writes them on its way out
    # when its thread gets that far; else the report's intervals recompute them from its
    # predictions: sweep/store/intervals.py.)
    from trainables.artifacts import TrialFiles
    from trainables.training.outputs import load_bootstrap

    _, results, _ = swept
    full = [r for r in ResultsStore(results).read_trials().to_pylist() if r["epochs"] == r["max_epochs"]]
    assert len(full) >= 5
    for r in full:
        scores = load_bootstrap(TrialFiles(results, r["study_id"], r["trial_id"]).bootstrap)
        assert scores is not None and len(scores) >= 100 and ((0 <= scores) & (scores <= 1)).all(), r["trial_id"]


def test_embeddings_were_extracted_once_per_dataset_and_backbone(swept):
    # Three frozen studies (two linear folds on test_resnet, DVME on test_resnet + test_vit)
    # need two (dataset, backbone) files: two extractions, not one per study.
    _, results, summary = swept
    cache = os.path.join(results, "cache")
    assert summary.extracted == 2 == len([f for f in os.listdir(cache) if f.endswith(".arrow")])


def test_cells_aggregate_the_folds(swept):
    _, results, _ = swept
    cells = aggregate_cells(select_studies(ResultsStore(results).read_trials().to_pylist()))
    linear = next(c for c in cells if c["mode"] == "linear")
    assert linear["folds"] == 2 and linear["trials"] == 8 and linear["std"] is not None


def test_rerun_without_resume_is_refused_and_resume_reruns_only_what_is_missing(swept):
    studies, results, _ = swept
    with pytest.raises(StoreError, match="pass --resume"):
        run_sweep(studies, run_options(results=results, verbose=0))
    store = ResultsStore(results)
    before = store.read_trials().to_pylist()
    victim = next(r for r in before if r["mode"] == "linear")
    # Its row file truncated, as an interrupted copy or sync leaves it; and in another study,
    # the history file of a trial (its row intact).
    damaged = store.trial_path(victim["study_id"], victim["trial_id"])
    half = os.path.getsize(damaged) // 2
    with open(damaged, "r+b") as f:
        f.truncate(half)
    other = next(r for r in before if r["mode"] == "dvme")
    with open(store.history_path(other["study_id"], other["trial_id"]), "r+b") as f:
        f.truncate(10)
    summary = run_sweep(studies, run_options(results=results, resume=True, verbose=0))
    assert summary.skipped == len(studies) - 2 and summary.trials_written == 2
    # Moved aside, not deleted: the damaged file is kept under quarantine/, same path.
    moved = os.path.join(results, "quarantine", "trials", victim["study_id"], f"{victim['trial_id']}.parquet")
    assert os.path.getsize(moved) == half and not os.path.exists(damaged)
    assert os.path.exists(os.path.join(results, "quarantine", "history", other["study_id"], f"{other['trial_id']}.parquet"))
    after = store.read_trials().to_pylist()
    assert len(after) == len(before) and other["trial_id"] not in {r["trial_id"] for r in after}
    for r in (victim, other):
        assert sum(a["study_id"] == r["study_id"] for a in after) == r["n_trials"]
    # Every row has its history again: nothing for `sweep store check` to report.
    from sweep.store.storecheck import check_store

    assert check_store(ResultsStore(results)) == []
    # A third run finds everything complete and starts nothing.
    again = run_sweep(studies, run_options(results=results, resume=True, verbose=0))
    assert again.trials_written == 0 and again.skipped == len(studies)


def test_a_failing_trial_is_recorded_with_its_error_and_the_sweep_goes_on(ray_local, tmp_path):
    # A finetune trial whose learning rate overflows its weights: its loss is not finite.
    studies = [
        StudySpec(backbones=("test_vit",), mode="finetune", fold=0, n_trials=1, lr_min=1e38, lr_max=1e38,
                  **{**COMMON, "grid": "bad", "max_epochs": 2}),
        StudySpec(backbones=("test_resnet",), mode="linear", fold=0, n_trials=2, **{**COMMON, "grid": "bad"}),
    ]
    run_sweep(studies, run_options(results=str(tmp_path / "r"), verbose=0))
    rows = ResultsStore(str(tmp_path / "r")).read_trials().to_pylist()
    failed = [r for r in rows if r["status"] == "error"]
    assert len(failed) == 1 and failed[0]["mode"] == "finetune"
    assert failed[0]["error"].startswith("FloatingPointError: training loss became")
    assert sum(r["status"] == "ok" for r in rows) == 2


def test_the_papers_dvme_ablation_trains_on_the_concatenated_projections(ray_local, tmp_path):
    """attention=False with the paper's head: the classifier reads the N x proj_dim
    concatenation (its saved fused features are that wide); the row names the form."""
    import numpy as np

    from trainables.artifacts import TrialFiles

    study = StudySpec(backbones=("test_resnet", "test_vit"), mode="dvme", fold=0, n_trials=1, proj_dim=16,
                      attention=False, **{**COMMON, "grid": "ablation", "max_epochs": 2})
    run_sweep([study], run_options(results=str(tmp_path / "r"), verbose=0))
    (row,) = ResultsStore(str(tmp_path / "r")).read_trials().to_pylist()
    assert row["status"] == "ok" and row["no_attention_head"] == "linear" and row["qkv_bias"] is False
    with np.load(TrialFiles(str(tmp_path / "r"), row["study_id"], row["trial_id"]).dvme_features) as saved:
        assert saved["features"].shape[1] == 2 * 16


@pytest.mark.parametrize("mode", ["linear", "finetune"])
def test_a_weight_file_that_does_not_fit_is_refused_before_anything_starts(tmp_path, monkeypatch, mode):
    """A finetune study's wrong file was one error row per trial; a frozen one's, an extraction
    error after Ray and the image check."""
    import ray

    from sweep.spec import SpecError

    bad = tmp_path / "test_vit.pth"
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), bad)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("Ray started"))
    studies = [StudySpec(backbones=("test_vit",), mode=mode, fold=0, n_trials=1, **{**COMMON, "grid": "bad"})]
    with pytest.raises(SpecError, match=rf"^--weights test_vit={bad} does not load into test_vit: \d+ missing, \d+ unexpected"):
        run_sweep(studies, run_options(results=str(tmp_path / "r"), weights={"test_vit": str(bad)}, verbose=0))
    assert not (tmp_path / "r").exists()  # nothing written, nothing extracted


@pytest.mark.parametrize("mode", ["linear", "finetune"])
def test_an_image_that_does_not_decode_is_refused_before_any_trial_or_extraction_starts(ray_local, tmp_path, mode):
    from tests import layouts
    from trainables.data.datasets import DatasetError

    root = tmp_path / "data"
    layouts.folder(str(root), per_class=10)
    broken = root / "train" / "malignant" / "malignant_3.png"
    broken.write_bytes(broken.read_bytes()[:60])  # a copy cut short
    studies = [StudySpec(backbones=("test_resnet",), mode=mode, fold=0, n_trials=1,
                         **{**COMMON, "grid": "broken", "dataset": "folder", "n_train": 20})]
    options = run_options(results=str(tmp_path / "r"), data_roots={"folder": str(root)}, verbose=0)
    with pytest.raises(DatasetError, match=f"1 image\\(s\\) of folder cannot be used: {broken}: not a readable "
                                           "image .*`sweep data check folder` lists every such file"):
        run_sweep(studies, options)
    store = ResultsStore(str(tmp_path / "r"))
    assert store.read_trials().num_rows == 0 and not os.path.exists(store.history_dir)
    assert not [f for f in os.listdir(store.cache_dir) if f.endswith(".arrow")]  # nothing extracted
    # Mended, the same sweep runs.
    layouts.image(str(broken))
    summary = run_sweep(studies, options)
    assert summary.trials_written == 1 and store.read_trials().to_pylist()[0]["status"] == "ok"


def test_a_second_sweep_on_a_shared_cache_extracts_nothing(ray_local, tmp_path):
    cache = tmp_path / "cache"
    studies = [StudySpec(backbones=("test_vit",), mode="linear", fold=0, n_trials=1, **{**COMMON, "grid": "shared"})]
    run_sweep(studies, run_options(results=str(tmp_path / "one"), cache=str(cache), verbose=0))
    before = {f.name: f.stat().st_mtime_ns for f in cache.iterdir()}
    assert len(before) == 1
    second = run_sweep(studies, run_options(results=str(tmp_path / "two"), cache=str(cache), verbose=0))
    assert second.extracted == 0 and {f.name: f.stat().st_mtime_ns for f in cache.iterdir()} == before
    assert not (tmp_path / "two" / "cache").exists()
    (row,) = ResultsStore(str(tmp_path / "two")).read_trials().to_pylist()
    key = __import__("json").loads(row["embedding_keys"])["test_vit"][0]
    assert [name.split(".")[0] for name in before] == [key]


def test_a_sweep_extracts_the_rows_its_studies_draw_and_a_larger_one_only_those_it_lacks(ray_local, tmp_path):
    import numpy as np

    from trainables.cache.embeddings import ensure_embeddings, list_cache, load_embeddings
    from trainables.data.datasets import load_dataset
    from trainables.data.splits import balanced_subset

    cache = str(tmp_path / "cache")
    common = {**COMMON, "grid": "grow", "n_trials": 1, "max_epochs": 2}
    small = [StudySpec(backbones=("test_resnet",), mode="linear", fold=f, **common) for f in (0, 1)]
    first = run_sweep(small, run_options(results=str(tmp_path / "one"), cache=cache, verbose=0))
    (part,) = list_cache(cache)
    # digits: 1,257 pool images, 540 test; the two folds of the 60-image subset use all 60.
    assert first.extracted == 1 and part["pool_rows"] == 60 and part["rows"] == 60 + 540

    from tests.layouts import file_state

    before = file_state(part["path"])
    larger = [s.replace(n_train=150, subset="M") for s in small]
    second = run_sweep(larger, run_options(results=str(tmp_path / "two"), cache=cache, verbose=0))
    new = [e for e in list_cache(cache) if e["part"] != part["part"]]
    # The first part is never rewritten: the same file (inode), untouched (mtime), same bytes.
    assert file_state(part["path"]) == before
    # Nested subsets: only the 90 images the 150-image subset adds, and no second test set.
    assert second.extracted == 1 and len(new) == 1 and new[0]["rows"] == new[0]["pool_rows"] == 90
    assert new[0]["key"] == part["key"]
    rows = ResultsStore(str(tmp_path / "two")).read_trials().to_pylist()
    assert [r["status"] for r in rows] == ["ok", "ok"]

    # The parts read as one matrix, row for row what a whole-pool extraction gives.
    pool = load_dataset("digits").pool
    drawn = balanced_subset(pool.labels, 150, 0)
    parted = load_embeddings([part["path"], new[0]["path"]])
    whole = load_embeddings(ensure_embeddings("digits", None, "test_resnet", None, str(tmp_path / "whole"),
                                              progress=False))
    assert parted["pool"].rows.tolist() == drawn.tolist()
    np.testing.assert_allclose(parted["pool"].features[drawn], whole["pool"].features[drawn], atol=1e-5)
    np.testing.assert_array_equal(parted["pool"].labels[drawn], pool.labels[drawn])
    np.testing.assert_allclose(parted["test"].features, whole["test"].features, atol=1e-5)
    with pytest.raises(ValueError, match=r"holds no features of 1 asked row"):
        parted["pool"].features[np.setdiff1d(np.arange(len(pool)), drawn)[:1]]


def test_augmented_views_are_extracted_once_each_and_shared_with_the_single_view_study(ray_local, tmp_path):
    from tests import layouts

    layouts.patchcam(str(tmp_path / "pc"), labels=(0, 1) * 8, n_test=2)
    common = {**COMMON, "grid": "views", "dataset": "patchcam", "n_train": 12, "n_folds": 2, "max_epochs": 2,
              "n_trials": 1}
    studies = [StudySpec(backbones=("test_resnet",), mode="linear", fold=0, views=v, **common) for v in (1, 2)]
    assert studies[0].study_id != studies[1].study_id
    run_sweep(studies, run_options(results=str(tmp_path / "r"), data_roots={"patchcam": str(tmp_path / "pc")},
                                  verbose=0))
    cache = tmp_path / "r" / "cache"
    assert len([f for f in cache.iterdir() if f.suffix == ".arrow"]) == 3  # view 0, views 1 and 2
    from trainables.cache.embeddings import list_cache

    # Fold 0 of 2 over 12 images: 6 train, 6 validate. The augmented views hold the training
    # rows only, view 0 all 12 (validation reads it) and the 2 test images.
    held = sorted((e["view"], e["pool_rows"], e["rows"]) for e in list_cache(str(cache)))
    assert held == [(0, 12, 14), (1, 6, 6), (2, 6, 6)]
    # One extraction task for the three views (each image decoded once): one pass, one rate.
    assert len({e["images_per_s"] for e in list_cache(str(cache))}) == 1
    rows = {r["views"]: r for r in ResultsStore(str(tmp_path / "r")).read_trials().to_pylist()}
    keys = {v: __import__("json").loads(rows[v]["embedding_keys"])["test_resnet"] for v in (1, 2)}
    assert len(keys[1]) == 1 and len(keys[2]) == 3 and keys[2][0] == keys[1][0]
    assert all(rows[v]["status"] == "ok" for v in (1, 2))


@pytest.mark.parametrize("node, cpus", [((16, 1), 9), ((8, 1), 8), ((48, 4), 9), ((16, 4), 4), ((2, 4), 1)])
def test_an_extraction_task_takes_its_gpus_share_of_the_node_up_to_nine_cpus(node, cpus):
    """Extraction runs before any trial: a GPU's share of its node's CPUs is free to decode."""
    from sweep.driver.runner import default_extract_cpus

    assert default_extract_cpus(*node) == cpus


@pytest.mark.parametrize("decode, decoded_by", [("device", "device: JPEG by libjpeg-turbo"), ("auto", "workers (Pillow)")])
def test_the_decode_option_reaches_every_extraction(ray_local, tmp_path, decode, decoded_by):
    """--decode goes with each extraction task; auto on a CPU keeps the workers' path."""
    from tests import layouts
    from trainables.cache.embeddings import list_cache

    layouts.pneumonia(str(tmp_path / "px"))
    studies = [StudySpec(backbones=("test_resnet",), mode="linear", fold=0, n_trials=1,
                         **{**COMMON, "grid": "decode", "dataset": "pneumonia", "n_train": 8, "n_folds": 2,
                            "max_epochs": 2})]
    run_sweep(studies, run_options(results=str(tmp_path / "r"), data_roots={"pneumonia": str(tmp_path / "px")},
                                  decode=decode, verbose=0))
    (entry,) = list_cache(str(tmp_path / "r" / "cache"))
    assert entry["decode"].startswith(decoded_by)
    assert ResultsStore(str(tmp_path / "r")).read_trials().to_pylist()[0]["status"] == "ok"


def test_a_nan_loss_is_recorded_once_as_an_error_and_listed_by_where_status(ray_local, tmp_path):
    from click.testing import CliRunner

    from sweep.cli import main

    # An absurd learning rate: the first Adam steps overflow the logits and the loss is not finite.
    studies = [StudySpec(backbones=("test_resnet",), mode="linear", fold=0, n_trials=2, lr_min=1e38, lr_max=1e38,
                         **{**COMMON, "grid": "nan", "max_epochs": 3})]
    summary = run_sweep(studies, run_options(results=str(tmp_path / "r"), verbose=0))
    rows = ResultsStore(str(tmp_path / "r")).read_trials().to_pylist()
    assert summary.trials_written == len(rows) == 2
    assert all(r["status"] == "error" and r["error"].startswith("FloatingPointError: training loss became") for r in rows)
    # Each ran once: a deterministic error is not retried. (A re-raise would be retried by Tune
    # up to --max-failures and still end in one row: the attempts are Tune's own count.)
    import glob

    from ray.tune import ExperimentAnalysis

    (experiment,) = glob.glob(str(tmp_path / "r" / "ray" / "*" / ""))
    attempts = {t.trial_id: (t.status, t.run_metadata.num_failures) for t in ExperimentAnalysis(experiment).trials}
    assert sorted(attempts) == sorted(r["trial_id"] for r in rows)
    assert set(attempts.values()) == {("TERMINATED", 0)}
    listed = CliRunner().invoke(main, ["results", "--results", str(tmp_path / "r"), "--level", "trials",
                                       "--where", "status=error", "--format", "json"])
    assert sorted(r["trial_id"] for r in __import__("json").loads(listed.output)) == sorted(r["trial_id"] for r in rows)


def _killer(store, killed: dict):
    """A thread that SIGKILLs the trial process once, in a state that makes the test exact:
    the one trial process (one study, one trial at a time) has saved a checkpoint of an epoch
    at most 4 of 6, so it is in flight with epochs to go. Frozen while the state is read, it
    cannot move on before it is killed. ``killed``: {trial id: its checkpoint's epoch}."""
    import signal
    import threading
    import time

    from tests.faults import checkpoint_epochs, frozen, in_flight, processes_titled

    def kill_one_trial_process():
        deadline = time.time() + 300
        while time.time() < deadline and not killed:
            found = processes_titled()
            if len(found) == 1 and in_flight(store):
                with frozen(found):
                    saved = in_flight(store)
                    if len(saved) == 1 and max(saved.values()) <= 4:
                        os.kill(found[0], signal.SIGKILL)
                        killed.update(checkpoint_epochs(store, saved))
            time.sleep(0.02)

    thread = threading.Thread(target=kill_one_trial_process, daemon=True)
    thread.start()
    return thread


KILL_STUDY = StudySpec(backbones=("test_vit",), mode="finetune", fold=0, n_trials=2,
                       **{**COMMON, "grid": "kill", "cpus": 1.0, "max_epochs": 6, "grace_period": 6})


def test_a_killed_trial_process_is_run_again_from_its_checkpoint_and_recorded_once(ray_local, tmp_path):
    store = ResultsStore(str(tmp_path / "r"))
    killed: dict = {}
    killer = _killer(store, killed)
    summary = run_sweep([KILL_STUDY], run_options(results=store.root, verbose=0, max_failures=2, checkpoint_every_s=0))
    killer.join(timeout=1)
    rows = store.read_trials().to_pylist()
    assert killed, "no trial process was found to kill"
    assert summary.trials_written == len(rows) == 2 and len({r["trial_id"] for r in rows}) == 2
    assert all(r["status"] == "ok" and r["epochs"] == 6 for r in rows)
    resumed = [r for r in rows if r["resumed_from_epoch"] is not None]
    # The killed trial, and only it, went on from the checkpoint it had when it was killed.
    ((trial_id, epoch),) = killed.items()
    assert [(r["trial_id"], r["resumed_from_epoch"]) for r in resumed] == [(trial_id, epoch)]
    # Its history holds every epoch once, those before the checkpoint included.
    history = store.read_history({resumed[0]["study_id"]}).to_pylist()
    epochs = sorted(h["epoch"] for h in history if h["trial_id"] == resumed[0]["trial_id"])
    assert epochs == [1, 2, 3, 4, 5, 6]
    # Checkpoints go once their trial is recorded.
    assert not [f for _, _, files in os.walk(store.checkpoints_dir) for f in files]


def test_a_trial_killed_more_often_than_max_failures_allows_is_an_error_row_that_says_so(ray_local, tmp_path):
    store = ResultsStore(str(tmp_path / "r"))
    killed: dict = {}
    killer = _killer(store, killed)
    summary = run_sweep([KILL_STUDY], run_options(results=store.root, verbose=0, max_failures=0, checkpoint_every_s=0))
    killer.join(timeout=1)
    assert killed, "no trial process was found to kill"
    ((trial_id, _),) = killed.items()
    rows = {r["trial_id"]: r for r in store.read_trials().to_pylist()}
    assert summary.trials_written == len(rows) == 2
    failed = rows[trial_id]
    assert failed["status"] == "error" and "--max-failures 0 exhausted" in failed["error"]
    assert failed["error"].startswith(("ActorDiedError", "RayActorError", "WorkerCrashedError"))
    assert [r["status"] for tid, r in rows.items() if tid != trial_id] == ["ok"]


def test_the_summary_times_each_stage_in_order_and_the_trials_ran_inside_the_tuners(ray_local, tmp_path):
    study = StudySpec(backbones=("test_vit",), mode="logistic", fold=0, n_trials=2, **{**COMMON, "max_epochs": 1})
    summary = run_sweep([study], run_options(results=str(tmp_path), verbose=0))
    names = list(summary.phases)
    assert names == ["store", "data read", "Ray start", "image check", "extraction", "tuner", "finish"]
    spans = list(summary.phases.values())
    assert all(start <= end for start, end in spans)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # one after another
    tuner_start, tuner_end = summary.phases["tuner"]
    rows = ResultsStore(str(tmp_path)).read_trials().to_pylist()
    assert len(rows) == 2 and all(tuner_start <= r["started_at"] <= tuner_end for r in rows)
    assert spans[-1][1] - spans[0][0] <= summary.wall_s + 0.01
    assert summary.phase_line().startswith("store ") and " tuner " in summary.phase_line()
