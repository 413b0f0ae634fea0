import json
import os
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from sweep.spec import StudySpec
from tests.contexts import make_context, make_run
from trainables.cache.embeddings import ensure_embeddings
from trainables.training.engine import fit
from trainables.training.trainable import study_split, trial_epochs


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cache"))
    return {b: ensure_embeddings("digits", None, b, None, cache) for b in ("test_resnet", "test_vit", "test_convnext")}


@pytest.fixture
def store_root(tmp_path):
    return str(tmp_path / "store")


def _run(files, mode, backbones, store_root, **kw):
    spec = StudySpec(grid="t", dataset="digits", backbones=backbones, mode=mode, subset="M", n_train=100,
                     fold=1, max_epochs=4, batch_size=32, proj_dim=32, **kw)
    embedding = {b: files[b] for b in backbones} if mode != "finetune" else {}
    return make_run(make_context(spec, store_root, embedding_files=embedding))


@pytest.mark.parametrize(
    "mode,backbones,extra",
    [
        ("linear", ("test_resnet",), {}),
        ("dvme", ("test_resnet", "test_vit"), {}),
        ("dvme", ("test_resnet", "test_vit"), {"attention": False}),
        ("dvme", ("test_resnet", "test_vit"), {"attention_form": "listing"}),
        ("dvme", ("test_resnet", "test_vit", "test_convnext"), {}),
        ("dvme", ("test_resnet", "test_vit", "test_convnext"), {"attention_form": "listing"}),
        ("finetune", ("test_vit",), {}),
    ],
)
def test_each_mode_trains_reports_every_epoch_and_scores_its_best_epoch(files, mode, backbones, extra, store_root):
    records = list(trial_epochs(_run(files, mode, backbones, store_root, **extra)))
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    for r in records:
        assert 0.0 <= r["val_score"] <= 1.0 and math.isfinite(r["val_loss"])
        assert r["best_val_score"] == max(x["val_score"] for x in records[: r["epoch"]])
        assert 0.0 <= r["test_score"] <= 1.0
    # The test score changes only when validation improves: it belongs to the selected epoch.
    for prev, cur in zip(records, records[1:]):
        if cur["best_epoch"] == prev["best_epoch"]:
            assert cur["test_score"] == prev["test_score"]
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    if mode == "dvme" and extra.get("attention", True):
        matrix = json.loads(records[-1]["backbone_attention"])
        assert len(matrix) == len(backbones) and all(abs(sum(row) - 1) < 1e-4 for row in matrix)
    else:
        assert "backbone_attention" not in records[-1]


def test_linear_and_finetune_see_the_same_split(files, store_root):
    lin, ft = _run(files, "linear", ("test_resnet",), store_root), _run(files, "finetune", ("test_resnet",), store_root)
    from trainables.data.datasets import load_dataset
    from trainables.cache.embeddings import load_embeddings

    labels = load_embeddings(files["test_resnet"])["pool"].labels
    assert np.array_equal(labels, load_dataset("digits").pool.labels)
    # The split is the driver's manifest, one file for both modes.
    assert lin.context.manifest_file == ft.context.manifest_file
    a, b = study_split(lin.context), study_split(ft.context)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert len(a[0]) == 80 and len(a[1]) == 20


def test_trial_is_deterministic(files, store_root):
    run = _run(files, "linear", ("test_vit",), store_root)
    a = [r["val_score"] for r in trial_epochs(run)]
    b = [r["val_score"] for r in trial_epochs(run)]
    assert a == b


def test_nan_loss_stops_the_trial_with_a_named_error():
    x = torch.randn(16, 4)
    x[0, 0] = float("nan")
    data = DataLoader(TensorDataset(x, torch.tensor([0, 1] * 8)), batch_size=16)
    with pytest.raises(FloatingPointError, match="training loss became nan at epoch 1"):
        next(fit(torch.nn.Linear(4, 2), data, data, lr=1e-3, max_epochs=2, metric="auc"))


def test_learning_rate_drops_after_five_epochs_without_better_validation_loss():
    # The optimiser holds a parameter outside the model: the model never changes, validation
    # loss never improves, and the plateau scheduler cuts the LR once its patience of 5 is spent.
    x, y = torch.randn(20, 3), torch.tensor([0, 1] * 10)
    data = DataLoader(TensorDataset(x, y), batch_size=20)
    model = torch.nn.Linear(3, 2)
    detached = torch.nn.Parameter(torch.zeros(1))
    records = list(fit(model, data, data, lr=1e-3, max_epochs=8, metric="auc", parameters=[detached]))
    lrs = [r["lr_now"] for r in records]
    assert lrs[:6] == [1e-3] * 6 and lrs[6] == pytest.approx(1e-4)


