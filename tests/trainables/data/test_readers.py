import os

import numpy as np
import pytest

from tests import layouts
from trainables.data.datasets import DatasetError, load_dataset
from trainables.data.images import FileImages, ImageDecodeError
from trainables.data.readers import NIH_CLASSES, patient_of


def test_aptos_reads_its_kaggle_layout(tmp_path):
    ids = layouts.aptos(str(tmp_path))
    data = load_dataset("aptos", str(tmp_path))
    assert data.pool.ids == ids and data.pool.labels.tolist() == [0, 1, 2, 3, 4, 0, 0, 2, 1, 4]
    assert len(data.test) == 3 and (data.test.labels == -1).all()
    assert isinstance(data.pool.images, FileImages)
    assert data.pool.images[0].shape == (3, 260, 300) and data.pool.groups is None


def test_patchcam_reads_tif_patches(tmp_path):
    layouts.patchcam(str(tmp_path))
    data = load_dataset("patchcam", str(tmp_path))
    assert len(data.pool) == 6 and np.bincount(data.pool.labels).tolist() == [3, 3]
    assert data.pool.images[2].shape == (3, 96, 96) and len(data.test) == 2


def test_pneumonia_pool_is_train_only_with_patients_and_no_debris(tmp_path):
    layouts.pneumonia(str(tmp_path))
    data = load_dataset("pneumonia", str(tmp_path))
    assert len(data.pool) == 9 and np.bincount(data.pool.labels).tolist() == [4, 5]  # no val, no duplicates
    assert len(data.test) == 3 and (data.test.labels >= 0).all()
    assert not any("__MACOSX" in p or "chest_xray/chest_xray" in p for p in data.pool.images.paths)
    assert data.pool.images[0].shape[0] == 1  # greyscale stays one channel until the transform
    assert sorted(set(data.pool.groups)) == ["im-0115", "im-0117", "normal2-im-0115", "person1", "person3", "person59", "person7"]


@pytest.mark.parametrize("dataset", ["pneumonia", "nih", "aptos", "patchcam"])
@pytest.mark.parametrize("train", [False, True])
def test_a_greyscale_image_transforms_to_the_values_of_its_three_channel_copy(tmp_path, dataset, train):
    """Greyscale files decode to one channel and the pipeline makes them RGB after resizing,
    cropping and rotating: the very floats the RGB conversion before them gave (and the cache
    key's transform text is unchanged, so caches written before serve still)."""
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    from trainables.data.datasets import get_dataset_info
    from trainables.data.images import decode_file
    from trainables.data.transforms import build_transform, describe
    from trainables.models.backbones import get_backbone_info

    path = str(tmp_path / "x.jpeg")
    layouts.image(path, size=(300, 260), mode="L")
    grey = decode_file(path)
    with Image.open(path) as img:
        rgb = torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1)
    transform = build_transform(get_dataset_info(dataset), get_backbone_info("random"), train)
    before = v2.Compose([t for t in transform.transforms if not isinstance(t, v2.RGB)])  # the pipeline before RGB()
    torch.manual_seed(3)
    out = transform(grey)
    torch.manual_seed(3)
    assert grey.shape[0] == 1 and out.shape[0] == 3 and torch.equal(out, before(rgb))
    assert describe(transform) == describe(before)


@pytest.mark.parametrize(
    "name,patient",
    [("person59_virus_116.jpeg", "person59"), ("IM-0115-0001.jpeg", "im-0115"),
     ("NORMAL2-IM-0927-0001.jpeg", "normal2-im-0927"), ("odd.jpeg", "odd.jpeg")],
)
def test_patient_parsing(name, patient):
    assert patient_of(name) == patient


def test_nih_five_classes_with_the_papers_exclusions(tmp_path):
    layouts.nih(str(tmp_path))
    data = load_dataset("nih", str(tmp_path))
    assert data.classes == NIH_CLASSES
    assert data.pool.ids == ["00000001_000.png", "00000001_001.png", "00000002_000.png", "00000003_000.png",
                             "00000004_000.png", "00000007_000.png"]
    assert [NIH_CLASSES[i] for i in data.pool.labels] == [
        "pneumothorax", "nodule_or_mass", "airspace_opacity", "fracture", "other", "other"]
    assert data.pool.groups.tolist() == ["1", "1", "2", "3", "4", "7"]
    assert len(data.test) == 2 and data.test.labels.tolist() == [1, 4]
    assert data.excluded == {
        "four_findings_expert_labels_validation_labels.csv: several findings (excluded by the paper)": 1,
        "four_findings_expert_labels_validation_labels.csv: not adjudicated (a blank finding)": 1,
    }


def test_medmnist_pool_is_train_plus_val(tmp_path):
    path = tmp_path / "pneumoniamnist.npz"
    layouts.medmnist(str(path))
    data = load_dataset("medmnist", str(path))
    assert len(data.pool) == 26 and len(data.test) == 8 and data.classes == ("0", "1")
    assert tuple(data.pool.images.shape[1:]) == (3, 28, 28)


def test_medmnist_multilabel_is_refused(tmp_path):
    path = tmp_path / "chestmnist.npz"
    layouts.medmnist(str(path))
    arrays = dict(np.load(path))
    arrays["train_labels"] = np.zeros((20, 14), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match="14 columns: multi-label"):
        load_dataset("medmnist", str(path))


