"""Readers of the public layouts (the README's "Datasets"), each -> a ``LoadedDataset``.

Every reader takes ``root`` and ``problems``. With ``problems=None`` (a sweep) any problem is
an error naming the file and what was expected. With a list (``sweep data check``,
``--skip-unreadable``) each problem is appended, the offending item left out, and reading
goes on — so nothing is ever dropped without being said.

Nothing here decodes images: ``FileImages`` decodes on demand.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from typing import Iterable, Optional

import numpy as np

from trainables import storage
from trainables.data.dataset_types import DatasetError, ImageSet, LoadedDataset
from trainables.data.images import IMAGE_SUFFIXES, FileImages


# --- shared helpers -------------------------------------------------------------------------


def _problem(problems: Optional[list], message: str) -> None:
    if problems is None:
        raise DatasetError(message)
    problems.append(message)


def _require_dir(path: str, what: str) -> str:
    if not os.path.isdir(path):
        raise DatasetError(f"{path}: folder not found ({what})")
    return path


def read_csv(path: str, required: tuple[str, ...], id_column: Optional[str] = None,
             problems: Optional[list] = None) -> list[tuple[int, dict]]:
    """(line, row) of each record of a CSV with at least ``required`` columns (extra columns
    are fine), values stripped; blank lines skipped. A file that is not UTF-8 text or lacks a
    column is an error naming it; a record with more or fewer fields than the header, a blank
    or repeated ``id_column`` is a problem (an error with ``problems`` None) and left out."""
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: file not found (expected a CSV with columns {', '.join(required)})")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                           f"save it as UTF-8 (a spreadsheet's 'CSV UTF-8')") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader, [])]
        records = [(reader.line_num, fields) for fields in reader]
    except csv.Error as exc:  # a NUL byte, an unterminated quote at the end
        raise DatasetError(f"{path} line {reader.line_num}: not CSV ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DatasetError(f"{path}: header {header} lacks column(s) {missing}; expected {', '.join(required)}")
    repeated = sorted({h for h in header if header.count(h) > 1 and h})
    if repeated:
        raise DatasetError(f"{path}: header {header} names column(s) {repeated} more than once")
    rows, seen = [], {}
    for line, fields in records:
        if not any(f.strip() for f in fields):
            continue  # a blank line
        if len(fields) != len(header):
            _problem(problems, f"{path} line {line}: {len(fields)} fields where the header has {len(header)} "
                               f"({', '.join(header)}); a value holding a comma must be quoted")
            continue
        row = {h: v.strip() for h, v in zip(header, fields)}
        if id_column:
            key = row[id_column]
            if not key:
                _problem(problems, f"{path} line {line}: {id_column} is blank")
                continue
            if key in seen:
                _problem(problems, f"{path}: {id_column} {key!r} on line {line} repeats line {seen[key]}")
                continue
            seen[key] = line
        rows.append((line, row))
    return rows


def inside(root: str, relative: str, where: str, problems: Optional[list] = None) -> Optional[str]:
    """``root/relative``; an id that escapes the root (``../``, an absolute path) or holds a
    NUL byte is a problem (None returned: the row is left out)."""
    if "\x00" in relative:  # no file name holds one (os.path raises a bare ValueError on it)
        _problem(problems, f"{where}: {relative!r} is not a file name: it holds a NUL byte")
        return None
    base = os.path.realpath(root)
    path = os.path.realpath(os.path.join(base, relative))
    if os.path.commonpath([base, path]) != base:
        _problem(problems, f"{where}: {relative!r} escapes the data root {root}")
        return None
    return path


def fingerprint(name: str, root: str, paths: Iterable[str], labels: Iterable[int]) -> str:
    """Content digest from relative paths, file sizes and labels (no image decoded)."""
    sha = hashlib.sha256(name.encode())
    for path, label in zip(paths, labels):
        size = os.path.getsize(path) if os.path.exists(path) else -1
        sha.update(f"{os.path.relpath(path, root)}\0{size}\0{label}\n".encode())
    return f"{name}-{sha.hexdigest()[:16]}"


def _image_set(paths: list[str], labels: list[int], ids: list[str], groups: Optional[list[str]] = None) -> ImageSet:
    return ImageSet(
        images=FileImages(paths),
        labels=np.asarray(labels, dtype=np.int64),
        ids=ids,
        groups=None if groups is None else np.asarray(groups),
    )


def _dataset(name: str, root: str, classes: tuple[str, ...], pool: ImageSet, test: ImageSet) -> LoadedDataset:
    paths = pool.images.paths + test.images.paths
    labels = list(pool.labels) + list(test.labels)
    return LoadedDataset(name, classes, pool, test, fingerprint(name, root, paths, labels))


def _keep_existing(problems: Optional[list], what: str, paths: list[str], *columns: list) -> tuple[list, ...]:
    """``paths`` and its parallel ``columns`` without the rows whose file is missing; each
    missing file is a problem (an error naming them when ``problems`` is None)."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        head = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        if problems is None:
            raise DatasetError(f"{len(missing)} {what} image(s) missing: {head}")
        problems.extend(f"{p}: file not found ({what} image)" for p in missing)
    gone = set(missing)
    keep = [p not in gone for p in paths]
    return tuple([v for v, k in zip(values, keep) if k] for values in (paths, *columns))