def test_oversampling_draws_rare_classes_as_often_as_common_ones():
    from trainables.training.trainable import class_balanced_sampler

    labels = torch.tensor([0] * 90 + [1] * 9 + [2] * 1)
    sampler = class_balanced_sampler(labels, torch.Generator().manual_seed(0))
    draws = labels[torch.tensor(list(sampler))]
    assert len(draws) == 100
    counts = torch.bincount(torch.cat([labels[torch.tensor(list(sampler))] for _ in range(50)]), minlength=3)
    assert counts.min() / counts.max() > 0.85  # ~1/3 each, where plain shuffling gives 90/9/1


def test_nih_trains_with_the_oversampler_and_validates_without(tmp_path):
    from tests import layouts
    from trainables.training.trainable import build_frozen

    layouts.nih(str(tmp_path / "nih"))
    path = ensure_embeddings("nih", str(tmp_path / "nih"), "test_resnet", None, str(tmp_path / "cache"))
    spec = StudySpec(grid="t", dataset="nih", backbones=("test_resnet",), mode="linear", subset="6",
                     n_train=6, fold=0, n_folds=2, max_epochs=1, grace_period=1, batch_size=4)
    context = make_context(spec, str(tmp_path / "store"), embedding_files={"test_resnet": path},
                           data_root=str(tmp_path / "nih"))
    _, (train, val, test) = build_frozen(context)
    assert train.balance and not val.balance and not test.balance
    assert len(val.rows) + len(train.rows) == 6 and not set(val.rows) & set(train.rows)


def test_a_frozen_trial_with_augmented_views_trains_on_them_and_validates_on_view_0(tmp_path):
    from tests import layouts
    from trainables.cache.embeddings import load_embeddings
    from trainables.training.trainable import build_frozen

    root, cache = str(tmp_path / "pc"), str(tmp_path / "cache")
    layouts.patchcam(root, labels=(0, 1) * 6, n_test=2)
    paths = [ensure_embeddings("patchcam", root, "test_resnet", None, cache, view=v, progress=False) for v in range(3)]
    spec = StudySpec(grid="t", dataset="patchcam", backbones=("test_resnet",), mode="linear", subset="10",
                     n_train=10, fold=0, n_folds=2, max_epochs=3, grace_period=1, batch_size=4, views=2)
    run = make_run(make_context(spec, str(tmp_path / "store"), embedding_files={"test_resnet": paths}, data_root=root),
                   lr=1e-2)
    _, (train, val, test) = build_frozen(run.context)
    features = [load_embeddings(p)["pool"].features for p in paths]
    assert len(train.views) == 2
    assert np.array_equal(train.views[0][0], features[1]) and np.array_equal(train.views[1][0], features[2])
    assert len(val.views) == 1 and np.array_equal(val.views[0][0], features[0])
    import resource

    from trainables.training.memory import resident_mib

    before = resident_mib()
    records = list(trial_epochs(run))
    # The trial's peak: at least what the process held when it began, at most the highest
    # resident set the kernel saw this process hold (ru_maxrss, KiB on Linux).
    ceiling = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    assert len(records) == 3 and all(before - 1 <= r["peak_rss_mib"] <= ceiling + 0.1 for r in records)
    assert records[-1]["peak_rss_mib"] >= records[0]["peak_rss_mib"] and "peak_gpu_mib" not in records[-1]


def test_a_dvme_trial_keeps_the_fused_embedding_of_its_selected_epoch(files, store_root):
    run = _run(files, "dvme", ("test_resnet", "test_vit"), store_root)
    list(trial_epochs(run))
    path = run.files.dvme_features
    assert path == f"{store_root}/dvme_features/{run.study.study_id}/trial_1.npz"
    saved = np.load(path)
    assert saved["features"].dtype == np.float16 and saved["features"].shape == (500, run.study.proj_dim)
    assert (saved["features"] >= 0).all() and saved["features"].std() > 0  # ReLU output, not empty
    from trainables.data.datasets import load_dataset

    evenly_spaced = np.unique(np.linspace(0, 539, 500).astype(np.int64))  # of the 540 test images
    assert np.array_equal(saved["labels"], load_dataset("digits").test.labels[evenly_spaced])


def test_an_image_that_fails_in_a_decoding_worker_is_named_by_its_own_error(tmp_path):
    from tests import layouts
    from trainables.data.datasets import load_dataset
    from trainables.training.trainable import error_text

    layouts.folder(str(tmp_path), per_class=3)
    broken = tmp_path / "train" / "benign" / "benign_1.png"
    broken.write_bytes(b"not a png")
    data = load_dataset("folder", str(tmp_path))
    loader = DataLoader(data.pool.images, batch_size=2, num_workers=1)
    with pytest.raises(Exception) as caught:
        list(loader)
    assert "Original Traceback" in str(caught.value)  # what the DataLoader makes of it
    assert error_text(caught.value) == f"ImageDecodeError: {broken}: not a readable image (UnidentifiedImageError: " \
                                       f"cannot identify image file '{broken}')"
    assert error_text(ValueError("plain")) == "ValueError: plain"


