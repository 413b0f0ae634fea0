"""A grid's StudySpec fields, drawn at random (every field of every type a grid file could give
it: numbers, NaN and infinities, text, None, booleans, tuples, lists): a study is built and
checked, or refused with a SpecError naming the field, never another exception; a study that is
built has its ids and is planned."""

import dataclasses

from hypothesis import strategies as st

from sweep.plan.planning import check_studies, summarize
from sweep.spec import StudySpec
from tests.properties import INPUTS, TEXT, tried

ANY = st.one_of(st.integers(-3, 600), st.floats(allow_nan=True, allow_infinity=True), TEXT, st.none(), st.booleans(),
                st.tuples(TEXT), st.lists(st.integers(0, 3), max_size=2))
# A study as a grid writes it (valid values of each field), then up to two fields replaced by
# a value a grid gets wrong (an unknown name, a size larger than the pool, a GPU share of 1.5)
# or by a value of any type at all.
VALID = {
    "grid": st.just("g"), "dataset": st.sampled_from(["digits", "nih"]), "subset": st.sampled_from(["S", "M", "F"]),
    "n_train": st.sampled_from([50, 250, None]), "fold": st.integers(0, 4), "n_trials": st.integers(1, 8),
    "lr_min": st.sampled_from([1e-4, 1e-5]), "lr_max": st.sampled_from([1e-3, 1e-2]), "max_epochs": st.integers(2, 40),
    "grace_period": st.just(1), "cpus": st.sampled_from([0.5, 1, 2.0]), "gpus": st.sampled_from([0.0, 0.1, 1, 2]),
    "embedding_dtype": st.sampled_from(["float32", "float16"]), "attention_form": st.sampled_from(["token", "listing"]),
    "proj_dim": st.sampled_from([512, 32]), "attention": st.booleans(), "views": st.just(1),
}
WRONG = {
    "grid": [""], "dataset": ["cifar", "aptoss", ""], "backbones": [("dinoo",), (), "test_resnet", ["test_resnet"]],
    "mode": ["liner", "probe"], "n_train": [4, 5000, 0, -1], "fold": [-1, 5], "n_folds": [1, 0], "n_trials": [0],
    "lr_min": [0.0, -1.0, 1e-2], "lr_max": [1e-5], "grace_period": [0, 400], "reduction_factor": [1],
    "cpus": [0, -1.0], "gpus": [1.5, -0.1], "views": [0, 4], "embedding_dtype": ["int8"], "attention_form": ["graph"],
}
NAMES = [f.name for f in dataclasses.fields(StudySpec)]
KINDS = [("linear", ("test_resnet",)), ("finetune", ("test_vit",)), ("dvme", ("test_resnet", "test_vit"))]


def _fields():
    base = st.tuples(st.fixed_dictionaries(VALID), st.sampled_from(KINDS)).map(
        lambda p: {**p[0], "mode": p[1][0], "backbones": p[1][1]})
    wrong = st.sampled_from(NAMES).flatmap(
        lambda n: st.tuples(st.just(n), st.one_of(st.sampled_from(WRONG[n]), ANY) if n in WRONG else ANY))
    changes = st.one_of(st.just([]), st.lists(wrong, min_size=1, max_size=2))
    return st.tuples(base, changes).map(lambda p: {**p[0], **dict(p[1])})


def test_study_fields_of_a_grid():
    def check(fields):
        study = StudySpec(**fields)
        assert study.study_id and study.cell_id
        check_studies([study])
        summarize("g", [study])

    assert tried(_fields(), check) >= INPUTS