def _id_split(root: str, csv_path: str, id_col: str, label_col: Optional[str], folder: str, suffix: str,
              n_classes: int, problems: Optional[list]) -> ImageSet:
    """A Kaggle-style split: a CSV of ids (and labels) and one image file per id."""
    rows = read_csv(csv_path, (id_col,) + ((label_col,) if label_col else ()), id_column=id_col, problems=problems)
    paths, labels, ids = [], [], []
    for line, row in rows:
        where = f"{csv_path} line {line}"
        label = -1
        if label_col:
            try:
                label = int(row[label_col])
            except ValueError:
                label = None
            if label is None or not 0 <= label < n_classes:
                _problem(problems, f"{where}: {label_col} {row[label_col]!r} is not a class 0..{n_classes - 1}")
                continue
        path = inside(os.path.join(root, folder), row[id_col] + suffix, where, problems)
        if path is None:
            continue
        paths.append(path)
        labels.append(label)
        ids.append(row[id_col])
    return _image_set(*_keep_existing(problems, folder, paths, labels, ids))


# --- APTOS 2019 (Kaggle) --------------------------------------------------------------------


def read_aptos(root: str, problems: Optional[list] = None) -> LoadedDataset:
    """``train.csv`` (id_code, diagnosis 0-4), ``train_images/<id_code>.png``; ``test.csv``,
    ``test_images/`` (labels hidden on Kaggle)."""
    _require_dir(root, "APTOS 2019: train.csv, train_images/, test.csv, test_images/")
    pool = _id_split(root, os.path.join(root, "train.csv"), "id_code", "diagnosis", "train_images", ".png", 5, problems)
    test = _id_split(root, os.path.join(root, "test.csv"), "id_code", None, "test_images", ".png", 5, problems)
    return _dataset("aptos", root, ("0", "1", "2", "3", "4"), pool, test)


# --- PatchCam (Kaggle histopathologic-cancer-detection) -------------------------------------


PCAM_H5 = "camelyonpatch_level_2_split_{split}_{xy}.h5"


def read_pcam_h5(root: str) -> LoadedDataset:
    """The original PCam HDF5 files: pool = train + valid, test = test (labels given).
    Keys ``x`` (N, 96, 96, 3) uint8 and ``y`` (N, 1, 1, 1)."""
    import h5py

    from trainables.data.images import H5Images

    def files(splits, xy):
        out = []
        for split in splits:
            path = os.path.join(root, PCAM_H5.format(split=split, xy=xy))
            if not os.path.isfile(path):
                hint = " (it is published gzipped: gunzip it first)" if os.path.isfile(path + ".gz") else ""
                raise DatasetError(f"{path}: file not found{hint}")
            out.append(path)
        return out

    def part(splits, prefix):
        labels = []
        for path in files(splits, "y"):
            with h5py.File(path, "r") as h5:
                if "y" not in h5:
                    raise DatasetError(f"{path}: no dataset 'y' (keys {list(h5.keys())})")
                labels.append(np.asarray(h5["y"]).reshape(-1).astype(np.int64))
        images = H5Images(files(splits, "x"), "x")
        labels = np.concatenate(labels)
        if len(images) != len(labels):
            raise DatasetError(f"{root}: {len(images)} images but {len(labels)} labels in the {'+'.join(splits)} files")
        return ImageSet(images, labels, [f"{prefix}{i}" for i in range(len(labels))])

    pool, test = part(("train", "valid"), "pool"), part(("test",), "test")
    sha = hashlib.sha256(pool.labels.tobytes() + test.labels.tobytes())
    for path in pool.images.files + test.images.files:
        sha.update(f"{os.path.basename(path)}:{os.path.getsize(path)}".encode())
    return LoadedDataset("patchcam", ("no tumour", "tumour"), pool, test, f"patchcam-h5-{sha.hexdigest()[:16]}")


