"""The probes grid: the paper's linear probe beside logistic regression, kNN and few-shot, study
for study."""

from collections import Counter

from search_spaces import paper, probes
from sweep.grids import load_grid


def test_the_grid_is_its_docstrings_arithmetic_and_its_linear_studies_the_papers():
    studies = load_grid("probes")
    assert len(studies) == 1400 and sum(s.n_trials for s in studies) == 7700
    assert Counter(s.mode for s in studies) == {"linear": 300, "logistic": 300, "knn": 300, "fewshot": 500}
    assert "Total: 1,400 studies, 7,700 trials." in probes.__doc__
    ours = {s.replace(grid="paper").study_id for s in studies if s.mode == "linear"}
    theirs = {s.study_id for s in load_grid("paper") if s.mode == "linear" and s.subset in ("S", "M", "F")}
    assert ours == theirs  # the same studies: the same caches, the same cells beside the paper's


def test_every_probe_cell_has_every_backbone_size_and_fold():
    studies = load_grid("probes")
    cells = Counter((s.mode, s.dataset, s.subset, s.backbones) for s in studies)
    assert set(cells.values()) == {5} and len(cells) == (3 * 4 * 3 + 4 * 5) * len(paper.BACKBONES)
    assert all(s.views == 1 for s in studies if s.mode != "linear")


def test_few_shot_draws_its_episodes_from_the_linear_f_studies_rows():
    """1 to 16 shots, 100 episodes a fold, on the split of a linear F study (same subset size,
    folds and seed): the fold manifests are shared and the cache holds the rows already."""
    studies = load_grid("probes")
    fewshot = [s for s in studies if s.mode == "fewshot"]
    assert {s.shots for s in fewshot} == {1, 2, 4, 8, 16} and {s.episodes for s in fewshot} == {100}
    assert {s.n_trials for s in fewshot} == {1} and {s.subset for s in fewshot} == {f"{k}-shot" for k in (1, 2, 4, 8, 16)}
    split = lambda s: (s.dataset, s.n_train, s.n_folds, s.fold, s.seed)  # noqa: E731
    assert {split(s) for s in fewshot} == {split(s) for s in studies if s.mode == "linear" and s.subset == "F"}
