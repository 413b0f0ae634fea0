"""The probes grid: the paper's linear probe beside logistic regression and kNN, study for study."""

from collections import Counter

from search_spaces import paper, probes
from sweep.grids import load_grid


def test_the_grid_is_its_docstrings_arithmetic_and_its_linear_studies_the_papers():
    studies = load_grid("probes")
    assert len(studies) == 900 and sum(s.n_trials for s in studies) == 7200
    assert Counter(s.mode for s in studies) == {"linear": 300, "logistic": 300, "knn": 300}
    assert "Total: 900 studies, 7,200 trials." in probes.__doc__
    ours = {s.replace(grid="paper").study_id for s in studies if s.mode == "linear"}
    theirs = {s.study_id for s in load_grid("paper") if s.mode == "linear" and s.subset in ("S", "M", "F")}
    assert ours == theirs  # the same studies: the same caches, the same cells beside the paper's


def test_every_probe_cell_has_every_backbone_size_and_fold():
    studies = load_grid("probes")
    cells = Counter((s.mode, s.dataset, s.subset, s.backbones) for s in studies)
    assert set(cells.values()) == {5} and len(cells) == 3 * 4 * 3 * len(paper.BACKBONES)
    assert all(s.views == 1 for s in studies if s.mode != "linear")
