"""Beyond the paper: the variants a reader asks about next, beside the paper's own settings.

Run it into the paper grid's store, so that the report shows both side by side::

    sweep run --grid paper --results R ...                        # the paper's design
    sweep run --grid paper_plus --results R --allow-other-grid ...  # these variants

Each variant differs from a study of the paper grid in one setting, so its effect reads off
the report's tables and paired comparisons (methods are labelled by every setting that makes
them differ: attention form, views, embedding dtype):

  linear, no augmentation   5 backbones x 8 trials, views 1        (paper: 4 augmented views)
  dvme, 3-token attention   simclr+swav+dino x 8 trials, views 4  (paper: Listing 1's 1,536
                            width-1 tokens; one token per backbone, the Dynamic
                            Meta-Embeddings lineage)
  dvme, no augmentation     simclr+swav+dino, listing form and no attention, views 1
  dvme, qkv bias            simclr+swav+dino, listing form with a query/key/value bias
                            (paper: timm's Attention default, none)
  dvme w/o attention, MLP   simclr+swav+dino, no attention, the attention model's head kept
                            (layer norm, projection, ReLU, dropout; paper: the projections
                            straight into the classifier)

Sizes: S, M, F of each dataset (the main tables), 5 folds.
Studies: 12 (dataset, size) x 5 folds x (5 + 1 + 2 + 2) = 600. Trials: 12 x 5 x (40 + 8 + 16 + 16) = 4,800
(frozen heads only: cheap on cached embeddings; the views-1 studies share the paper grid's
evaluation-view cache files, so they add no extraction).

Expected: the paper's augmented frozen heads a little above the unaugmented ones at S and M
(augmentation matters most for small training sets); the 3-token DVME close to the listing
form, at a fraction of its attention cost.
"""

from itertools import product

from search_spaces.paper import BACKBONES, DVME, DVME_BACKBONES, FOLDS, LINEAR, SML
from sweep.spec import StudySpec

GRID = "paper_plus"
_SIZES = [(d, label, n) for d, sizes in SML.items() for label, n in sizes.items()]


def _study(dataset, label, n, fold, mode, backbones, settings) -> StudySpec:
    return StudySpec(
        grid=GRID, dataset=dataset, backbones=backbones, mode=mode, subset=label,
        n_train=n, fold=fold, n_folds=FOLDS, grace_period=5, reduction_factor=3, **settings,
    )


STUDIES = (
    [
        _study(d, label, n, fold, "linear", (b,), dict(LINEAR, views=1))
        for (d, label, n), b, fold in product(_SIZES, BACKBONES, range(FOLDS))
    ]
    + [
        _study(d, label, n, fold, "dvme", DVME_BACKBONES, dict(DVME, attention_form="token"))
        for (d, label, n), fold in product(_SIZES, range(FOLDS))
    ]
    + [
        _study(d, label, n, fold, "dvme", DVME_BACKBONES, dict(DVME, attention=attention, views=1))
        for (d, label, n), attention, fold in product(_SIZES, (True, False), range(FOLDS))
    ]
    + [
        _study(d, label, n, fold, "dvme", DVME_BACKBONES, dict(DVME, **variant))
        for (d, label, n), variant, fold in product(
            _SIZES, ({"qkv_bias": True}, {"attention": False, "no_attention_head": "mlp"}), range(FOLDS))
    ]
)
