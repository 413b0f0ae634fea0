"""The report's figures (matplotlib, PNG, no display needed): each has a title, labelled axes
and a legend, and returns the file it wrote.

- size curves: test score against training-set size per method, mean ± std over folds (the
  paper's detail tables B1-B8, C1-C4 as curves);
- t-SNE of cached embeddings per backbone (the paper's Figures 2, D1, D2), coloured by class;
- DVME attention between backbones, averaged over the folds' selected trials;
- the learning-rate landscape: each trial's validation score against its learning rate (a
  probe's: against the value it searched, C or k).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sweep.report.statistics import method_label  # noqa: E402
from trainables.models.modes import get_mode  # noqa: E402

DPI = 120


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _label_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")


def size_curves(cells: list[dict], out_dir: str) -> list[str]:
    """One PNG per (dataset, frozen|finetune): mean test score vs n_train, error bars = std;
    few-shot cells on their own plot, against shots per class."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for c in cells:
        if c["mean"] is None:
            continue
        mode = get_mode(c["mode"])
        group = (c["dataset"], "fewshot" if mode.episodic else mode.family)
        groups[group][method_label(c)].append(c)
    written = []
    for (dataset, kind), methods in sorted(groups.items()):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        metric = next(iter(methods.values()))[0]["metric"]
        size = (lambda r: r["shots"]) if kind == "fewshot" else (lambda r: r["n_train"])
        for label, rows in sorted(methods.items()):
            rows = sorted(rows, key=size)
            x = [size(r) for r in rows]
            y = [r["mean"] for r in rows]
            err = [r["std"] or 0.0 for r in rows]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        sizes = sorted({size(r) for rows in methods.values() for r in rows})
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])  # the sizes themselves, not powers of ten
        ax.minorticks_off()
        what = "training images per class" if kind == "fewshot" else "training images"
        _label_axes(ax, f"{what} (log scale)", f"test {metric} (mean ± std over folds)",
                    f"{dataset}: test {metric} vs training-set size ({kind})")
        written.append(_save(fig, os.path.join(out_dir, f"size_{dataset}_{kind}.png")))
    return written


