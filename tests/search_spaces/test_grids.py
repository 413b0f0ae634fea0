import csv
import os

import pytest

from search_spaces import paper
from sweep.grids import grid_names, load_grid
from sweep.plan.planning import check_studies, summarize
from sweep.spec import SpecError

# The paper's numbers as medsweep ships them (every number its tables report).
PAPER_RESULTS = os.path.join(os.path.dirname(__file__), "..", "..", "sweep", "data", "paper_results.csv")


@pytest.mark.parametrize("name", grid_names())
def test_every_grid_loads_and_passes_planning_checks(name):
    studies = load_grid(name)
    check_studies(studies)
    summary = summarize(name, studies)
    assert summary["studies"] == len(studies)
    assert summary["trials"] == sum(s.n_trials for s in studies) > summary["studies"]
    # Every cell has all its folds.
    folds = {}
    for s in studies:
        folds.setdefault(s.cell_id, set()).add(s.fold)
    assert all(f == set(range(5)) for f in folds.values())


def test_demo_covers_every_mode_at_two_sizes_with_several_learning_rates():
    studies = load_grid("demo")
    assert {s.mode for s in studies} == {"linear", "finetune", "dvme", "logistic", "knn", "fewshot"}
    assert all(len(s.backbones) >= 2 for s in studies if s.mode == "dvme")
    assert {s.shots for s in studies if s.mode == "fewshot"} == {1, 2, 4, 8, 16}
    for mode in ("linear", "finetune", "dvme", "logistic", "knn"):
        assert len({s.n_train for s in studies if s.mode == mode}) >= 2
    # Several values searched per study, but few-shot, which searches nothing (one trial).
    assert min(s.n_trials for s in studies if s.mode != "fewshot") >= 3
    assert {s.n_trials for s in studies if s.mode == "fewshot"} == {1}
    assert {s.dataset for s in studies} == {"digits"}


def test_paper_grid_is_the_papers_whole_design():
    studies = load_grid("paper")
    assert {s.dataset for s in studies} == {"patchcam", "aptos", "pneumonia", "nih"}
    assert {b for s in studies for b in s.backbones} == {"random", "supervised", "swav", "simclr", "dino"}
    assert {s.mode for s in studies} == {"linear", "finetune", "dvme"}
    assert {s.attention for s in studies if s.mode == "dvme"} == {True, False}
    dino_ft = [s for s in studies if s.mode == "finetune" and s.backbones == ("dino",)]
    assert {(s.lr_min, s.lr_max, s.batch_size) for s in dino_ft} == {(1e-5, 5e-4, 16)}
    rn_ft = [s for s in studies if s.mode == "finetune" and s.backbones != ("dino",)]
    assert {(s.lr_min, s.lr_max, s.batch_size) for s in rn_ft} == {(1e-4, 1e-3, 64)}
    # 26 (dataset, size) pairs x 5 folds x (5 linear + 5 finetune + 2 dvme)
    assert len(studies) == 26 * 5 * 12 == 1560
    assert sum(s.n_trials for s in studies) == 26 * 5 * (5 * 8 + 5 * 4 + 2 * 8)


def test_paper_grid_has_every_cell_the_paper_reports():
    studies = load_grid("paper")
    # F of a whole-pool dataset is counted in the data (n_train None until then).
    ours = {(s.dataset, s.mode, "F" if s.n_train is None else s.n_train) for s in studies}
    with open(PAPER_RESULTS) as f:
        for row in csv.DictReader(f):
            whole_pool = {"aptos": 3662, "pneumonia": 5216, "nih": 2414}.get(row["dataset"])
            size = "F" if int(row["n_train"]) == whole_pool else int(row["n_train"])
            mode = "linear" if row["mode"] == "linear" and "dvme" not in row["method"] else row["mode"]
            if "dvme" in row["method"]:
                mode = "dvme"
            if row["method"] == "best_single":
                continue
            assert (row["dataset"], mode, size) in ours, row
    labels = {(s.dataset, s.subset) for s in studies if s.subset in "SMF"}
    assert len(labels) == 12
    assert paper.DETAIL_SIZES["nih"] == (20, 50, 100, 150, 200, None)


def test_paper_grid_settings_are_the_papers():
    studies = load_grid("paper")
    # F: the whole pool for aptos, pneumonia, nih (counted in the data); PatchCam's 50,000.
    full = {(s.dataset, s.n_train) for s in studies if s.subset == "F"}
    assert full == {("patchcam", 50000), ("aptos", None), ("pneumonia", None), ("nih", None)}
    frozen = [s for s in studies if s.mode != "finetune"]
    assert {s.views for s in frozen} == {4}  # augmented, as in all the paper's experiments
    assert {s.attention_form for s in studies if s.mode == "dvme" and s.attention} == {"listing"}
    assert {s.proj_dim for s in studies if s.mode == "dvme"} == {512}


