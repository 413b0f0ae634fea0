"""Small data sets written in the exact public layouts of shared/notes/formats.md."""

from __future__ import annotations

import csv
import os

import numpy as np
from PIL import Image

RNG = np.random.default_rng(0)


def image(path, size=(40, 32), mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    channels = 3 if mode == "RGB" else 1
    pixels = RNG.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)


def write_csv(path, header, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def hexid(i, width):
    return f"{i:0{width}x}"


def aptos(root, labels=(0, 1, 2, 3, 4, 0, 0, 2, 1, 4), n_test=3):
    ids = [hexid(i + 1, 12) for i in range(len(labels))]
    write_csv(os.path.join(root, "train.csv"), ["id_code", "diagnosis"], zip(ids, labels))
    for i in ids:
        image(os.path.join(root, "train_images", f"{i}.png"), size=(300, 260))
    test_ids = [hexid(1000 + i, 12) for i in range(n_test)]
    write_csv(os.path.join(root, "test.csv"), ["id_code"], [[i] for i in test_ids])
    write_csv(os.path.join(root, "sample_submission.csv"), ["id_code", "diagnosis"], [[i, 0] for i in test_ids])
    for i in test_ids:
        image(os.path.join(root, "test_images", f"{i}.png"))
    return ids


def patchcam(root, labels=(0, 1, 0, 1, 1, 0), n_test=2):
    ids = [hexid(i + 1, 40) for i in range(len(labels))]
    write_csv(os.path.join(root, "train_labels.csv"), ["id", "label"], zip(ids, labels))
    for i in ids:
        image(os.path.join(root, "train", f"{i}.tif"), size=(96, 96))
    test_ids = [hexid(500 + i, 40) for i in range(n_test)]
    write_csv(os.path.join(root, "sample_submission.csv"), ["id", "label"], [[i, 0] for i in test_ids])
    for i in test_ids:
        image(os.path.join(root, "test", f"{i}.tif"), size=(96, 96))
    return ids


PNEUMONIA_TRAIN = {
    "NORMAL": ["IM-0115-0001.jpeg", "IM-0115-0002.jpeg", "NORMAL2-IM-0115-0001.jpeg", "IM-0117-0001.jpeg"],
    "PNEUMONIA": ["person1_virus_6.jpeg", "person1_bacteria_1.jpeg", "person59_virus_116.jpeg", "person3_bacteria_10.jpeg", "person7_virus_2.jpeg"],
}
PNEUMONIA_TEST = {"NORMAL": ["IM-0001-0001.jpeg"], "PNEUMONIA": ["person100_virus_184.jpeg", "person101_bacteria_486.jpeg"]}


def pneumonia(root, with_debris=True):
    base = os.path.join(root, "chest_xray")
    for split, files in (("train", PNEUMONIA_TRAIN), ("test", PNEUMONIA_TEST), ("val", {"NORMAL": ["NORMAL2-IM-1427-0001.jpeg"], "PNEUMONIA": ["person1946_bacteria_4874.jpeg"]})):
        for cls, names in files.items():
            for name in names:
                image(os.path.join(base, split, cls, name), mode="L")
    if with_debris:
        # What real unzipped copies carry: macOS metadata and a nested duplicate of the tree.
        for cls, names in PNEUMONIA_TRAIN.items():
            for name in names:
                image(os.path.join(root, "__MACOSX", "chest_xray", "train", cls, "._" + name), mode="L")
                image(os.path.join(base, "chest_xray", "train", cls, name), mode="L")
        image(os.path.join(base, "train", "NORMAL", ".DS_Store.jpeg"), mode="L")


NIH_HEADER = ["Image Index", "Patient ID", "Follow-up #", "Patient Age", "Patient Gender", "View Position",
              "Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass", "Extra column"]


def nih_row(index, patient, fracture="NO", pneumo="NO", opacity="NO", nodule="NO"):
    return [index, patient, 0, 50, "M", "PA", fracture, pneumo, opacity, nodule, "x"]


def nih(root):
    train = [
        nih_row("00000001_000.png", 1, pneumo="YES"),
        nih_row("00000001_001.png", 1, nodule="YES"),
        nih_row("00000002_000.png", 2, opacity="YES"),
        nih_row("00000003_000.png", 3, fracture="YES"),
        nih_row("00000004_000.png", 4),  # no finding: "other"
        nih_row("00000005_000.png", 5, pneumo="YES", opacity="YES"),  # several findings: excluded
        nih_row("00000006_000.png", 6, fracture=""),  # not adjudicated: excluded
        nih_row("00000007_000.png", 7),
    ]
    test = [nih_row("00000100_000.png", 100, nodule="YES"), nih_row("00000101_000.png", 101)]
    write_csv(os.path.join(root, "four_findings_expert_labels_validation_labels.csv"), NIH_HEADER, train)
    write_csv(os.path.join(root, "four_findings_expert_labels_test_labels.csv"), NIH_HEADER, test)
    for i, row in enumerate(train + test):
        image(os.path.join(root, f"images_{i % 2 + 1:03d}", "images", row[0]), mode="L")


def nih_pool(root, usable=30, n_test=10):
    """NIH in its public layout with ``usable`` usable training rows (the 5 classes in turn,
    one patient each) beside two the protocol leaves out, and ``n_test`` test rows."""
    findings = ({"pneumo": "YES"}, {"nodule": "YES"}, {"opacity": "YES"}, {"fracture": "YES"}, {})
    train = [nih_row(f"{i + 1:08d}_000.png", i + 1, **findings[i % 5]) for i in range(usable)]
    train += [nih_row("00009998_000.png", 9998, pneumo="YES", opacity="YES"),  # several findings
              nih_row("00009999_000.png", 9999, fracture="")]  # not adjudicated
    test = [nih_row(f"{20000 + i:08d}_000.png", 20000 + i, **findings[i % 5]) for i in range(n_test)]
    write_csv(os.path.join(root, "four_findings_expert_labels_validation_labels.csv"), NIH_HEADER, train)
    write_csv(os.path.join(root, "four_findings_expert_labels_test_labels.csv"), NIH_HEADER, test)
    for i, row in enumerate(train + test):
        image(os.path.join(root, f"images_{i % 3 + 1:03d}", "images", row[0]), mode="L")


def medmnist(path, n=(20, 6, 8), size=28, classes=2, rgb=False):
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        shape = (count, size, size, 3) if rgb else (count, size, size)
        arrays[f"{split}_images"] = RNG.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(count) % classes).reshape(-1, 1).astype(np.uint8)
    np.savez(path, **arrays)


