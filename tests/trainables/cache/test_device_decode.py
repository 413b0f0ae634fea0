"""JPEG files decoded and transformed on the extraction device (trainables/cache/device_decode.py),
here on the CPU (TorchCodec's libjpeg-turbo: the same path as nvJPEG on a GPU, but for the
decoder), against the workers' path (Pillow in DataLoader workers). tests/gpu/ checks nvJPEG."""

import os

import numpy as np
import pytest
import torch

from tests import layouts
from trainables.cache import device_decode
from trainables.cache.embeddings import _footer, extract_if_missing, load_embeddings
from trainables.data.images import ImageDecodeError

# Same decoder family, same transform: only libjpeg-turbo builds may differ (Pillow's and
# TorchCodec's wheels each bundle one), by a level in a few pixels at most.
RELATIVE_L2 = 1e-3


def _extract(dataset, root, cache, decode, view=0):
    paths, fresh = extract_if_missing(dataset, root, "test_resnet", None, str(cache), view=view, decode=decode,
                                      progress=False, workers=0)
    assert fresh
    return paths, load_embeddings(paths)


def _relative_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float((np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)).max())


@pytest.mark.parametrize("dataset, write, view", [("pneumonia", layouts.pneumonia, 0), ("pneumonia", layouts.pneumonia, 1),
                                                   ("folder", layouts.mixed_jpegs, 0)])
def test_device_decoding_gives_the_workers_features(tmp_path, dataset, write, view):
    """Grey X-ray JPEGs (pneumonia's layout), and a mix of grey and colour JPEGs of several sizes,
    PNGs, a CMYK JPEG and one with an EXIF orientation (both of which the device path hands to
    Pillow: the first has four channels, the second TorchCodec would turn); the evaluation view and an
    augmented one (each image's crop, flip and angle drawn from its row's seed on either path)."""
    root = str(tmp_path / "data")
    write(root)
    paths, device = _extract(dataset, root, tmp_path / "device", "device", view)
    _, workers = _extract(dataset, root, tmp_path / "workers", "workers", view)
    assert len(device["pool"].rows) and (view > 0 or len(device["test"].rows))
    for split in device:
        assert np.array_equal(device[split].rows, workers[split].rows)
        if not len(device[split].rows):
            continue
        assert _relative_l2(device[split].features, workers[split].features) <= RELATIVE_L2, split
    assert _footer(paths[0])[0]["decode"].startswith("device: JPEG by libjpeg-turbo (TorchCodec)")


def test_views_extracted_together_on_the_device_decode_each_jpeg_once(tmp_path, monkeypatch, fresh_decoder):
    from trainables.cache.embeddings import extract_views_if_missing

    root = str(tmp_path / "data")
    layouts.pneumonia(root)
    real, _ = device_decode._load_decode_jpeg()
    decoded = []

    def counting(source, **kwargs):
        decoded.extend(source if isinstance(source, list) else [source])
        return real(source, **kwargs)

    monkeypatch.setattr(device_decode, "_load_decode_jpeg", lambda: (counting, ""))
    out = extract_views_if_missing("pneumonia", root, "test_resnet", None, str(tmp_path / "device"), decode="device",
                                   views={0: None, 1: None, 2: None}, progress=False, workers=2)
    # The probe, then the 9 pool and 3 test X-rays once each, in the main process: the two
    # DataLoader workers only read the files.
    assert len(decoded) == 1 + 9 + 3
    for view in (0, 1, 2):
        _, alone = _extract("pneumonia", root, tmp_path / f"workers{view}", "workers", view)
        together = load_embeddings(out[view][0])
        assert _relative_l2(together["pool"].features, alone["pool"].features) <= RELATIVE_L2


def test_augmented_view_on_the_device_differs_from_the_evaluation_view(tmp_path):
    """The tolerance above is tight enough to tell views apart: the seeded draws do matter."""
    root = str(tmp_path / "data")
    layouts.pneumonia(root)
    _, evaluation = _extract("pneumonia", root, tmp_path / "c0", "device", 0)
    _, augmented = _extract("pneumonia", root, tmp_path / "c1", "device", 1)
    assert _relative_l2(augmented["pool"].features, evaluation["pool"].features) > 100 * RELATIVE_L2


def test_without_torchcodec_the_device_choice_decodes_in_the_workers_and_says_so(tmp_path, monkeypatch, capsys):
    root = str(tmp_path / "data")
    layouts.pneumonia(root)
    _, workers = _extract("pneumonia", root, tmp_path / "workers", "workers")
    monkeypatch.setattr(device_decode, "jpeg_decoder", lambda device: (None, "TorchCodec not loaded (ImportError: gone)"))
    paths, device = _extract("pneumonia", root, tmp_path / "device", "device")
    assert np.array_equal(np.asarray(device["pool"].features), np.asarray(workers["pool"].features))
    assert _footer(paths[0])[0]["decode"] == "workers (Pillow)"
    assert "JPEG files decoded by the workers: TorchCodec not loaded (ImportError: gone)" in capsys.readouterr().err


