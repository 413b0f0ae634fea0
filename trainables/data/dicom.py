"""DICOM files (``.dcm``), as radiology data arrives, read with pydicom into the 8-bit image the
backbones' transforms take: what a viewer shows of the file, by the standard's own steps.

1. Stored values through the Modality LUT (Rescale Slope/Intercept, or a Modality LUT
   Sequence): CT's Hounsfield units, say.
2. Through the VOI LUT the file gives: its VOI LUT Sequence, else its first Window
   Center/Width (LINEAR, LINEAR_EXACT or SIGMOID, as its VOI LUT Function says). The result's
   range is what the standard defines for it (the LUT's nominal bit depth; a window's output
   range, PS3.3 C.11.2.1.2), so the window's own contrast is kept. A file without either is
   shown over its own range (lowest value black, highest white), as viewers do.
3. That range scaled to 0..255, whatever the bit depth (12, 16 bits); MONOCHROME1 (bright is
   low) inverted, so that bone is white in every file.

Colour files (RGB, YBR, a palette) are read as RGB. A multi-frame file (a series, a cine)
is refused by name: a study image is one frame. A compressed transfer syntax that no installed
decoder takes is refused with pydicom's word on what to install.

Example::

    >>> pixels = read_dicom("/data/cxr/IM-0001.dcm")   # doctest: +SKIP
    >>> pixels.dtype, pixels.ndim                      # doctest: +SKIP
    (dtype('uint8'), 2)
"""

from __future__ import annotations

import numpy as np

DICOM_SUFFIXES = (".dcm", ".dicom")
GREY = ("MONOCHROME1", "MONOCHROME2")


class DicomError(ValueError):
    """A DICOM file that cannot be shown as one image; the message says why."""


def _voi_range(ds, arr: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(low, high, values): the VOI LUT or window applied and the range its output spans."""
    from pydicom.pixels import apply_voi, apply_windowing

    sequence = ds.get("VOILUTSequence")
    if sequence and sequence[0].get("LUTDescriptor") is not None and sequence[0].get("LUTData") is not None:
        entries, first, bits = (int(v) for v in sequence[0].LUTDescriptor)
        if bits == 8:
            # pydicom 3.0.2 looks an 8-bit LUT up with uint8 indices, which wrap past 255 (a
            # 4096-entry table for 12-bit data read entry 1000 as 232): look it up as 16-bit,
            # the values are the same.
            sequence[0].LUTDescriptor = [entries, first, 16]
        return 0.0, float(2**bits - 1), apply_voi(arr, ds)
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        # A window maps into the output range the standard gives it (PS3.3 C.11.2.1.2: from the
        # bits, the pixel representation and the rescale): pydicom's own range, read off as
        # what it maps the lowest and the highest possible values to.
        with np.errstate(over="ignore"):  # SIGMOID's exp at the far ends
            low, high = apply_windowing(np.array([-1e12, 1e12]), ds)
        return float(low), float(high), apply_windowing(arr, ds)
    values = arr.astype(np.float64)
    return float(values.min()), float(values.max()), values


def scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` from ``low`` (0) to ``high`` (255), rounded, clipped: an image of more than
    8 bits over its range (a DICOM window's, a 16-bit file's), as the transforms take it."""
    scaled = (values.astype(np.float64) - low) / max(high - low, 1e-12)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def read_dicom(source, path: str) -> np.ndarray:
    """A DICOM file (a path or a binary file object) -> uint8 (H, W) for greyscale, (H, W, 3)
    for colour. Raises :class:`DicomError` naming the file for what it cannot show."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    try:
        ds = pydicom.dcmread(source)
    except InvalidDicomError as exc:
        raise DicomError(f"{path}: not a DICOM file ({exc})") from None
    if "PixelData" not in ds:
        raise DicomError(f"{path}: a DICOM file without pixel data (a {ds.get('Modality', '?')} object of "
                         f"SOP class {ds.get('SOPClassUID', '?')})")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise DicomError(f"{path}: a multi-frame DICOM ({frames} frames); medsweep reads one image per file: "
                         f"export the frame you mean as a file of its own")
    interpretation = str(ds.get("PhotometricInterpretation", "")).upper()
    try:
        arr = ds.pixel_array
    except Exception as exc:  # no decoder for its transfer syntax, or pixel data cut short
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax) or "unknown"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DicomError(f"{path}: its pixel data (transfer syntax {name}) cannot be decoded: {first}") from None
    if interpretation in GREY:
        if arr.ndim != 2:
            raise DicomError(f"{path}: a {interpretation} image of shape {arr.shape}, expected rows x columns")
        low, high, values = _voi_range(ds, apply_modality_lut(arr, ds))
        pixels = scale_to_uint8(values, low, high)
        return 255 - pixels if interpretation == "MONOCHROME1" else pixels
    if interpretation == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise DicomError(f"{path}: photometric interpretation {interpretation or 'missing'} with pixel array "
                         f"{arr.shape}; expected MONOCHROME1/2, RGB, YBR or PALETTE COLOR single images")
    # pydicom returns YBR as RGB already; a 16-bit colour image is scaled over its bit depth.
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    bits = 8 * arr.dtype.itemsize if interpretation == "PALETTE COLOR" else int(ds.get("BitsStored", 8))
    return scale_to_uint8(arr, 0.0, float(2**bits - 1))