def test_folder_image_folders_and_csv(tmp_path):
    layouts.folder(str(tmp_path / "a"))
    data = load_dataset("folder", str(tmp_path / "a"))
    assert data.classes == ("benign", "malignant") and len(data.pool) == 8 and len(data.test) == 4
    root = tmp_path / "b"
    layouts.folder(str(root))
    layouts.write_csv(str(root / "train.csv"), ["path", "label"],
                      [[f"train/benign/benign_{i}.png", "benign"] for i in range(3)] + [["train/malignant/malignant_0.png", "malignant"]])
    data = load_dataset("folder", str(root))
    assert np.bincount(data.pool.labels).tolist() == [3, 1]


# --- bad input: each a named error --------------------------------------------------------------


def test_wrong_csv_header_names_file_and_columns(tmp_path):
    layouts.aptos(str(tmp_path))
    layouts.write_csv(str(tmp_path / "train.csv"), ["id", "grade"], [["a", 1]])
    with pytest.raises(DatasetError, match="train.csv: header \\['id', 'grade'\\] lacks column\\(s\\) \\['id_code', 'diagnosis'\\]"):
        load_dataset("aptos", str(tmp_path))


def test_duplicated_ids_are_named(tmp_path):
    layouts.aptos(str(tmp_path))
    layouts.write_csv(str(tmp_path / "train.csv"), ["id_code", "diagnosis"], [["000000000001", 0], ["000000000001", 1]])
    with pytest.raises(DatasetError, match="id_code '000000000001' on line 3 repeats line 2"):
        load_dataset("aptos", str(tmp_path))


def test_label_out_of_range_is_named(tmp_path):
    layouts.aptos(str(tmp_path), labels=(0, 7))
    with pytest.raises(DatasetError, match="train.csv line 3: diagnosis '7' is not a class 0..4"):
        load_dataset("aptos", str(tmp_path))


def test_ids_escaping_the_root_are_refused(tmp_path):
    layouts.aptos(str(tmp_path))
    layouts.write_csv(str(tmp_path / "train.csv"), ["id_code", "diagnosis"], [["../../etc/passwd", 0]])
    with pytest.raises(DatasetError, match="escapes the data root"):
        load_dataset("aptos", str(tmp_path))


def test_missing_images_are_listed(tmp_path):
    ids = layouts.aptos(str(tmp_path))
    os.remove(tmp_path / "train_images" / f"{ids[3]}.png")
    with pytest.raises(DatasetError, match=f"1 train_images image\\(s\\) missing: .*{ids[3]}.png"):
        load_dataset("aptos", str(tmp_path))
    problems = []
    data = load_dataset("aptos", str(tmp_path), problems)
    assert len(data.pool) == 9 and len(problems) == 1 and ids[3] in problems[0]


def test_missing_root_and_layout(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("aptos", str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="no chest_xray/train/ folder with NORMAL/ and PNEUMONIA/"):
        load_dataset("pneumonia", str(tmp_path))


def test_unknown_nih_value_is_a_problem(tmp_path):
    layouts.nih(str(tmp_path))
    rows = [layouts.nih_row("00000001_000.png", 1, pneumo="MAYBE")]
    layouts.write_csv(str(tmp_path / "four_findings_expert_labels_validation_labels.csv"), layouts.NIH_HEADER, rows)
    with pytest.raises(DatasetError, match="line 2: finding value 'MAYBE' is neither YES nor NO"):
        load_dataset("nih", str(tmp_path))


def test_truncated_image_is_a_named_decode_error(tmp_path):
    layouts.image(str(tmp_path / "a.png"))
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "a.png").write_bytes(data[: len(data) // 3])
    with pytest.raises(ImageDecodeError, match="a.png: not a readable image"):
        FileImages([str(tmp_path / "a.png")])[0]


def test_original_pcam_hdf5_files(tmp_path):
    import pickle

    import h5py

    layouts.pcam_h5(str(tmp_path))
    data = load_dataset("patchcam", str(tmp_path))
    assert len(data.pool) == 8 and len(data.test) == 3 and (data.test.labels >= 0).all()
    with h5py.File(tmp_path / "camelyonpatch_level_2_split_valid_x.h5") as f:
        expected = f["x"][1]
    image = data.pool.images[7]  # the second image of the valid file
    assert image.shape == (3, 96, 96) and np.array_equal(image.permute(1, 2, 0).numpy(), expected)
    subset = pickle.loads(pickle.dumps(data.pool.images[[7, 0]]))  # crosses into Ray workers
    assert np.array_equal(subset[0].numpy(), image.numpy())


def test_gzipped_pcam_files_are_named(tmp_path):
    layouts.pcam_h5(str(tmp_path))
    os.rename(tmp_path / "camelyonpatch_level_2_split_test_x.h5", tmp_path / "camelyonpatch_level_2_split_test_x.h5.gz")
    with pytest.raises(DatasetError, match="split_test_x.h5: file not found \\(it is published gzipped: gunzip it first\\)"):
        load_dataset("patchcam", str(tmp_path))