def test_each_paper_plus_study_differs_from_a_paper_study_in_one_setting():
    import dataclasses

    paper_studies = {dataclasses.replace(s, grid="x") for s in load_grid("paper")}
    plus = load_grid("paper_plus")
    assert not {dataclasses.replace(s, grid="x") for s in plus} & paper_studies  # nothing run twice
    for s in plus:
        twins = [dataclasses.replace(s, grid="x", **{k: v for k, v in changes})
                 for changes in ((("views", 4),), (("attention_form", "listing"),), (("qkv_bias", False),),
                                 (("no_attention_head", "linear"),))]
        assert sum(t in paper_studies for t in twins) == 1, s
    assert {(s.mode, s.views, s.attention_form, s.attention, s.qkv_bias, s.no_attention_head) for s in plus} == {
        ("linear", 1, "token", True, False, "linear"), ("dvme", 4, "token", True, False, "linear"),
        ("dvme", 1, "listing", True, False, "linear"), ("dvme", 1, "listing", False, False, "linear"),
        ("dvme", 4, "listing", True, True, "linear"), ("dvme", 4, "listing", False, False, "mlp")}
    assert len(plus) == 600 and sum(s.n_trials for s in plus) == 4800  # the docstring's arithmetic


def test_the_paper_grids_dvme_is_listing_1_and_its_ablation_the_texts():
    """Listing 1's attention is timm's Attention with its own default, no qkv bias; the model
    without attention connects the concatenated projections straight to the classifier."""
    dvme = [s for s in load_grid("paper") if s.mode == "dvme"]
    assert {(s.attention_form, s.qkv_bias, s.no_attention_head) for s in dvme} == {("listing", False, "linear")}
    from trainables.models.modes import get_mode

    with_attention = next(s for s in dvme if s.attention)
    head = get_mode("dvme").head([2048, 2048, 1536], 2, with_attention)
    assert head.attn.qkv.bias is None
    ablation = get_mode("dvme").head([2048, 2048, 1536], 2, next(s for s in dvme if not s.attention))
    names = [name for name, _ in ablation.named_parameters()]
    assert all(n.startswith(("projections.", "classifier.")) for n in names)  # no norm, projection, ReLU, dropout
    assert ablation.classifier.in_features == 3 * 512


def test_unknown_grid_lists_the_valid_ones():
    with pytest.raises(SpecError, match=r"unknown grid 'papr' \(did you mean 'paper'\?\); valid grids: demo, foundation, paper, paper_plus, probes, or a grid file PATH.py"):
        load_grid("papr")


def test_planning_rejects_a_subset_larger_than_the_pool():
    (study, *_) = load_grid("demo")
    with pytest.raises(SpecError, match="n_train 5000 is larger than the digits training pool \\(1257 images\\)"):
        check_studies([study.replace(n_train=5000)])


@pytest.mark.parametrize(
    "source,message",
    [
        ("STUDIES = [", "search_spaces/{name}.py cannot be loaded: SyntaxError"),
        ("import no_such_module_here\nSTUDIES = []", "cannot be loaded: ModuleNotFoundError: No module named 'no_such_module_here'"),
        ("STUDIES = []", "search_spaces/{name}.py: STUDIES is empty; it must be a non-empty list of StudySpec"),
        ("STUDIES = [{'dataset': 'digits'}]", "STUDIES\\[0\\] is a dict .*, not a StudySpec"),
        ("from sweep.spec import StudySpec\nS = StudySpec(grid='{name}', dataset='digits', backbones=('test_resnet',), "
         "mode='linear', subset='S', n_train=50, fold=0)\nSTUDIES = [S, S]", "grid '{name}' lists the same study more than once"),
        ("from sweep.spec import StudySpec\nSTUDIES = [StudySpec(grid='other', dataset='digits', backbones=('test_resnet',), "
         "mode='linear', subset='S', n_train=50, fold=0)]", "grid '{name}': every StudySpec must carry grid='{name}'"),
        ("from sweep.spec import StudySpec\nSTUDIES = [StudySpec(grid='{name}', dataset='digits', backbones=('test_resnet',), "
         "mode='linear', subset='S', n_train=50, fold=9)]", "cannot be loaded: SpecError: .*fold 9 outside 0..4"),
    ],
)
def test_a_malformed_grid_is_a_named_error(tmp_path, monkeypatch, source, message):
    import re
    import sys

    import search_spaces

    name = f"bad_{abs(hash(source)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(source.replace("{name}", name))
    monkeypatch.setattr(search_spaces, "__path__", [*search_spaces.__path__, str(tmp_path)])
    try:
        with pytest.raises(SpecError, match=message.replace("{name}", re.escape(name))):
            load_grid(name)
    finally:
        sys.modules.pop(f"search_spaces.{name}", None)
