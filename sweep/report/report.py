"""``sweep report``: the store as the paper's tables, beside the paper's own numbers, with
statistics and plots, as Markdown or HTML plus CSV exports.

Sections: one table per mode in the paper's layout (Table 2 linear, Table 3 finetuning:
dataset x method x S/M/F, ``mean ± std`` over folds) with the paper's figure and the
difference beside each cell, flagged where they differ by more than 2 std; DVME against the
best single backbone (Table 4); per-size detail tables (B1-B8, C1-C4); paired statistics
(sweep/report/statistics.py); plots (sweep/report/plots.py); Kaggle submissions with a scores table to fill.

Example::

    >>> write_report(ResultsStore("sweep-results"), "report", "md")   # doctest: +SKIP
    'report/report.md'
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
from collections import defaultdict
from typing import Optional

from trainables.errors import UserError
from sweep.store.formatting import csv_text, mean_std
from sweep.report.answer import answers
from sweep.report.paper_numbers import PAPER_DVME_BACKBONES, is_paper_study, paper_figure, paper_numbers, paper_size
from sweep.store.intervals import cell_intervals
from sweep.store.queries import aggregate_cells, select_studies
from trainables.models.modes import get_mode, mode_names
from sweep.report.statistics import method_label, paired_comparisons, size_of, size_text
from sweep.store.store import ResultsStore, StoreError
from trainables import storage

SML = ("S", "M", "F")
FLAG = "⚠"  # ours and the paper's differ by more than 2 std
FORMATS = ("md", "html")


# --- comparison with the paper ---------------------------------------------------------------
def compare(cell: dict) -> dict:
    """The cell with the paper's figure beside it: paper_mean, paper_std, difference, flag."""
    paper = paper_figure(cell)
    out = {**cell, "method": method_label(cell), "paper_table": None, "paper_mean": None, "paper_std": None,
           "difference": None, "flagged": False}
    if paper is None or cell["mean"] is None:
        return out
    difference = cell["mean"] - paper["mean"]
    spread = cell["std"] if cell["std"] else paper["std"]
    out.update(paper_table=paper["table"], paper_mean=paper["mean"], paper_std=paper["std"],
               difference=difference, flagged=bool(spread and abs(difference) > 2 * spread))
    return out


def cell_text(c: dict) -> str:
    text = mean_std(c["mean"], c["std"])
    if c.get("ci_low") is not None:
        text += f" [{c['ci_low']:.4f}, {c['ci_high']:.4f}]"
    if c.get("episode_std") is not None:
        text += f" (episodes ± {c['episode_std']:.4f})"
    if c.get("scored_by") == "kaggle" and c["mean"] is not None:
        text += " (Kaggle)"
    if c.get("paper_mean") is not None:
        text += f" · paper {mean_std(c['paper_mean'], c['paper_std'])} (Δ {c['difference']:+.4f})"
        if c["flagged"]:
            text += f" {FLAG}"
    elif c["mean"] is not None:
        text += " · no paper figure"
    return text


# --- tables ------------------------------------------------------------------------------------
def _labels(cells: list[dict]) -> list[str]:
    present = {c["subset"] for c in cells}
    main = [s for s in SML if s in present]
    if main:
        return main
    return [s for s, _ in sorted({(c["subset"], size_of(c)) for c in cells}, key=lambda x: x[1])]


def mode_table(cells: list[dict], mode: str) -> tuple[list[str], list[list[str]]]:
    """Table 2 / 3 layout: a row per (dataset, method), a column per subset S/M/F."""
    mine = [c for c in cells if c["mode"] == mode]
    labels = _labels(mine)
    grid = defaultdict(dict)
    for c in mine:
        grid[(c["dataset"], c["method"])][c["subset"]] = c
    rows = [[d, m] + [cell_text(by[s]) if s in by else "-" for s in labels] for (d, m), by in sorted(grid.items())]
    return ["dataset", "method", *labels], rows


