"""The paper's whole grid: Truong, Mohammadi, Lenga, arXiv 2108.10048 (docs/protocol.md:
the protocol as medsweep runs it, and each choice the paper leaves open).

Run it on a GPU cluster, with the four datasets and the published weight files::

    sweep run --grid paper --address auto \\
        --data patchcam=/data/pcam --data aptos=/data/aptos \\
        --data pneumonia=/data/chest_xray --data nih=/data/nih \\
        --weights supervised=resnet50-0676ba61.pth --weights swav=... --weights simclr=... \\
        --weights dino=dino_deitsmall8_pretrain.pth

Sizes: every size of the detail tables B1-B8 and C1-C4 (S, M and F among them):
  patchcam 10 (50 .. 20,000 and F = 50,000), aptos 5, pneumonia 5, nih 6 = 26 (dataset, size).
Per (dataset, size), 5 folds each:
  linear   5 backbones x 8 trials  = 40 trials   (Table 2, B1-B4)
  finetune 5 backbones x 4 trials  = 20 trials   (Table 3, B5-B8; LR search is light there,
                                                  as in the paper: "no extensive tuning")
  dvme     simclr+swav+dino, with and without attention, x 8 trials = 16 trials (Table 4, C1-C4)
Studies: 26 x 5 folds x (5 + 5 + 2) = 1,560.  Trials: 26 x 5 x (40 + 20 + 16) = 9,880.

Hyper-parameters the paper states: Adam, LR 1e-4..1e-3 (DINO finetuning 1e-5..5e-4, batch 16;
finetuning batch 64), ReduceLROnPlateau patience 5, augmentation in every experiment (frozen
heads: 4 cached augmented views), DVME as its Listing 1 (1,536 width-1 tokens), F = the whole
pool (counted in the data). Not stated, chosen here: epochs (linear and DVME 100, finetune 30),
ASHA grace 5 epochs (one plateau patience) with reduction factor 3, linear/DVME batch 256, the
number of trials above, GPU fractions (heads on cached embeddings 0.1-0.2 of a GPU; a ResNet-50
finetune at batch 64 half a GPU; ViT-S/8 a whole one). Variants beyond the paper (the 3-token
DVME, frozen heads without augmentation) are the grid paper_plus.

Expected: the paper's own numbers, sweep/data/paper_results.csv (e.g. pneumonia linear F:
DINO 0.9868 ± 0.0008 AUC, supervised 0.9397 ± 0.0033).
"""

from itertools import product

from sweep.spec import StudySpec

GRID = "paper"
FOLDS = 5
# None: every usable image of the pool, counted in the data when the sweep starts (the
# paper's F for aptos 3,662, pneumonia 5,216, nih 2,414; the published NIH validation file has
# 2,412 rows, and F is what the protocol's exclusions leave of them).
# PatchCam's F is a random 50,000 of the 220,025 Kaggle training images.
POOL = None
SML = {
    "patchcam": {"S": 500, "M": 5000, "F": 50000},
    "aptos": {"S": 50, "M": 500, "F": POOL},
    "pneumonia": {"S": 50, "M": 500, "F": POOL},
    "nih": {"S": 20, "M": 200, "F": POOL},
}
DETAIL_SIZES = {
    "patchcam": (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000),
    "aptos": (50, 100, 200, 500, POOL),
    "pneumonia": (50, 100, 200, 500, POOL),
    "nih": (20, 50, 100, 150, 200, POOL),
}
BACKBONES = ("random", "supervised", "swav", "simclr", "dino")
DVME_BACKBONES = ("simclr", "swav", "dino")

# Frozen heads train on augmented images, as the paper's did ("all experiments"): VIEWS
# augmented views of every training image are cached, and epoch e trains on view e mod VIEWS.
# 4: PatchCam's augmentation is a horizontal and a vertical flip, and its view k is flip
# combination k of every image (identity, horizontal, vertical, both: all of it); for the
# others, 4 seeded random crops and rotations give a linear head most of the variation it can use,
# while the extraction stays at 5 passes over the pool (the evaluation view + 4) instead of 1.
VIEWS = 4
LINEAR = dict(lr_min=1e-4, lr_max=1e-3, n_trials=8, max_epochs=100, batch_size=256, cpus=1.0, gpus=0.1,
              views=VIEWS)
# The paper's DVME is its Listing 1: the 1,536-d meta-embedding as 1,536 tokens of width 1,
# through timm's Attention with its own default, no query/key/value bias (the listing takes the
# module from outside; its footnote points to timm's). Its ablation (attention=False) is the
# text's model: the three 512-d projections concatenated, straight into the linear classifier.
DVME = dict(LINEAR, gpus=0.2, proj_dim=512, attention_form="listing", qkv_bias=False, no_attention_head="linear")
FINETUNE = {
    "resnet50": dict(lr_min=1e-4, lr_max=1e-3, n_trials=4, max_epochs=30, batch_size=64, cpus=4.0, gpus=0.5),
    "dino": dict(lr_min=1e-5, lr_max=5e-4, n_trials=4, max_epochs=30, batch_size=16, cpus=4.0, gpus=1.0),
}


def _label(dataset: str, n: int) -> str:
    """The tables' subset label: S, M or F where the size is one of them, else the size."""
    return next((k for k, v in SML[dataset].items() if v == n), str(n))


def _study(dataset, n, fold, mode, backbones, settings) -> StudySpec:
    return StudySpec(
        grid=GRID, dataset=dataset, backbones=backbones, mode=mode, subset=_label(dataset, n),
        n_train=n, fold=fold, n_folds=FOLDS, grace_period=5, reduction_factor=3, **settings,
    )


_SIZES = [(d, n) for d, sizes in DETAIL_SIZES.items() for n in sizes]

STUDIES = (
    [
        _study(d, n, fold, "linear", (b,), LINEAR)
        for (d, n), b, fold in product(_SIZES, BACKBONES, range(FOLDS))
    ]
    + [
        _study(d, n, fold, "finetune", (b,), FINETUNE["dino" if b == "dino" else "resnet50"])
        for (d, n), b, fold in product(_SIZES, BACKBONES, range(FOLDS))
    ]
    + [
        _study(d, n, fold, "dvme", DVME_BACKBONES, dict(DVME, attention=attention))
        for (d, n), attention, fold in product(_SIZES, (True, False), range(FOLDS))
    ]
)
