import json
import os

import numpy as np
import pytest

from sweep.driver.manifests import manifest_digest, study_manifest, write_manifests
from sweep.spec import StudySpec
from tests import layouts
from tests.contexts import bare_context
from trainables.data.datasets import load_dataset
from trainables.data.splits import balanced_subset, fold_split
from trainables.training.trainable import study_split


def _spec(**kw):
    base = dict(grid="g", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S", n_train=50, fold=0)
    return StudySpec(**{**base, **kw})


def test_manifest_is_the_split_a_trial_computes():
    data = load_dataset("digits")
    spec = _spec(fold=3)
    manifest = study_manifest(spec, data)
    subset = balanced_subset(data.pool.labels, spec.n_train, spec.seed)
    train, val = fold_split(data.pool.labels, subset, spec.n_folds, spec.fold, spec.seed)
    assert manifest["train_rows"] == train.tolist() and manifest["val_rows"] == val.tolist()
    assert manifest["val_ids"] == [data.pool.ids[i] for i in val]
    assert len(manifest["train_ids"]) == 40 and not set(manifest["train_ids"]) & set(manifest["val_ids"])


def test_one_file_per_distinct_split_and_trials_read_it(tmp_path):
    data = {"digits": load_dataset("digits")}
    studies = [_spec(), _spec(mode="finetune"), _spec(backbones=("test_vit",)), _spec(fold=1)]
    written = write_manifests(str(tmp_path), studies, data)
    assert len({w.digest for w in written.values()}) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(f"{d}.json" for d in {w.digest for w in written.values()})
    digest, path, train_rows, val_rows = written[studies[0].study_id]
    with open(path) as f:
        assert manifest_digest(json.load(f)) == digest
    train, val = study_split(bare_context(studies[0], manifest_file=path, manifest_digest=digest))
    assert len(train) == 40 and len(val) == 10
    assert (train.tolist(), val.tolist()) == (list(train_rows), list(val_rows))


def test_grouped_manifests_keep_patients_apart(tmp_path):
    layouts.pneumonia(str(tmp_path))
    data = load_dataset("pneumonia", str(tmp_path))
    from trainables.data.readers import patient_of

    for fold in range(2):
        m = study_manifest(_spec(dataset="pneumonia", n_train=9, n_folds=2, fold=fold), data)
        train_p = {patient_of(i) for i in m["train_ids"]}
        val_p = {patient_of(i) for i in m["val_ids"]}
        assert not train_p & val_p and len(m["train_ids"]) + len(m["val_ids"]) == 9


def test_subsets_of_one_seed_are_nested_across_sizes():
    data = load_dataset("digits")
    ids = lambda n: set(sum((study_manifest(_spec(n_train=n, fold=0), data)[k] for k in ("train_ids", "val_ids")), []))
    assert ids(50) < ids(250) < ids(1257)
    assert np.bincount(data.pool.labels[[data.pool.ids.index(i) for i in ids(50)]]).tolist() == [5] * 10


def test_a_fold_the_smallest_class_cannot_fill_is_refused_before_ray_starts(tmp_path):
    from tests import layouts
    from sweep.driver.runner import run_sweep
    from tests.contexts import run_options
    from sweep.spec import StudySpec
    from trainables.data.splits import SplitError

    root = tmp_path / "data"
    for i in range(8):
        layouts.image(str(root / "train" / "common" / f"c{i}.png"))
    for i in range(2):
        layouts.image(str(root / "train" / "rare" / f"r{i}.png"))
    for cls in ("common", "rare"):
        layouts.image(str(root / "test" / cls / "t.png"))
    studies = [StudySpec(grid="g", dataset="folder", backbones=("test_resnet",), mode="linear", subset="10",
                         n_train=10, fold=f, n_folds=5) for f in range(5)]
    with pytest.raises(SplitError, match=r"holds only class common .* cannot fill 5 folds: use fewer folds"):
        run_sweep(studies, run_options(results=str(tmp_path / "r"), data_roots={"folder": str(root)}, verbose=0))
    # Refused before anything ran: no embedding extracted, no Tune experiment.
    assert not (tmp_path / "r" / "cache").exists() and not (tmp_path / "r" / "ray").exists()