def dvme_table(cells: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Table 4 layout: each DVME beside the best single frozen backbone of its set, per size."""
    dvme = [c for c in cells if c["mode"] == "dvme"]
    labels = _labels(dvme)
    rows = []
    for dataset in sorted({c["dataset"] for c in dvme}):
        mine = [c for c in dvme if c["dataset"] == dataset]
        for method in sorted({c["method"] for c in mine}):
            by = {c["subset"]: c for c in mine if c["method"] == method}
            rows.append([dataset, method] + [cell_text(by[s]) if s in by else "-" for s in labels])
        fused = set(mine[0]["backbones"])
        best = []
        for s in labels:
            singles = [c for c in cells if c["mode"] == "linear" and c["dataset"] == dataset and c["subset"] == s
                       and c["backbone"] in fused and c["mean"] is not None]
            if fused == set(PAPER_DVME_BACKBONES):
                # Beside the paper's best single backbone: the paper's linear studies only (not
                # an unaugmented variant that happens to score higher).
                singles = [c for c in singles if is_paper_study(c)]
            if not singles:
                best.append("-")
                continue
            top = max(singles, key=lambda c: c["mean"])
            text = f"{mean_std(top['mean'], top['std'])} ({top['backbone']})"
            paper = None
            if fused == set(PAPER_DVME_BACKBONES):
                paper = paper_numbers().get((dataset, "linear", "best_single", paper_size(top)))
            if paper:
                text += f" · paper {mean_std(paper['mean'], paper['std'])}"
            best.append(text)
        rows.append([dataset, "best single backbone (linear)"] + best)
    return ["dataset", "method", *labels], rows


def detail_tables(cells: list[dict]) -> list[tuple[str, list[str], list[list[str]]]]:
    """B/C layout: per (dataset, mode), a row per method and a column per training-set size;
    each cell ours (paper)."""
    out = []
    groups = defaultdict(list)
    for c in cells:
        groups[(c["dataset"], c["mode"])].append(c)
    for (dataset, mode), mine in sorted(groups.items()):
        sizes = sorted({size_of(c) for c in mine})
        grid = defaultdict(dict)
        for c in mine:
            grid[c["method"]][size_of(c)] = c
        rows = []
        for method, by in sorted(grid.items()):
            row = [method]
            for n in sizes:
                c = by.get(n)
                if c is None or c["mean"] is None:
                    row.append("-")
                    continue
                text = f"{c['mean']:.4f}" + (" K" if c.get("scored_by") == "kaggle" else "")
                if c.get("paper_mean") is not None:
                    text += f" ({c['paper_mean']:.4f}){' ' + FLAG if c['flagged'] else ''}"
                row.append(text)
            rows.append(row)
        headers = [size_text({"n_train": n, "shots": shots}) for n, shots in sizes]
        out.append((f"{dataset}, {mode}", ["method", *headers], rows))
    return out


def statistics_table(comparisons: list[dict]) -> tuple[list[str], list[list[str]]]:
    def p(x):
        return "-" if x is None or math.isnan(x) else f"{x:.3g}"

    rows = [
        [r["dataset"], r["modes"], size_text(r), r["a"], r["b"], str(r["folds"]), f"{r['difference']:+.4f}",
         p(r["p_ttest"]), p(r["p_holm"]), p(r["p_corrected"]), p(r["p_corrected_holm"]), p(r["p_wilcoxon"]),
         "yes" if r["significant"] else "no"]
        for r in comparisons
    ]
    return ["dataset", "family", "n", "a", "b", "folds", "a - b", "p (paired t)", "p (paired t, Holm)",
            "p (corrected t)", "p (corrected t, Holm)", "p (Wilcoxon)", "significant"], rows


# --- output ------------------------------------------------------------------------------------
def _md_table(headers, rows) -> str:
    def esc(v):
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


NUMBER = re.compile(r"^[-+−]?(\d|\.\d)")  # a cell that starts with a figure: right-aligned


def _td(value) -> str:
    text = str(value)
    return f"<td class='num'>{html.escape(text)}</td>" if NUMBER.match(text) else f"<td>{html.escape(text)}</td>"


def _html_table(headers, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
    # Wide tables scroll inside their own box on a narrow screen instead of widening the page.
    return f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _embedded(path: str) -> str:
    """A PNG as a data: URI, so that report.html is one file that can be mailed alone."""
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
         ".wide{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;vertical-align:top}"
         "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
         "img{max-width:100%;height:auto}")


def render(blocks: list[tuple], fmt: str, title: str, base: str = ".") -> str:
    """Blocks: ("h2"|"h3"|"p", text), ("table", headers, rows), ("img", path relative to
    ``base``, caption). Markdown links its images; HTML embeds them."""
    if fmt == "md":
        parts = [f"# {title}"]
        for kind, *args in blocks:
            if kind in ("h2", "h3"):
                parts.append(("## " if kind == "h2" else "### ") + args[0])
            elif kind == "p":
                parts.append(args[0])
            elif kind == "table":
                parts.append(_md_table(*args) if args[1] else "(no rows)")
            elif kind == "img":
                parts.append(f"![{args[1]}]({args[0]})")
        return "\n\n".join(parts) + "\n"
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>",
             f"<style>{STYLE}</style>", f"</head><body><h1>{html.escape(title)}</h1>"]
    for kind, *args in blocks:
        if kind in ("h2", "h3"):
            parts.append(f"<{kind}>{html.escape(args[0])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(args[0])}</p>")
        elif kind == "table":
            parts.append(_html_table(*args) if args[1] else "<p>(no rows)</p>")
        elif kind == "img":
            parts.append(f"<figure><img src='{_embedded(os.path.join(base, args[0]))}' alt='{html.escape(args[1])}'>"
                         f"<figcaption>{html.escape(args[1])}</figcaption></figure>")
    return "\n".join(parts) + "</body></html>\n"


def _write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        f.write(csv_text(rows))


def kaggle_section(store: ResultsStore, out_dir: str, filled: dict) -> list[tuple]:
    """Submission files, a scores table to fill (kaggle_scores.csv) and, once filled
    (``filled``: submission -> (private, public)), the paper's alpha-weighted final scores."""
    from sweep.report.kaggle import final_score

    folder = storage.join(store.root, "submissions")
    fs, base = storage.filesystem(folder)
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    files = sorted(i.path[len(base) + 1:] for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".csv"))
    if not files:
        return []
    template = os.path.join(out_dir, "kaggle_scores.csv")
    rows = []
    for name in files:
        dataset = name.split("-", 1)[0]
        private, public = filled.get(name, (None, None))
        final = final_score(dataset, private, public) if private is not None else None
        rows.append({"submission": name, "dataset": dataset, "private": private, "public": public, "final": final})
    _write_csv(template, rows)
    blocks = [
        ("h2", "Kaggle submissions (test labels hidden)"),
        ("p", f"{len(files)} submission files under {folder}. Submit them on Kaggle, fill private and public "
              f"into kaggle_scores.csv, and run sweep report --kaggle-scores kaggle_scores.csv: the final score "
              f"is alpha*private + (1-alpha)*public, alpha the private leaderboard's share (the paper's weighting)."),
        ("table", ["submission", "private", "public", "final"],
         [[r["submission"], r["private"] if r["private"] is not None else "", r["public"] if r["public"] is not None else "",
           f"{r['final']:.4f}" if r["final"] is not None else ""] for r in rows]),
    ]
    return blocks