def test_a_trial_on_the_parts_a_sweep_extracted_trains_as_on_the_whole_pool(files, tmp_path):
    """The driver extracts only the drawn rows, in parts: the trial reads the same features."""
    from trainables.cache.embeddings import extract_if_missing
    from trainables.cache.parts import MissingRowsError

    spec = StudySpec(grid="t", dataset="digits", backbones=("test_resnet",), mode="linear", subset="M", n_train=100,
                     fold=1, max_epochs=3, batch_size=32)
    whole = list(trial_epochs(make_run(make_context(spec, str(tmp_path / "a"),
                                                    embedding_files={"test_resnet": files["test_resnet"]}))))
    train, val = study_split(make_context(spec, str(tmp_path / "b")))
    cache = str(tmp_path / "cache")
    first, _ = extract_if_missing("digits", None, "test_resnet", None, cache, rows=train[:30], progress=False)
    parts, _ = extract_if_missing("digits", None, "test_resnet", None, cache, rows=np.concatenate([train, val]),
                                  progress=False)
    assert len(parts) == 2
    parted = list(trial_epochs(make_run(make_context(spec, str(tmp_path / "c"),
                                                     embedding_files={"test_resnet": [parts]}))))
    assert [round(r["val_loss"], 5) for r in parted] == [round(r["val_loss"], 5) for r in whole]
    assert parted[-1]["test_score"] == pytest.approx(whole[-1]["test_score"], abs=1e-6)

    # A cache that lacks the study's rows is named before the first epoch.
    lacking = make_run(make_context(spec, str(tmp_path / "d"), embedding_files={"test_resnet": [first]}))
    with pytest.raises(MissingRowsError, match=r"test_resnet \(view 0\) holds no features of 70 row\(s\)"):
        next(trial_epochs(lacking))


def test_a_fewshot_trial_averages_its_episodes_and_leaves_their_bootstrap(files, store_root):
    """One record: the mean of the episodes' scores, their std, and beside the row the mean of
    the episodes' resample scores; more shots per class score higher."""
    from trainables.training.bootstrap import BootstrapResamples
    from trainables.training.probes import probe_data, simpleshot_probabilities
    from trainables.data.splits import episode_support
    from trainables.training.metrics import score

    def run(shots):
        spec = StudySpec(grid="t", dataset="digits", backbones=("test_vit",), mode="fewshot", subset=f"{shots}-shot",
                         n_train=100, fold=1, n_trials=1, max_epochs=1, grace_period=1, shots=shots, episodes=6)
        return make_run(make_context(spec, store_root, embedding_files={"test_vit": files["test_vit"]}), lr=0.0)

    (record,) = trial_epochs(run(2))
    data = probe_data(run(2))
    episodes = []
    for e in range(6):
        support = episode_support(data.train_y, 2, 0, 1, e)
        probs = simpleshot_probabilities(torch.as_tensor(data.train_x[support]), torch.as_tensor(data.train_y[support]),
                                         torch.as_tensor(data.test_x), 10).numpy().astype(np.float64)
        episodes.append((score("auc", data.test_y, probs), BootstrapResamples(data.test_y).scores("auc", probs)))
    assert record["test_score"] == pytest.approx(np.mean([s for s, _ in episodes]))
    assert record["test_score_std"] == pytest.approx(np.std([s for s, _ in episodes], ddof=1))
    assert record["test_score_std"] > 0 and record["epoch"] == 1
    saved = np.load(run(2).files.bootstrap)
    np.testing.assert_allclose(saved, np.mean([b for _, b in episodes], axis=0))
    (more,) = trial_epochs(run(16))
    assert more["test_score"] > record["test_score"]


def test_every_frozen_trial_leaves_the_bootstrap_of_its_selected_epoch(files, store_root):
    from trainables.training.bootstrap import BootstrapResamples

    run = _run(files, "linear", ("test_resnet",), store_root)
    records = list(trial_epochs(run))
    saved = np.load(run.files.bootstrap)
    assert saved.shape == (1000,)
    # Around the selected epoch's test score, spread by the resampling.
    assert np.percentile(saved, 2.5) < records[-1]["test_score"] < np.percentile(saved, 97.5)
    assert saved.std() > 0