def _tsne_figure(panels: list[tuple[str, np.ndarray, np.ndarray]], title: str, path: str, seed: int) -> str:
    """A t-SNE panel per (panel title, features, labels), coloured by class."""
    from sklearn.manifold import TSNE

    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    # At least 6.5 in wide: one panel's figure must still hold the whole title.
    fig, axes = plt.subplots(rows, cols, figsize=(max(6.5, 4.5 * cols), 4.2 * rows), squeeze=False)
    for ax, (name, points, labels) in zip(axes.flat, panels):
        perplexity = max(2.0, min(30.0, (len(points) - 1) / 3))
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)
        for k in np.unique(labels):
            ax.scatter(xy[labels == k, 0], xy[labels == k, 1], s=6, alpha=0.7, label=f"class {k}")
        ax.set_title(f"{name} ({points.shape[1]}-d)", fontsize=9)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.legend(fontsize=7, markerscale=2, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def tsne(entries: list[dict], out_dir: str, max_points: int = 1000, seed: int = 0) -> list[str]:
    """One PNG per dataset: a t-SNE panel per cached backbone (view 0), coloured by class, on
    the labelled test split (or the pool where test labels are hidden), at most
    ``max_points`` points drawn at random."""
    from trainables.cache.embeddings import load_embeddings

    by_dataset: dict = defaultdict(lambda: defaultdict(list))  # dataset -> key -> its files
    for e in entries:
        if e.get("view", 0) == 0:
            by_dataset[e["dataset"]][e["key"]].append(e)
    written = []
    rng = np.random.default_rng(seed)
    for dataset, keys in sorted(by_dataset.items()):
        panels, source = [], "test"
        for files in sorted(keys.values(), key=lambda f: (f[0]["backbone"], f[0]["key"])):
            splits = load_embeddings([e["path"] for e in files])
            labelled = len(splits["test"].labels) and (splits["test"].labels >= 0).all()
            split, source = (splits["test"], "test") if labelled else (splits["pool"], "training pool")
            take = np.sort(rng.permutation(split.rows)[:max_points])
            panels.append((files[0]["backbone"], np.asarray(split.features[take], dtype=np.float32), split.labels[take]))
        written.append(_tsne_figure(panels, f"{dataset}: t-SNE of frozen embeddings ({source} images)",
                                    os.path.join(out_dir, f"tsne_{dataset}.png"), seed))
    return written


def tsne_dvme(studies: list[dict], store_root: str, out_dir: str, seed: int = 0) -> list[str]:
    """One PNG per dataset: the fused DVME embedding of each DVME method's selected trial at
    its largest training-set size (first fold), on the test images the trial kept."""
    import io

    from trainables import storage
    from trainables.artifacts import TrialFiles

    chosen: dict = {}
    for s in studies:
        if s["mode"] != "dvme":
            continue
        key = (s["dataset"], method_label(s))
        if key not in chosen or (s["n_train"], -s["fold"]) > (chosen[key]["n_train"], -chosen[key]["fold"]):
            chosen[key] = s
    by_dataset: dict = defaultdict(list)
    for (dataset, label), s in sorted(chosen.items()):
        path = TrialFiles(store_root, s["study_id"], s["trial_id"]).dvme_features
        if not storage.exists(path):
            continue
        saved = np.load(io.BytesIO(storage.read_bytes(path)))
        by_dataset[dataset].append((f"{label}, n={s['n_train']}", saved["features"].astype(np.float32), saved["labels"]))
    return [
        _tsne_figure(panels, f"{dataset}: t-SNE of DVME meta-embeddings (test images)",
                     os.path.join(out_dir, f"tsne_{dataset}_dvme.png"), seed)
        for dataset, panels in sorted(by_dataset.items())
    ]


def attention(studies: list[dict], out_dir: str) -> list[str]:
    """One PNG per (dataset, DVME set): a heatmap per training-set size of the mean attention
    of each backbone (row) to each (column), over the folds' selected trials."""
    import json

    groups: dict = defaultdict(lambda: defaultdict(list))
    for s in studies:
        if s["mode"] == "dvme" and s.get("backbone_attention"):
            groups[(s["dataset"], s["backbone"])][s["n_train"]].append(np.array(json.loads(s["backbone_attention"])))
    written = []
    for (dataset, fused), sizes in sorted(groups.items()):
        names = fused.split("+")
        fig, axes = plt.subplots(1, len(sizes), figsize=(3.6 * len(sizes) + 1, 3.6), squeeze=False)
        for k, (ax, (n, matrices)) in enumerate(zip(axes.flat, sorted(sizes.items()))):
            mean = np.mean(matrices, axis=0)
            image = ax.imshow(mean, vmin=0, vmax=1, cmap="viridis")
            for i in range(len(names)):
                for j in range(len(names)):
                    ax.text(j, i, f"{mean[i, j]:.2f}", ha="center", va="center",
                            color="white" if mean[i, j] < 0.6 else "black", fontsize=8)
            ax.set_xticks(range(len(names)), names, rotation=30, fontsize=8)
            ax.set_yticks(range(len(names)), names if k == 0 else [], fontsize=8)
            ax.set_xlabel("attended backbone")
            if k == 0:  # one label for the row: the panels share it
                ax.set_ylabel("attending backbone")
            ax.set_title(f"n = {n} ({len(matrices)} folds)", fontsize=9)
        fig.colorbar(image, ax=list(axes.flat), shrink=0.8, label="attention weight")
        fig.suptitle(f"{dataset}: DVME attention between backbones ({fused})", fontsize=10)
        path = os.path.join(out_dir, f"attention_{dataset}_{fused.replace('+', '-')}.png")
        os.makedirs(out_dir, exist_ok=True)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def lr_landscape(trials: list[dict], out_dir: str) -> list[str]:
    """One PNG per (dataset, mode): every trial's best validation score against its learning
    rate, one colour per method; hollow markers for trials ASHA stopped early."""
    groups: dict = defaultdict(lambda: defaultdict(list))
    for t in trials:
        if t["status"] == "ok" and t["val_score"] is not None:
            groups[(t["dataset"], t["mode"])][method_label(t)].append(t)
    written = []
    for (dataset, mode), methods in sorted(groups.items()):
        if get_mode(mode).search.fixed:
            continue  # nothing searched (few-shot): no landscape
        fig, ax = plt.subplots(figsize=(7, 4.5))
        metric = next(iter(methods.values()))[0]["metric"]
        for i, (label, rows) in enumerate(sorted(methods.items())):
            color = f"C{i % 10}"
            full = [r for r in rows if not r["stopped_early"]]
            early = [r for r in rows if r["stopped_early"]]
            ax.scatter([r["lr"] for r in full], [r["val_score"] for r in full], color=color, s=18, label=label)
            ax.scatter([r["lr"] for r in early], [r["val_score"] for r in early], facecolors="none",
                       edgecolors=color, s=18)
        ax.scatter([], [], facecolors="none", edgecolors="grey", s=18, label="(hollow: stopped early by ASHA)")
        # What the mode searched (a learning rate, logistic's C, knn's k), on its own scale.
        search = get_mode(mode).search
        searched = search.label
        if search.log:
            ax.set_xscale("log")
        _label_axes(ax, f"{searched}{' (log scale)' if search.log else ''}", f"best validation {metric}",
                    f"{dataset} {mode}: validation {metric} vs {searched}, every trial")
        written.append(_save(fig, os.path.join(out_dir, f"lr_{dataset}_{mode}.png")))
    return written