def write_report(store: ResultsStore, out_dir: str, fmt: str = "md", cache: Optional[str] = None,
                 kaggle_scores: Optional[str] = None, tsne_points: int = 1000, with_answers: bool = False):
    """The report's path (and, ``with_answers``, the answers it opens with)."""
    from sweep.report import plots
    from trainables.cache.embeddings import list_cache

    if fmt not in FORMATS:
        raise UserError(f"unknown report format {fmt!r}; valid: {', '.join(FORMATS)}")
    trials = store.read_trials().to_pylist()
    if not trials:
        raise StoreError(f"{store.root} holds no trials yet: nothing to report")
    studies = select_studies(trials)
    filled = {}
    if kaggle_scores:
        from sweep.report.kaggle import read_kaggle_scores, with_kaggle_scores

        filled = read_kaggle_scores(kaggle_scores)  # read once: the cells and the Kaggle table
        studies = with_kaggle_scores(studies, filled, kaggle_scores)
    cells = [compare(c) for c in aggregate_cells(studies, cell_intervals(store.root, studies))]
    comparisons = paired_comparisons(studies)
    os.makedirs(out_dir, exist_ok=True)
    plot_dir = os.path.join(out_dir, "plots")

    answered = answers(studies)
    blocks: list[tuple] = [("h2", "The answer: best method per dataset and training-set size")]
    blocks += [("p", a["sentence"]) for a in answered]
    blocks += [("p", f"Store {store.root}: {len(trials)} trials, {len(studies)} studies, {len(cells)} cells. "
                                 f"Each cell is the mean ± sample std over folds of the test score of each fold's "
                                 f"selected trial (best validation score), then in brackets its bootstrap 95% "
                                 f"interval (1,000 stratified resamples of the test set, the fold models held "
                                 f"fixed; few-shot cells add the std over every episode). Beside it the paper's figure for the same "
                                 f"dataset, method and training-set size where the paper reports one "
                                 f"({sum(c['paper_mean'] is not None for c in cells)} of {len(cells)} cells; the "
                                 f"others say 'no paper figure'), and the difference; {FLAG} marks cells "
                                 f"that differ by more than 2 std.")]
    # The paper's two tables, then one per probe of the field (logistic, knn, fewshot, ...).
    probes = [m for m in mode_names() if get_mode(m).fitter is not None]
    titled = [("linear", "Table 2: linear evaluation"), ("finetune", "Table 3: finetuning")]
    titled += [(m, f"Probe: {m} ({get_mode(m).description})") for m in probes]
    for mode, title in titled:
        if any(c["mode"] == mode for c in cells):
            blocks += [("h2", title), ("table", *mode_table(cells, mode))]
    if any(c["mode"] == "dvme" for c in cells):
        blocks += [("h2", "Table 4: DVME against the best single backbone"), ("table", *dvme_table(cells))]
    blocks.append(("h2", "Per-size tables (B1-B8, C1-C4): ours (the paper's, where it reports one); K: the mean of the fold models' Kaggle scores"))
    for caption, headers, rows in detail_tables(cells):
        blocks += [("h3", caption), ("table", headers, rows)]
    blocks += [("h2", "Paired comparisons over the same folds"),
               ("p", "On the folds' test scores: the paired t-test, the corrected resampled t-test (Nadeau & "
                     "Bengio 2003: the fold models share most of their training images and one test set, so the "
                     "plain t-test is too liberal; its variance is scaled by 1/k + 1/(k-1) instead of 1/k) and the "
                     "Wilcoxon signed-rank test. Both t-tests are Holm-corrected within each (dataset, "
                     "frozen|finetune, size); 'significant' reads the corrected test. With 5 folds the Wilcoxon "
                     "test cannot go below p = 0.0625."),
               ("table", *statistics_table(comparisons))]

    figures = plots.size_curves(cells, plot_dir)
    cache_dir = store.cache_at(cache)
    ours = {d for d in (c["dataset"] for c in cells)}
    entries = [e for e in list_cache(cache_dir) if e["dataset"] in ours]
    figures += plots.tsne(entries, plot_dir, max_points=tsne_points)
    figures += plots.tsne_dvme(studies, store.root, plot_dir)
    figures += plots.attention(studies, plot_dir)
    figures += plots.lr_landscape(trials, plot_dir)
    blocks.append(("h2", "Plots"))
    for path in figures:
        name = os.path.basename(path)[: -len(".png")]
        blocks.append(("img", os.path.relpath(path, out_dir), name.replace("_", " ")))
    blocks += kaggle_section(store, out_dir, filled)

    _write_csv(os.path.join(out_dir, "cells.csv"), [{k: v for k, v in c.items() if k != "backbones"} for c in cells])
    _write_csv(os.path.join(out_dir, "statistics.csv"), comparisons)
    _write_csv(os.path.join(out_dir, "studies.csv"), [{k: v for k, v in s.items() if k != "backbones"} for s in studies])
    path = os.path.join(out_dir, f"report.{fmt}")
    with open(path, "w") as f:
        f.write(render(blocks, fmt, "medsweep report", base=out_dir))
    return (path, answered) if with_answers else path
