"""The field's probes beside the paper's, on the paper's datasets and backbones: which probe
a leaderboard used matters as much as which backbone it ranks (docs/protocol.md for the
paper's protocol; README "Modes" for each probe).

    sweep run --grid probes --address auto \\
        --data patchcam=/data/pcam --data aptos=/data/aptos \\
        --data pneumonia=/data/chest_xray --data nih=/data/nih \\
        --weights supervised=resnet50-0676ba61.pth --weights swav=... --weights simclr=... \\
        --weights dino=dino_deitsmall8_pretrain.pth

Studies: 4 datasets x the paper's S, M, F x 5 backbones x 5 folds = 300 per probe:
  linear    the paper's Adam probe (search_spaces/paper.py: LR 1e-4..1e-3, 100 epochs,
            4 augmented views)                         300 studies x 8 trials = 2,400
  logistic  L-BFGS, C over 1e-6..1e5, view 0             300 studies x 8 trials = 2,400
  knn       DINO's weighted kNN, k over 1..200, view 0   300 studies x 8 trials = 2,400
and SimpleShot few-shot (UNI's and THUNDER's protocol) at 1, 2, 4, 8 and 16 images per class,
100 episodes per fold drawn from F's training folds, view 0:
  fewshot   4 datasets x 5 shot counts x 5 backbones x 5 folds = 500 studies x 1 trial = 500
Total: 1,400 studies, 7,700 trials. The embeddings are the paper grid's (one cache serves
both: view 0 for every probe, the augmented views for the Adam probe alone; the few-shot
episodes draw from F's rows, which the linear F studies cache).

Expected: the linear cells reproduce the paper's Table 2 (sweep/data/paper_results.csv);
logistic at least matches them on F (on the demo and on a synthetic F-sized pool it scored
higher at a sixth of the time: benchmarks/probes.py); kNN trails both where classes overlap.
"""

from itertools import product

from search_spaces.paper import BACKBONES, FOLDS, LINEAR, SML
from sweep.spec import StudySpec

GRID = "probes"
PROBE = dict(n_trials=8, max_epochs=1, batch_size=256, cpus=1.0, gpus=0.1)
SETTINGS = {"linear": dict(LINEAR, grace_period=5), "logistic": dict(PROBE, grace_period=1),
            "knn": dict(PROBE, grace_period=1)}

SHOTS = (1, 2, 4, 8, 16)
FEWSHOT = dict(n_trials=1, max_epochs=1, grace_period=1, batch_size=256, cpus=1.0, gpus=0.1, episodes=100)

STUDIES = [
    StudySpec(grid=GRID, dataset=dataset, backbones=(backbone,), mode=mode, subset=size, n_train=SML[dataset][size],
              fold=fold, n_folds=FOLDS, reduction_factor=3, **SETTINGS[mode])
    for mode, dataset, size, backbone, fold in product(SETTINGS, SML, ("S", "M", "F"), BACKBONES, range(FOLDS))
] + [
    StudySpec(grid=GRID, dataset=dataset, backbones=(backbone,), mode="fewshot", subset=f"{shots}-shot",
              n_train=SML[dataset]["F"], fold=fold, n_folds=FOLDS, reduction_factor=3, shots=shots, **FEWSHOT)
    for dataset, shots, backbone, fold in product(SML, SHOTS, BACKBONES, range(FOLDS))
]
