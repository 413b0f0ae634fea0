"""Kaggle score files (``kaggle_scores.csv`` filled in by hand), drawn at random: read and
applied to a store's studies, or refused with an error naming the file and line, never
another exception."""

import os
import tempfile

from hypothesis import strategies as st

from sweep.report.kaggle import read_kaggle_scores, with_kaggle_scores
from tests.properties import INPUTS, TEXT, tried

FOLD = "aptos-linear-test_resnet-n25-0123456789/fold0.csv"
NAMES = st.sampled_from([FOLD, FOLD.replace("fold0", "fold1"), FOLD.replace("fold0", "ensemble"),
                         "patchcam-linear-x-n25-abc/fold0.csv", "nowhere/fold0.csv", "fold9.csv", ""])
SCORES = st.one_of(st.sampled_from(["0.8", "0.5", "1", "0", "-0.3", "1.2", "nan", "inf", "-inf", "", "n/a", "1e309"]),
                   st.floats(allow_nan=True, allow_infinity=True).map(repr), TEXT)
ROW = st.one_of(st.tuples(NAMES, SCORES, SCORES).map(list), st.lists(TEXT, max_size=4))
HEADER = st.sampled_from([["submission", "private", "public"], ["submission", "private"],
                          ["public", "submission", "private", "notes"]])
STUDIES = [{"cell_id": "0123456789", "fold": f, "dataset": "aptos", "test_score": None, "study_id": f"s{f}"}
           for f in (0, 1)]


def test_kaggle_score_files():
    import csv

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kaggle_scores.csv")

        def check(drawn):
            header, rows = drawn
            with open(path, "w", newline="", encoding="utf-8", errors="replace") as f:
                csv.writer(f).writerows([header, *rows])
            filled = read_kaggle_scores(path)
            scored = with_kaggle_scores(STUDIES, filled, path)
            assert len(scored) == len(STUDIES)
            assert all(r["test_score"] is None or -1 <= r["test_score"] <= 1 for r in scored)

        assert tried(st.tuples(HEADER, st.lists(ROW, max_size=5)), check) >= INPUTS
