"""The foundation grid asks the paper's question of today's models, by modality."""

from collections import Counter

from search_spaces import foundation
from sweep.grids import load_grid
from trainables.models.backbones import get_backbone_info
from trainables.models.foundation.sizes import model_size

PATHOLOGY_ONLY = {"uni", "uni2-h", "virchow", "virchow2", "h-optimus-0", "h-optimus-1", "prov-gigapath", "phikon",
                  "phikon-v2", "hibou-b"}


def test_the_grid_is_its_docstrings_arithmetic():
    studies = load_grid("foundation")
    assert len(studies) == 915 and sum(s.n_trials for s in studies) == 6000
    assert Counter(s.mode for s in studies) == {"linear": 465, "dvme": 120, "finetune": 330}
    assert "Total: 915 studies, 6,000 trials." in foundation.__doc__


def test_each_dataset_gets_the_models_of_its_modality_and_the_papers_best():
    studies = load_grid("foundation")
    linear = {d: {s.backbones[0] for s in studies if s.dataset == d and s.mode == "linear"} for d in foundation.MODELS}
    assert linear["patchcam"] == PATHOLOGY_ONLY | {"dino"}
    for dataset in ("aptos", "pneumonia", "nih"):
        assert not linear[dataset] & PATHOLOGY_ONLY and "dino" in linear[dataset] and "biomedclip" in linear[dataset]
    assert "rad-dino" in linear["pneumonia"] and "rad-dino" in linear["nih"] and "rad-dino" not in linear["aptos"]
    assert all(get_backbone_info(b).foundation or b == "dino" for b in set().union(*linear.values()))


def test_only_models_that_fit_a_gpu_are_finetuned_and_every_cell_has_five_folds():
    studies = load_grid("foundation")
    tuned = {s.backbones[0] for s in studies if s.mode == "finetune"}
    assert "dino" in tuned and "uni" in tuned and not {"uni2-h", "virchow2", "h-optimus-0", "dinov2-g"} & tuned
    assert all(model_size(b)[0] <= foundation.FINETUNE_MAX_PARAMS for b in tuned - {"dino"})
    folds = Counter((s.dataset, s.mode, s.backbones, s.subset, s.attention) for s in studies)
    assert set(folds.values()) == {5} and {s.subset for s in studies} == {"S", "M", "F"}