def read_patchcam(root: str, problems: Optional[list] = None) -> LoadedDataset:
    """``train_labels.csv`` (id, label), ``train/<id>.tif``; ``sample_submission.csv`` lists the
    test ids, ``test/<id>.tif`` (labels hidden on Kaggle). A folder holding the original PCam
    HDF5 files (``camelyonpatch_level_2_split_*_{x,y}.h5``) is read as those instead."""
    _require_dir(root, "Kaggle histopathologic-cancer-detection: train/, train_labels.csv, test/, sample_submission.csv")
    if any(f.startswith("camelyonpatch_level_2_split_") for f in os.listdir(root)):
        return read_pcam_h5(root)
    pool = _id_split(root, os.path.join(root, "train_labels.csv"), "id", "label", "train", ".tif", 2, problems)
    test = _id_split(root, os.path.join(root, "sample_submission.csv"), "id", None, "test", ".tif", 2, problems)
    return _dataset("patchcam", root, ("no tumour", "tumour"), pool, test)


# --- Kermany chest X-ray (pneumonia) --------------------------------------------------------

PNEUMONIA_CLASSES = ("NORMAL", "PNEUMONIA")
_PERSON = re.compile(r"^(person\d+)_", re.IGNORECASE)
_SERIES = re.compile(r"^((?:normal2-)?im-\d+)", re.IGNORECASE)


def patient_of(filename: str) -> str:
    """``person59_virus_116.jpeg`` -> person59; ``NORMAL2-IM-0927-0001.jpeg`` -> normal2-im-0927;
    ``IM-0115-0001.jpeg`` -> im-0115 (a separate series from NORMAL2-IM-0115); else the name."""
    stem = os.path.basename(filename)
    match = _PERSON.match(stem) or _SERIES.match(stem)
    return match.group(1).lower() if match else stem.lower()