def test_a_trial_ended_at_a_report_leaves_the_bootstrap_of_its_selected_epoch(files, store_root):
    """ASHA ends a trial by not asking for its next epoch (the generator is closed): the epoch
    selected so far is final, and its predictions and resample scores are written then."""
    from trainables.training.bootstrap import BootstrapResamples
    from trainables.training.metrics import score
    from trainables.training.outputs import load_predictions

    run = _run(files, "linear", ("test_resnet",), store_root)
    epochs = trial_epochs(run)
    records = [next(epochs), next(epochs)]
    assert not os.path.exists(run.files.bootstrap)  # nothing but predictions while it runs
    epochs.close()
    probs, labels = load_predictions(run.files.predictions)
    assert score("auc", labels, probs) == pytest.approx(records[-1]["test_score"], abs=1e-6)
    np.testing.assert_allclose(np.load(run.files.bootstrap), BootstrapResamples(labels).scores("auc", probs))


@pytest.mark.parametrize("dataset", ["nih", "patchcam", "digits"])
def test_images_transformed_a_batch_at_a_time_have_the_values_of_one_at_a_time(dataset):
    """Evaluation's transform (no draws) runs on a whole batch (``__getitems__``), value for
    value what it gives image by image; a training transform that draws stays per image, in
    the sampler's order, so its random draws are those it had before."""
    from trainables.data.datasets import get_dataset_info
    from trainables.data.transforms import build_transform
    from trainables.models.backbones import get_backbone_info
    from trainables.training.trainable import ImageDataset

    info = get_dataset_info(dataset)
    side = 300 if info.resize_to else info.image_size // 2
    images = torch.randint(0, 256, (6, 1, side, side + 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = np.arange(6) % 2
    evaluation = ImageDataset(images, labels, build_transform(info, get_backbone_info("random"), train=False))
    assert evaluation.batched
    rows = [4, 0, 3]
    batch = evaluation.__getitems__(rows)
    for (image, label), row in zip(batch, rows):
        alone, alone_label = evaluation[row]
        assert torch.equal(image, alone) and label == alone_label
    train = ImageDataset(images, labels, build_transform(info, get_backbone_info("random"), train=True))
    assert train.batched == (info.augment == "none")
    torch.manual_seed(5)
    batch = train.__getitems__(rows)
    torch.manual_seed(5)
    for (image, _), row in zip(batch, rows):
        assert torch.equal(image, train[row][0])


@pytest.mark.parametrize("stop_at", [None, 4])
def test_run_trial_reports_at_ashas_rungs_and_its_last_epoch_carrying_every_epoch(files, store_root, monkeypatch,
                                                                                  stop_at):
    """Through run_trial, with Tune's report, trial id and Ray's placement stood in: a linear
    trial of 12 epochs (grace 2, factor 2) reports at epochs 2, 4, 8 and 12, and those reports
    carry epochs 1 to 12, each once, in order. Stopped by ASHA at a rung (SystemExit inside
    report, as Tune does it), it has reported every epoch up to there."""
    from types import SimpleNamespace

    import ray
    from ray import tune

    from trainables.context import trial_config
    from trainables.training.reports import records_of
    from trainables.training.trainable import run_trial

    reports = []

    def report(result):
        reports.append(result)
        if stop_at is not None and result["epoch"] == stop_at:
            raise SystemExit(0)

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_context", lambda: SimpleNamespace(get_trial_id=lambda: "t_00001"))
    monkeypatch.setattr(ray, "get_runtime_context", lambda: SimpleNamespace(
        get_node_id=lambda: "node", get_accelerator_ids=lambda: {"GPU": []}))
    spec = StudySpec(grid="t", dataset="digits", backbones=("test_resnet",), mode="linear", subset="M", n_train=100,
                     fold=1, max_epochs=12, grace_period=2, reduction_factor=2, batch_size=32)
    config = trial_config(make_context(spec, store_root, embedding_files={"test_resnet": files["test_resnet"]}),
                          3e-3, None)
    for name in ("CUDA_VISIBLE_DEVICES", "TUNE_FUNCTION_THREAD_TIMEOUT_S"):  # run_trial sets them: restored after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    try:
        run_trial(config)
    except SystemExit:
        pass
    finally:
        import gc

        gc.unfreeze()  # run_trial froze this test process's objects, as it does an actor's
    assert [r["epoch"] for r in reports] == ([2, 4, 8, 12] if stop_at is None else [2, 4])
    epochs = [record for r in reports for record in records_of(r)]
    assert [e["epoch"] for e in epochs] == list(range(1, (stop_at or 12) + 1))
    assert all(e["node_id"] == "node" and e["train_loss"] > 0 for e in epochs)
    # Only the last epoch's report ends the trial itself (Tune's "done"); one that ASHA stops
    # at a rung never says so.
    fields = {"epoch", "val_score", "best_val_score", "detail"}
    assert all(set(r) == fields for r in reports[:-1])
    assert set(reports[-1]) == (fields if stop_at is not None else fields | {"done"})
    assert reports[-1].get("done", False) is (stop_at is None)
