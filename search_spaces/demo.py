"""The demo grid: every mode of the paper, and the field's probes, on data that ships with
scikit-learn, on a CPU.

Run it (about a minute on 2 CPU cores, no GPU, no download)::

    sweep run --grid demo

Data: scikit-learn's 8x8 handwritten digits, 10 classes; a fixed stratified test set of
540 images, a training pool of 1,257 (trainables/data/datasets.py). Backbones: timm's tiny test
models with random weights (test_resnet 96-d, test_vit 64-d), since no weights can be fetched.

Studies: 2 subset sizes (S = 50, M = 250 images, class-balanced) x 5 folds x
  linear   2 backbones                       = 20 studies x 4 trials =  80 trials
  dvme     1 fusion (test_resnet + test_vit)  = 10 studies x 4 trials =  40 trials
  finetune 1 backbone (test_resnet)           = 10 studies x 3 trials =  30 trials
  logistic 1 backbone (test_vit)              = 10 studies x 3 trials =  30 trials (C)
  knn      1 backbone (test_vit)              = 10 studies x 3 trials =  30 trials (k)
and SimpleShot few-shot on test_vit at 1, 2, 4, 8 and 16 images per class, 20 episodes a fold
drawn from M's training folds (its embeddings are M's: nothing more is extracted)
  fewshot  5 shot counts x 5 folds            = 25 studies x 1 trial  =  25 trials
  total                                       = 85 studies, 235 trials, 17 cells.
ASHA (grace 2 epochs, reduction factor 2) stops a share of the trials of each study early;
the probes report once and are never stopped.

Learning rates: the heads sit on random-init features of small magnitude, so the demo
searches 1e-3..1e-1 for them rather than the paper's 1e-4..1e-3 (which barely moves a linear
probe in 12 epochs); finetuning searches 1e-4..1e-2.

Expected (test AUC, mean ± std over 5 folds; measured on 2 cores): random tiny features
are weak but far above chance (0.5), DVME fuses two of them at least as well as the better
one alone, and finetuning, with all layers learning, does best at M.
"""

from itertools import product

from sweep.spec import StudySpec

GRID = "demo"
DATASET = "digits"
SIZES = {"S": 50, "M": 250}
FOLDS = 5

# One CPU for every trial, of every mode: each trial's torch runs one thread, so a trial keeps a
# core busy, and trials that all ask the same resources share the same actor processes. Tune
# hands a finished trial's process only to a trial with the same resources: with 0.5 CPU for
# the heads and 1 for finetuning, the demo started 6 processes instead of 2, each importing
# torch, timm, scikit-learn and Ray Tune again (about 6.5 CPU-seconds each on 2 cores), and
# the Tuner took 53-63 s instead of 44 (benchmarks/overhead.py). A GPU machine packs the heads
# by their GPU fractions below.
MODES = {
    # mode: (backbone sets, study settings)
    "linear": (
        (("test_resnet",), ("test_vit",)),
        dict(lr_min=1e-3, lr_max=1e-1, n_trials=4, max_epochs=12, batch_size=32, cpus=1.0, gpus=0.05),
    ),
    "dvme": (
        (("test_resnet", "test_vit"),),
        dict(lr_min=1e-4, lr_max=1e-2, n_trials=4, max_epochs=12, batch_size=32, cpus=1.0, gpus=0.1,
             proj_dim=64, attention=True, attention_form="token"),
    ),
    "finetune": (
        (("test_resnet",),),
        dict(lr_min=1e-4, lr_max=1e-2, n_trials=3, max_epochs=8, batch_size=32, cpus=1.0, gpus=0.25),
    ),
    # Probes search their own value (logistic's C, knn's k), fitted once: one "epoch".
    "logistic": ((("test_vit",),), dict(n_trials=3, max_epochs=1, cpus=1.0, gpus=0.05)),
    "knn": ((("test_vit",),), dict(n_trials=3, max_epochs=1, cpus=1.0, gpus=0.05)),
}

SHOTS = (1, 2, 4, 8, 16)
FEWSHOT = dict(n_trials=1, max_epochs=1, grace_period=1, cpus=1.0, gpus=0.05, episodes=20)

STUDIES = [
    StudySpec(
        grid=GRID,
        dataset=DATASET,
        backbones=backbones,
        mode=mode,
        subset=label,
        n_train=SIZES[label],
        fold=fold,
        n_folds=FOLDS,
        grace_period=min(2, settings["max_epochs"]),
        reduction_factor=2,
        **settings,
    )
    for mode, (backbone_sets, settings) in MODES.items()
    for backbones, label, fold in product(backbone_sets, SIZES, range(FOLDS))
] + [
    # Few-shot: drawn from the M subset's training folds (the whole-pool studies of a paper
    # grid draw from F's), so the cache holds their rows already.
    StudySpec(grid=GRID, dataset=DATASET, backbones=("test_vit",), mode="fewshot", subset=f"{shots}-shot",
              n_train=SIZES["M"], fold=fold, n_folds=FOLDS, shots=shots, **FEWSHOT)
    for shots, fold in product(SHOTS, range(FOLDS))
]