@pytest.fixture
def fresh_decoder():
    """jpeg_decoder's probe result cleared before and after: a test swaps what it loads."""
    device_decode.jpeg_decoder.cache_clear()
    yield
    device_decode.jpeg_decoder.cache_clear()


def test_a_decoder_that_fails_its_probe_sends_the_whole_extraction_to_the_workers(tmp_path, monkeypatch, capsys,
                                                                                   fresh_decoder):
    """nvJPEG failing to start (an old driver) is found on one small JPEG before the first
    batch: every image then takes the workers' path, not Pillow one by one in the main process."""
    root = str(tmp_path / "data")
    layouts.pneumonia(root)

    def broken(source, **kwargs):
        raise RuntimeError("nvjpegCreate failed: NVJPEG_STATUS_ARCH_MISMATCH")

    monkeypatch.setattr(device_decode, "_load_decode_jpeg", lambda: (broken, ""))
    paths, device = _extract("pneumonia", root, tmp_path / "device", "device")
    _, workers = _extract("pneumonia", root, tmp_path / "workers", "workers")
    assert np.array_equal(np.asarray(device["pool"].features), np.asarray(workers["pool"].features))
    assert _footer(paths[0])[0]["decode"] == "workers (Pillow)"
    assert ("JPEG files decoded by the workers: TorchCodec's decode_jpeg failed on cpu "
            "(RuntimeError: nvjpegCreate failed: NVJPEG_STATUS_ARCH_MISMATCH)") in capsys.readouterr().err


def test_a_jpeg_the_device_decoder_rejects_is_decoded_by_pillow_alone(tmp_path, monkeypatch):
    """One image failing fails nvJPEG's whole batch: the batch is decoded one by one and the
    rejected file alone goes to Pillow."""
    root = str(tmp_path / "data")
    layouts.pneumonia(root)
    rejected = os.path.join(root, "chest_xray", "train", "NORMAL", "IM-0115-0001.jpeg")
    assert os.path.exists(rejected)
    with open(rejected, "rb") as f:
        bad = torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
    real, _ = device_decode.jpeg_decoder("cpu")
    calls = {"batch": 0, "one": 0}

    def picky(source, **kwargs):
        sources = source if isinstance(source, list) else [source]
        calls["batch" if isinstance(source, list) else "one"] += 1
        if any(len(s) == len(bad) and torch.equal(s, bad) for s in sources):
            raise RuntimeError("Unsupported JPEG process")
        return real(source, **kwargs)

    monkeypatch.setattr(device_decode, "jpeg_decoder", lambda device: (picky, ""))
    _, device = _extract("pneumonia", root, tmp_path / "device", "device")
    _, workers = _extract("pneumonia", root, tmp_path / "workers", "workers")
    assert calls["batch"] >= 1 and calls["one"] >= 2
    assert _relative_l2(device["pool"].features, workers["pool"].features) <= RELATIVE_L2


def test_a_truncated_jpeg_is_a_named_error_on_the_device_path(tmp_path):
    root = str(tmp_path / "data")
    layouts.pneumonia(root)
    broken = os.path.join(root, "chest_xray", "train", "PNEUMONIA", "person1_virus_6.jpeg")
    with open(broken, "rb") as f:
        data = f.read()
    with open(broken, "wb") as f:
        f.write(data[: len(data) // 3])
    with pytest.raises(ImageDecodeError, match="person1_virus_6.jpeg"):
        extract_if_missing("pneumonia", root, "test_resnet", None, str(tmp_path / "c"), decode="device",
                           progress=False, workers=0)


def test_decode_choices(monkeypatch):
    from sweep.cli import DECODE_CHOICES

    assert DECODE_CHOICES == device_decode.DECODE_CHOICES
    assert device_decode.resolve_decode("auto", torch.device("cpu")) == "workers"
    assert device_decode.resolve_decode("auto", torch.device("cuda")) == "device"
    assert device_decode.resolve_decode("workers", torch.device("cuda")) == "workers"
    with pytest.raises(device_decode.DecodeChoiceError, match="decode 'gpu': expected one of auto, workers, device"):
        device_decode.resolve_decode("gpu", torch.device("cpu"))


def test_images_in_memory_take_the_workers_path_whatever_the_choice(tmp_path):
    paths, _ = extract_if_missing("digits", None, "test_resnet", None, str(tmp_path), decode="device",
                                  progress=False, workers=0)
    assert _footer(paths[0])[0]["decode"] == "workers (Pillow)"
