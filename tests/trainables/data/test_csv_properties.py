"""Every dataset's CSV layout, drawn at random (headers reordered, short or with extra columns,
rows too long or short, quotes, commas and newlines in values, blank and out-of-range labels,
ids escaping the root, a BOM, latin-1 bytes): reading it, strictly (a sweep) and leniently
(``sweep data check``), ends in a dataset or a named error, never another exception."""

import csv
import io
import os
import tempfile

import numpy as np
from hypothesis import strategies as st

from tests import layouts
from tests.properties import INPUTS, TEXT, tried
from trainables.data.datasets import load_dataset
from trainables.data.readers import NIH_TEST_CSV, NIH_TRAIN_CSV

NIH_COLUMNS = ["Image Index", "Patient ID", "Patient Age", "Patient Gender", "View Position",
               "Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass"]

# dataset -> (CSV files with their header, plausible values per column, images present)
APTOS_IDS = [layouts.hexid(i, 12) for i in range(1, 5)]
PCAM_IDS = [layouts.hexid(i, 40) for i in range(1, 5)]
NIH_NAMES = [f"0000000{i}_000.png" for i in range(1, 5)]
FOLDER_PATHS = [f"{d}/{i}.png" for d in "ab" for i in range(5)]
LAYOUTS = {
    "aptos": {"train.csv": ["id_code", "diagnosis"], "test.csv": ["id_code"]},
    "patchcam": {"train_labels.csv": ["id", "label"], "sample_submission.csv": ["id", "label"]},
    "nih": {NIH_TRAIN_CSV: NIH_COLUMNS, NIH_TEST_CSV: NIH_COLUMNS},
    "folder": {"train.csv": ["path", "label"], "test.csv": ["path", "label"]},
}
PLAUSIBLE = {
    "id_code": APTOS_IDS + ["../x", ""], "diagnosis": ["0", "1", "4", "5", "-1", "2.0", ""],
    "id": PCAM_IDS + ["/etc/passwd", ""], "label": ["0", "1", "benign", "malignant", "benign", "malignant", "2", "", "b,c"],
    "Image Index": NIH_NAMES + ["missing.png", ""], "Patient ID": ["1", "2", "", "x"],
    "Fracture": ["YES", "NO", "", "yes", "maybe"], "Pneumothorax": ["YES", "NO", ""],
    "Airspace opacity": ["YES", "NO", ""], "Nodule or mass": ["YES", "NO", " NO "],
    "path": FOLDER_PATHS * 2 + ["../escape.png", "/abs.png", "a/none.png", "a/x0.dcm", ""],
}


def _images(root: str) -> None:
    """The images the plausible ids name (some ids name none: a missing file is a case too)."""
    for i in APTOS_IDS[:3]:
        for folder in ("train_images", "test_images"):
            layouts.image(os.path.join(root, "aptos", folder, f"{i}.png"))
    for i in PCAM_IDS[:3]:
        for folder in ("train", "test"):
            layouts.image(os.path.join(root, "patchcam", folder, f"{i}.tif"), size=(96, 96))
    for name in NIH_NAMES[:3]:
        layouts.image(os.path.join(root, "nih", "images_001", "images", name), mode="L")
    for path in FOLDER_PATHS:
        layouts.image(os.path.join(root, "folder", path))


def _file(header: list[str]):
    """One CSV file's bytes: its header (as published, reordered, a column short or one more),
    rows of plausible or arbitrary values, written by csv.writer or joined raw, UTF-8 (with or
    without BOM) or latin-1."""
    variants = [st.permutations(header).map(list), st.just(header[:-1]), st.just(header + ["extra"]),
                st.lists(TEXT, max_size=4)]
    headers = st.integers(0, 7).flatmap(lambda i: variants[i - 4] if i >= 4 else st.just(header))  # as published, 1 in 2

    def rows(columns):
        # Mostly rows a user's file could hold (each value plausible, three times in four), some
        # of arbitrary width and text.
        cell = [st.one_of(*[st.sampled_from(PLAUSIBLE.get(c, [""]))] * 3, TEXT) for c in columns]
        record = st.tuples(*cell).map(list) if cell else st.just([])
        row = st.one_of(record, record, record, st.lists(TEXT, max_size=len(columns) + 2))
        return st.lists(row, min_size=1, max_size=5).map(lambda body: (columns, body))

    def encode(parts):
        (columns, body), style, encoding = parts
        if style == "csv":
            out = io.StringIO()
            csv.writer(out).writerows([columns, *body])
            text = out.getvalue()
        else:
            text = "\n".join(",".join(r) for r in [columns, *body]) + "\n"
        if encoding == "utf-8-sig":
            return text.encode("utf-8-sig")
        return text.encode(encoding, errors="replace")

    return st.tuples(headers.flatmap(rows), st.sampled_from(["csv", "raw"]),
                     st.sampled_from(["utf-8", "utf-8-sig", "latin-1"])).map(encode)


def _layout(name: str):
    files = LAYOUTS[name]
    return st.fixed_dictionaries({f: _file(header) for f, header in files.items()})


def _check_dataset(name: str) -> int:
    with tempfile.TemporaryDirectory() as root:
        _images(root)
        folder = os.path.join(root, name)

        def check(files: dict) -> None:
            for file, data in files.items():
                with open(os.path.join(folder, file), "wb") as f:
                    f.write(data)
            problems: list = []
            try:
                lenient = load_dataset(name, folder, problems)
            finally:
                assert all(isinstance(p, str) and p for p in problems)  # each problem said in words
            assert len(lenient.pool.labels) == len(lenient.pool.ids) and np.all(lenient.pool.labels >= 0)
            strict = load_dataset(name, folder)  # a sweep: any problem is the error
            assert not problems and len(strict.pool) == len(lenient.pool)

        return tried(_layout(name), check)


def test_aptos_csv_files():
    assert _check_dataset("aptos") >= INPUTS


def test_patchcam_csv_files():
    assert _check_dataset("patchcam") >= INPUTS


def test_nih_csv_files():
    assert _check_dataset("nih") >= INPUTS


def test_folder_csv_files():
    assert _check_dataset("folder") >= INPUTS
