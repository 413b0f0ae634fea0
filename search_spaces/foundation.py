"""The paper's question asked of today's medical foundation models, by name: which frozen or
finetuned backbone, and which fusion of several, is best for a small labelled set?

The paper's protocol (docs/protocol.md) on its four datasets: S, M and F subsets, 5 folds,
Optuna LR search with ASHA, linear probes and DVME on cached embeddings (4 augmented views),
finetuning where the model fits one GPU. Each dataset gets the models made for its modality,
and the paper's best single backbone (DINO ViT-S/8) as the reference:

  patchcam  pathology: uni, uni2-h, virchow, virchow2, h-optimus-0, h-optimus-1,
            prov-gigapath, phikon, phikon-v2, hibou-b                        + dino = 11
  aptos     general and CLIP: dinov2-s/b/l/g, biomedclip                     + dino =  6
  pneumonia radiology, general and CLIP: rad-dino, biomedclip, dinov2-s/b/l/g + dino = 7
  nih       the same as pneumonia                                                   =  7
CONCH is left out: its loader, Mahmood Lab's `conch` package, is on no package index.

Run it on a GPU cluster (most of these repos are gated: accept each model's terms on its
page, then `hf auth login`, or fetch them beforehand with `hf download REPO`)::

    sweep run --grid foundation --address auto --trust-remote-code hibou-b \\
        --data patchcam=/data/pcam --data aptos=/data/aptos \\
        --data pneumonia=/data/chest_xray --data nih=/data/nih \\
        --weights dino=dino_deitsmall8_pretrain.pth

    sweep plan --grid foundation --estimate      # device-hours, from each model's FLOPs

Studies, per dataset x 3 sizes (S, M, F) x 5 folds = 15:
  linear    11 + 6 + 7 + 7 = 31 models                       x 15 = 465 studies x 8 trials = 3,720
  dvme      4 datasets x (attention, its ablation)           x 15 = 120 studies x 8 trials =   960
  finetune  the models of at most 350M parameters (ViT-L and smaller: uni, phikon,
            phikon-v2, hibou-b, dino on patchcam; dinov2-s/b/l, biomedclip, dino on aptos;
            with rad-dino on each X-ray set): 5 + 5 + 6 + 6 = 22 x 15 = 330 studies x 4 trials = 1,320
Total: 915 studies, 6,000 trials.

DVME fuses each dataset's three strongest frozen candidates by their own papers' reports:
uni2-h, virchow2 and h-optimus-1 on PatchCam; rad-dino, biomedclip and dinov2-l on the X-rays;
dinov2-l, biomedclip and dino on APTOS (a model-selection choice of this grid, not a result).

Hyper-parameters: the paper grid's (search_spaces/paper.py): linear and DVME LR 1e-4..1e-3,
100 epochs, batch 256, 4 views; finetuning as the paper finetunes its ViT (LR 1e-5..5e-4,
batch 16, 30 epochs, one GPU). Expected: no published numbers to compare with; the report
shows each cell beside the reference backbone's.
"""

from itertools import product

from search_spaces.paper import DVME, FOLDS, LINEAR, SML
from sweep.spec import StudySpec
from trainables.models.foundation.sizes import model_size

GRID = "foundation"
REFERENCE = "dino"  # the paper's best single backbone
PATHOLOGY = ("uni", "uni2-h", "virchow", "virchow2", "h-optimus-0", "h-optimus-1", "prov-gigapath", "phikon",
             "phikon-v2", "hibou-b")
GENERAL = ("dinov2-s", "dinov2-b", "dinov2-l", "dinov2-g")
XRAY = ("rad-dino", "biomedclip") + GENERAL
MODELS = {
    "patchcam": PATHOLOGY + (REFERENCE,),
    "aptos": GENERAL + ("biomedclip", REFERENCE),
    "pneumonia": XRAY + (REFERENCE,),
    "nih": XRAY + (REFERENCE,),
}
FUSED = {
    "patchcam": ("uni2-h", "virchow2", "h-optimus-1"),
    "aptos": ("dinov2-l", "biomedclip", REFERENCE),
    "pneumonia": ("rad-dino", "biomedclip", "dinov2-l"),
    "nih": ("rad-dino", "biomedclip", "dinov2-l"),
}
# Finetuning with Adam holds weights, gradients and two moments (16 bytes a parameter in
# fp32): ViT-L's 303M take about 5 GB before activations; ViT-H/g (0.6-1.1B) would need
# most of a GPU at batch 16, so they are probed frozen only.
FINETUNE_MAX_PARAMS = 350e6
FINETUNE = dict(lr_min=1e-5, lr_max=5e-4, n_trials=4, max_epochs=30, batch_size=16, cpus=4.0, gpus=1.0)


def fits_finetuning(backbone: str) -> bool:
    if backbone == REFERENCE:
        return True
    return model_size(backbone)[0] <= FINETUNE_MAX_PARAMS


def _study(dataset, size, fold, mode, backbones, settings) -> StudySpec:
    return StudySpec(grid=GRID, dataset=dataset, backbones=backbones, mode=mode, subset=size,
                     n_train=SML[dataset][size], fold=fold, n_folds=FOLDS, grace_period=5, reduction_factor=3,
                     **settings)


_CELLS = [(d, size) for d in MODELS for size in ("S", "M", "F")]

STUDIES = (
    [_study(d, size, fold, "linear", (b,), LINEAR)
     for (d, size), fold in product(_CELLS, range(FOLDS)) for b in MODELS[d]]
    + [_study(d, size, fold, "dvme", FUSED[d], dict(DVME, attention=attention))
       for (d, size), attention, fold in product(_CELLS, (True, False), range(FOLDS))]
    + [_study(d, size, fold, "finetune", (b,), FINETUNE)
       for (d, size), fold in product(_CELLS, range(FOLDS)) for b in MODELS[d] if fits_finetuning(b)]
)