def folder(root, classes=("benign", "malignant"), per_class=4):
    for split, n in (("train", per_class), ("test", 2)):
        for cls in classes:
            for i in range(n):
                image(os.path.join(root, split, cls, f"{cls}_{i}.png"))


def pcam_h5(root, counts=(("train", 6), ("valid", 2), ("test", 3))):
    import h5py

    os.makedirs(root, exist_ok=True)
    for split, n in counts:
        with h5py.File(os.path.join(root, f"camelyonpatch_level_2_split_{split}_x.h5"), "w") as f:
            f.create_dataset("x", data=RNG.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8))
        with h5py.File(os.path.join(root, f"camelyonpatch_level_2_split_{split}_y.h5"), "w") as f:
            f.create_dataset("y", data=(np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1))


def mixed_jpegs(root):
    """A folder data set of grey and colour JPEGs of several sizes, PNGs, a CMYK JPEG and a JPEG
    with an EXIF orientation."""
    rng = np.random.default_rng(1)
    for split, n in (("train", 7), ("test", 2)):
        for cls in ("a", "b"):
            os.makedirs(os.path.join(root, split, cls))
            for i in range(n):
                grey = i % 2 == 0
                small = rng.integers(0, 256, (12 + 3 * (i % 3), 16) + (() if grey else (3,)), dtype=np.uint8)
                img = Image.fromarray(small).resize((120 + 10 * (i % 3), 100))
                if i == 5:
                    img.convert("CMYK").save(os.path.join(root, split, cls, f"{i}.jpg"))
                elif i == 3:  # turned by its EXIF orientation by some decoders, not by Pillow
                    exif = Image.Exif()
                    exif[0x0112] = 6
                    img.save(os.path.join(root, split, cls, f"{i}.jpg"), exif=exif.tobytes())
                else:
                    img.save(os.path.join(root, split, cls, f"{i}.{'png' if i % 3 == 2 else 'jpg'}"))


def dicom(path, pixels, photometric="MONOCHROME2", bits_stored=12, window=None, voi_lut=None, rescale=None,
          frames=1, signed=False):
    """A DICOM file as a modality writes it (pydicom, explicit VR little endian): ``pixels`` the
    stored values (rows x columns; frames x rows x columns for ``frames`` > 1); ``window`` a
    (center, width) VOI window; ``voi_lut`` (first mapped value, bits per entry, table) a VOI
    LUT Sequence; ``rescale`` (slope, intercept) the Modality LUT."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "DX", "P0001"
    pixels = np.asarray(pixels)
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        first, bits, table = voi_lut
        item = Dataset()
        item.add_new(0x00283002, "US", [len(table), first, bits])  # LUT Descriptor (VR US or SS)
        item.add_new(0x00283006, "US", [int(v) for v in table])  # LUT Data (VR US or OW)
        ds.VOILUTSequence = Sequence([item])
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = pixels.astype(np.int16 if signed else np.uint16).tobytes()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def file_state(path):
    """(inode, mtime, sha256) of a file: what changes when it is rewritten, even in place."""
    import hashlib

    with open(path, "rb") as f:
        return os.stat(path).st_ino, os.stat(path).st_mtime_ns, hashlib.sha256(f.read()).hexdigest()


class RunsCodeWhenUnpickled:
    """What a hostile weight or checkpoint file holds: unpickling it (``torch.load`` without
    ``weights_only``) calls Path.touch on ``marker``, so a test can tell whether code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.marker),)
