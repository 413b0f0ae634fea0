"""Decoding as radiology data arrives: DICOM (both photometric interpretations, with and without
a VOI LUT or window, a Modality LUT, several frames refused), 16-bit PNG and TIFF, WebP."""

import numpy as np
import pytest
from PIL import Image

from tests import layouts
from trainables.data.images import ImageDecodeError, decode_file

STORED = np.array([[0, 1000, 2000], [3000, 4000, 4095]])  # 12-bit values as a detector stores them


def _pixels(path) -> np.ndarray:
    image = decode_file(str(path))
    assert image.dtype.is_floating_point is False and image.shape[0] == 1  # one grey channel
    return image[0].numpy().astype(int)


def test_a_dicom_without_a_window_is_shown_over_its_own_range(tmp_path):
    layouts.dicom(tmp_path / "a.dcm", STORED)
    assert _pixels(tmp_path / "a.dcm").tolist() == [[0, 62, 125], [187, 249, 255]]


def test_monochrome1_is_inverted_so_that_bright_is_high(tmp_path):
    layouts.dicom(tmp_path / "m2.dcm", STORED)
    layouts.dicom(tmp_path / "m1.dcm", STORED, photometric="MONOCHROME1")
    assert (_pixels(tmp_path / "m1.dcm") == 255 - _pixels(tmp_path / "m2.dcm")).all()


def test_a_window_keeps_its_own_contrast_over_the_stored_bits(tmp_path):
    # LINEAR window (PS3.3 C.11.2.1.2.1), center 2000, width 2000: 1000.5 and below black,
    # 2999.5 and above white, the rest linear in between; output range 0..4095 (12 bits).
    layouts.dicom(tmp_path / "w.dcm", STORED, window=(2000, 2000))
    center, width = 2000 - 0.5, 2000 - 1
    expected = np.clip(((STORED - center) / width + 0.5), 0, 1) * 255
    assert _pixels(tmp_path / "w.dcm").tolist() == np.rint(expected).astype(int).tolist()


def test_a_voi_lut_sequence_is_applied_and_scaled_over_its_bit_depth(tmp_path):
    # An 8-bit table of 4096 entries, reversed: entry 1000 must be read as entry 1000 (pydicom
    # 3.0.2 alone indexes it as entry 232).
    table = np.linspace(0, 255, 4096).astype(int)[::-1]
    layouts.dicom(tmp_path / "lut.dcm", STORED, voi_lut=(0, 8, table))
    assert _pixels(tmp_path / "lut.dcm").tolist() == [[int(table[v]) for v in row] for row in STORED]
    layouts.dicom(tmp_path / "lut1.dcm", STORED, voi_lut=(0, 8, table), photometric="MONOCHROME1")
    assert (_pixels(tmp_path / "lut1.dcm") == 255 - _pixels(tmp_path / "lut.dcm")).all()


def test_ct_values_through_the_modality_lut_then_a_soft_tissue_window(tmp_path):
    # Signed stored values, rescale 1/-1024 (Hounsfield units), window 40/400: -160 HU and below
    # black, 240 HU and above white.
    stored = np.array([[0, 864, 1024], [1064, 1264, 2000]])  # 12-bit signed: up to 2047
    layouts.dicom(tmp_path / "ct.dcm", stored, rescale=(1, -1024), window=(40, 400), signed=True)
    hu = stored - 1024
    expected = np.clip(((hu - 39.5) / 399 + 0.5), 0, 1) * 255
    assert _pixels(tmp_path / "ct.dcm").tolist() == np.rint(expected).astype(int).tolist()


def test_a_multi_frame_dicom_and_a_file_that_is_no_dicom_are_refused_by_name(tmp_path):
    layouts.dicom(tmp_path / "cine.dcm", np.stack([STORED, STORED]), frames=2)
    with pytest.raises(ImageDecodeError, match=r"cine\.dcm: a multi-frame DICOM \(2 frames\)"):
        decode_file(str(tmp_path / "cine.dcm"))
    (tmp_path / "fake.dcm").write_bytes(b"not a dicom file" * 20)
    with pytest.raises(ImageDecodeError, match=r"fake\.dcm: not a DICOM file"):
        decode_file(str(tmp_path / "fake.dcm"))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_greyscale_is_scaled_over_its_range_not_clipped(tmp_path, suffix):
    values = np.array([[0, 257, 1000], [30000, 65535, 12850]], dtype=np.uint16)
    path = tmp_path / f"x{suffix}"
    Image.fromarray(values).save(path)
    # Pillow's own conversion clips every value above 255 to white.
    assert _pixels(path).tolist() == np.rint(values / 257).astype(int).tolist()


def test_webp_and_jpeg_2000_are_read(tmp_path):
    pixels = (np.arange(64 * 48 * 3) % 256).astype(np.uint8).reshape(48, 64, 3)
    for suffix, options in ((".webp", {"lossless": True}), (".jp2", {"irreversible": False})):
        path = tmp_path / f"x{suffix}"
        Image.fromarray(pixels).save(path, **options)
        assert (decode_file(str(path)).permute(1, 2, 0).numpy() == pixels).all()