def _find_split_dir(root: str, split: str) -> str:
    """The shallowest ``<split>/`` holding NORMAL/ and PNEUMONIA/, never under __MACOSX/:
    unzipped copies often carry a nested chest_xray/chest_xray/ duplicate and macOS metadata."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__MACOSX" and not d.startswith("."))
        if os.path.basename(dirpath) == split and all(c in dirnames for c in PNEUMONIA_CLASSES):
            found.append(dirpath)
            dirnames[:] = []
    if not found:
        raise DatasetError(
            f"{root}: no chest_xray/{split}/ folder with NORMAL/ and PNEUMONIA/ inside "
            f"(expected the Kaggle chest-xray-pneumonia layout)"
        )
    return min(found, key=lambda p: (p.count(os.sep), p))


def _class_folders(split_dir: str, classes: tuple[str, ...], not_read: dict) -> tuple[list[str], list[int]]:
    """The images of each class folder and their labels; each file of another suffix counted in
    ``not_read`` (suffix -> files), never dropped unsaid. Hidden files (``.DS_Store``) are not
    data."""
    paths, labels = [], []
    for label, cls in enumerate(classes):
        folder = os.path.join(split_dir, cls)
        for name in sorted(os.listdir(folder)):
            if name.startswith(".") or os.path.isdir(os.path.join(folder, name)):
                continue
            if not name.lower().endswith(IMAGE_SUFFIXES):
                suffix = os.path.splitext(name)[1].lower() or "(no suffix)"
                not_read[suffix] = not_read.get(suffix, 0) + 1
                continue
            paths.append(os.path.join(folder, name))
            labels.append(label)
    return paths, labels


def read_pneumonia(root: str, problems: Optional[list] = None) -> LoadedDataset:
    """``chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg``: the pool is ``train`` (the paper's
    5,216; the 16-image ``val`` folder is not in it), patients parsed from the file names."""
    _require_dir(root, "Kermany chest X-ray: chest_xray/{train,test}/{NORMAL,PNEUMONIA}/")
    parts, not_read = [], {}
    for split in ("train", "test"):
        paths, labels = _class_folders(_find_split_dir(root, split), PNEUMONIA_CLASSES, not_read)
        ids = [os.path.relpath(p, root) for p in paths]
        parts.append(_image_set(paths, labels, ids, [patient_of(p) for p in paths]))
    data = _dataset("pneumonia", root, PNEUMONIA_CLASSES, *parts)
    data.not_read = not_read
    return data


# --- NIH ChestX-ray14 with the four-findings expert labels ---------------------------------

NIH_TRAIN_CSV = "four_findings_expert_labels_validation_labels.csv"
NIH_TEST_CSV = "four_findings_expert_labels_test_labels.csv"
NIH_FINDINGS = ("Pneumothorax", "Nodule or mass", "Airspace opacity", "Fracture")
NIH_CLASSES = ("pneumothorax", "nodule_or_mass", "airspace_opacity", "fracture", "other")


def _index_images(root: str) -> dict[str, list[str]]:
    """Basename -> paths of every image under root (the NIH images_0NN/images/ folders)."""
    index: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__MACOSX" and not d.startswith("."))
        for name in sorted(filenames):
            if name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith("."):
                index.setdefault(name, []).append(os.path.join(dirpath, name))
    return index


def _one_image(name: str, paths: list[str], where: str, problems: Optional[list]) -> Optional[str]:
    """The file a row's image name means: the only one, or the shallowest of identical copies
    (an archive unpacked twice); copies that differ are a problem naming them, not a guess."""
    if len(paths) == 1:
        return paths[0]
    if len({storage.file_sha256(p) for p in paths}) == 1:
        return min(paths, key=lambda p: (p.count(os.sep), p))
    _problem(problems, f"{where}: image {name!r} is {len(paths)} different files: {', '.join(paths)}; "
                       f"keep the one the row means")
    return None


NIH_NOT_ADJUDICATED = "not adjudicated (a blank finding)"
NIH_SEVERAL = "several findings (excluded by the paper)"


def nih_label(row: dict, where: str, problems: Optional[list]) -> int | str | None:
    """The 5-class label of a row; the reason (a string) for rows the paper leaves out; None
    for a row with an unknown value (a problem)."""
    values = [row[f].upper() for f in NIH_FINDINGS]
    if any(v == "" for v in values):
        return NIH_NOT_ADJUDICATED
    bad = [v for v in values if v not in ("YES", "NO")]
    if bad:
        _problem(problems, f"{where}: finding value {bad[0]!r} is neither YES nor NO")
        return None
    yes = [i for i, v in enumerate(values) if v == "YES"]
    if len(yes) > 1:
        return NIH_SEVERAL
    return yes[0] if yes else len(NIH_FINDINGS)


def read_nih(root: str, problems: Optional[list] = None) -> LoadedDataset:
    """Train on the expert labels' validation file, test on its test file; images found by
    ``Image Index`` anywhere under root; patients from ``Patient ID``."""
    _require_dir(root, f"NIH ChestX-ray14 images and {NIH_TRAIN_CSV}, {NIH_TEST_CSV}")
    index = _index_images(root)
    parts, excluded = [], {}
    for name in (NIH_TRAIN_CSV, NIH_TEST_CSV):
        path = os.path.join(root, name)
        rows = read_csv(path, ("Image Index", "Patient ID") + NIH_FINDINGS, id_column="Image Index", problems=problems)
        paths, labels, ids, groups = [], [], [], []
        for line, row in rows:
            label = nih_label(row, f"{path} line {line}", problems)
            if isinstance(label, str):
                key = f"{name}: {label}"
                excluded[key] = excluded.get(key, 0) + 1
                continue
            if label is None:
                continue
            found = index.get(row["Image Index"])
            if not found:
                _problem(problems, f"{path} line {line}: image {row['Image Index']!r} not found under {root}")
                continue
            image = _one_image(row["Image Index"], found, f"{path} line {line}", problems)
            if image is None:
                continue
            paths.append(image)
            labels.append(label)
            ids.append(row["Image Index"])
            groups.append(row["Patient ID"])
        parts.append(_image_set(paths, labels, ids, groups))
    data = _dataset("nih", root, NIH_CLASSES, *parts)
    data.excluded = excluded
    return data


# --- MedMNIST (.npz) -------------------------------------------------------------------------


def read_medmnist(root: str, problems: Optional[list] = None) -> LoadedDataset:
    """A MedMNIST ``.npz`` (``--data medmnist=FILE.npz``): pool = train + val, test = test."""
    import torch

    path = root
    if os.path.isdir(root):
        files = sorted(f for f in os.listdir(root) if f.endswith(".npz"))
        if len(files) != 1:
            raise DatasetError(f"{root}: expected exactly one MedMNIST .npz file, found {files}")
        path = os.path.join(root, files[0])
    if not os.path.isfile(path):
        raise DatasetError(f"{path}: file not found (expected a MedMNIST .npz)")
    with np.load(path, allow_pickle=False) as npz:
        keys = [f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "labels")]
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise DatasetError(f"{path}: keys {missing} missing; a MedMNIST file holds {', '.join(keys)}")
        arrays = {k: npz[k] for k in keys}
    for split in ("train", "val", "test"):
        labels = arrays[f"{split}_labels"]
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise DatasetError(f"{path}: {split}_labels has {labels.shape[1]} columns: multi-label sets are not supported")

    def to_set(splits: tuple[str, ...], prefix: str) -> ImageSet:
        images = np.concatenate([arrays[f"{s}_images"] for s in splits])
        labels = np.concatenate([arrays[f"{s}_labels"].reshape(-1) for s in splits]).astype(np.int64)
        tensor = torch.from_numpy(images)
        tensor = tensor.unsqueeze(1).expand(-1, 3, -1, -1) if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2)
        return ImageSet(tensor.contiguous(), labels, [f"{prefix}{i}" for i in range(len(labels))])

    pool, test = to_set(("train", "val"), "pool"), to_set(("test",), "test")
    n_classes = int(max(pool.labels.max(), test.labels.max())) + 1
    sha = hashlib.sha256()
    for k in keys:
        sha.update(arrays[k].tobytes())
    return LoadedDataset("medmnist", tuple(str(c) for c in range(n_classes)), pool, test, f"medmnist-{sha.hexdigest()[:16]}")


# --- the user's own data ---------------------------------------------------------------------


def _folder_split(root: str, split: str, problems: Optional[list], classes: Optional[tuple[str, ...]],
                  not_read: dict):
    csv_path = os.path.join(root, f"{split}.csv")
    if os.path.isfile(csv_path):
        rows = read_csv(csv_path, ("path", "label"), id_column="path", problems=problems)
        names = classes or tuple(sorted({r["label"] for _, r in rows if r["label"]}))
        paths, labels = [], []
        for line, row in rows:
            if not row["label"]:  # not a class '' of its own
                _problem(problems, f"{csv_path} line {line}: label is blank")
                continue
            if row["label"] not in names:
                _problem(problems, f"{csv_path} line {line}: label {row['label']!r} is not one of {list(names)}")
                continue
            path = inside(root, row["path"], f"{csv_path} line {line}", problems)
            if path is None:
                continue
            paths.append(path)
            labels.append(names.index(row["label"]))
        paths, labels = _keep_existing(problems, split, paths, labels)
        return names, paths, labels
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise DatasetError(
            f"{root}: neither {split}.csv (columns path,label) nor a {split}/<class>/ image folder"
        )
    names = classes or tuple(sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)) and not d.startswith(".")))
    unknown = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)) and d not in names and not d.startswith("."))
    for d in unknown:
        _problem(problems, f"{os.path.join(folder, d)}: class folder not among the training classes {list(names)}")
    present = tuple(c for c in names if os.path.isdir(os.path.join(folder, c)))
    paths, labels = _class_folders(folder, present, not_read)
    labels = [names.index(present[i]) for i in labels]
    return names, paths, labels


def read_folder(root: str, problems: Optional[list] = None) -> LoadedDataset:
    """The user's data: ``train/<class>/*`` and ``test/<class>/*`` image folders, or
    ``train.csv`` and ``test.csv`` with columns ``path,label`` (paths relative to root)."""
    _require_dir(root, "train/ and test/ class folders, or train.csv and test.csv (path,label)")
    not_read: dict = {}
    classes, paths, labels = _folder_split(root, "train", problems, None, not_read)
    if len(classes) < 2:
        raise DatasetError(f"{root}: the training set has {len(classes)} class(es); at least 2 are needed")
    _, test_paths, test_labels = _folder_split(root, "test", problems, classes, not_read)
    pool = _image_set(paths, labels, [os.path.relpath(p, root) for p in paths])
    test = _image_set(test_paths, test_labels, [os.path.relpath(p, root) for p in test_paths])
    data = _dataset("folder", root, classes, pool, test)
    data.not_read = not_read
    return data
