import re

import pytest

from sweep.spec import SpecError, StudySpec

BASE = dict(grid="g", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S", n_train=50, fold=0)


def test_study_and_cell_ids():
    a = StudySpec(**BASE)
    b = a.replace(fold=1)
    c = a.replace(lr_max=2e-3)
    assert a.study_id != b.study_id and a.cell_id == b.cell_id
    assert a.cell_id != c.cell_id  # any setting other than the fold makes another cell
    assert a.study_id.startswith("digits-linear-test_resnet-n50-f0-")


def test_cached_ids_and_a_shared_context_survive_what_tune_does_to_a_config():
    """Tune deep-copies and pickles each trial's config: the context comes back the same
    value (deepcopy shares it: frozen, nothing mutates it), with the same ids."""
    import copy
    import pickle

    from tests.contexts import bare_context
    from trainables.context import trial_config

    spec = StudySpec(**BASE)
    config = trial_config(bare_context(spec), 1e-3, None)
    study_id = spec.study_id  # cached on the instance from here on
    copied, unpickled = copy.deepcopy(config), pickle.loads(pickle.dumps(config))
    assert copied["context"] is config["context"] and copied == config
    assert unpickled["context"] == config["context"] and unpickled["context"].study.study_id == study_id
    assert spec.replace(fold=1).study_id != study_id  # a changed copy digests its own fields


def test_a_study_travels_in_its_trial_context_and_back_into_its_row():
    import dataclasses

    from sweep.driver.recorder import SPEC_FIELDS, trial_row
    from tests.contexts import bare_context
    from trainables.context import trial_config

    spec = StudySpec(**{**BASE, "mode": "dvme", "backbones": ("a", "b")})
    facts = {"metrics": {"digits": "auc"}, "fingerprints": {}, "weights_digests": {"a": "x", "b": "y"}, "versions": {}}
    row = trial_row(trial_config(bare_context(spec), 1e-3, None), {"epoch": 1}, "t", "ok", None, facts)
    fields = {name: row[name] for name in SPEC_FIELDS}
    assert StudySpec(**{**fields, "backbones": tuple(fields["backbones"])}) == spec
    assert row["backbone"] == "a+b" and row["backbones"] == ["a", "b"] and row["study_id"] == spec.study_id
    assert set(SPEC_FIELDS) == {f.name for f in dataclasses.fields(StudySpec)}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"mode": "probe"}, "unknown mode 'probe'; valid modes: dvme, fewshot, finetune, knn, linear, logistic"),
        ({"mode": "dvme"}, "mode 'dvme' takes at least 2 backbones"),
        ({"backbones": ("a", "b")}, "mode 'linear' takes exactly 1 backbone"),
        ({"backbones": "test_resnet"}, "backbones must be a tuple"),
        ({"fold": 5}, "fold 5 outside 0..4"),
        ({"n_train": 3}, "n_train 3 is smaller than n_folds 5"),
        ({"lr_min": 1e-2, "lr_max": 1e-3}, "learning-rate range"),
        ({"grace_period": 50, "max_epochs": 10}, "grace_period 50 outside 1..max_epochs 10"),
        ({"attention_form": "graph"}, "unknown attention_form 'graph'"),
        ({"gpus": -1.0}, "gpus=-1.0: a trial's GPUs must be a fraction from 0 to 1"),
        ({"gpus": 1.5}, "gpus=1.5: a trial's GPUs must be a fraction from 0 to 1 (0: CPU only) or a whole number"),
        ({"cpus": float("nan")}, "cpus must be a finite number, got nan"),
        # Types: each was a TypeError in a comparison, or later in a trial.
        ({"n_trials": "5"}, "n_trials must be a whole number, got '5' (str)"),
        ({"fold": True}, "fold must be a whole number, got True"),
        ({"lr_max": None}, "lr_max must be a number, got None (NoneType)"),
        ({"backbones": ("test_resnet", 3)}, "backbones must be a tuple of names, got ('test_resnet', 3)"),
        ({"backbones": ["test_resnet"]}, "backbones must be a tuple of names, got ['test_resnet'] (list)"),
        ({"n_train": 50.0}, "n_train must be a whole number or None (the whole pool), got 50.0 (float)"),
        ({"dataset": ""}, "dataset must not be empty"),
    ],
)
def test_invalid_studies_are_named_errors(change, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        StudySpec(**{**BASE, **change})


def test_views_and_embedding_dtype_are_checked_and_change_the_study_id():
    from sweep.grids import with_embedding_options

    base = StudySpec(grid="g", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S", n_train=50, fold=0)
    assert base.replace(views=3).study_id != base.study_id != base.replace(embedding_dtype="float16").study_id
    with pytest.raises(SpecError, match="views must be at least 1"):
        base.replace(views=0)
    with pytest.raises(SpecError, match="'float8'.*float32, float16"):
        base.replace(embedding_dtype="float8")
    finetune = base.replace(mode="finetune")
    with pytest.raises(SpecError, match="frozen modes.*'finetune' augments its images on the fly"):
        finetune.replace(views=2)
    out = with_embedding_options([base, finetune], views=4, dtype="float16")
    assert (out[0].views, out[0].embedding_dtype) == (4, "float16") and out[1] == finetune


def test_augmented_views_of_a_dataset_without_augmentation_are_refused_before_anything_runs():
    from sweep.plan.planning import check_studies

    study = StudySpec(grid="g", dataset="digits", backbones=("test_resnet",), mode="linear", subset="S",
                      n_train=50, fold=0, views=2)
    with pytest.raises(SpecError, match="digits has no training augmentation"):
        check_studies([study])
