"""Embedding recipes: what a model card says to take from the model's outputs as the image's
embedding. Small pure functions of those outputs, so a test can compute each by hand.

- ``cls``: the class token of the last layer, after the final norm (UNI, UNI2-h, H-optimus,
  Prov-GigaPath, Phikon, Phikon-v2, DINOv2).
- ``cls_mean_patch``: the class token concatenated with the mean of the patch tokens, the
  register tokens left out (Virchow, Virchow2: 2 x 1280 = 2,560-d).
- ``pooler``: a transformers model's ``pooler_output`` (RAD-DINO, hibou: the normed class token).
- ``image_tower``: a CLIP model's image embedding, projected and L2-normalised, as the
  model's own forward gives it beside the text embedding (BiomedCLIP).

Example::

    >>> tokens = torch.arange(24.).reshape(1, 4, 6)   # class token, 1 register, 2 patches
    >>> class_token(tokens).tolist()
    [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]
    >>> class_and_mean_patch(tokens, prefix_tokens=2)[0, 6:].tolist()
    [15.0, 16.0, 17.0, 18.0, 19.0, 20.0]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_token(tokens: torch.Tensor) -> torch.Tensor:
    """(B, N, D) tokens, class token first -> (B, D)."""
    return tokens[:, 0]


def class_and_mean_patch(tokens: torch.Tensor, prefix_tokens: int) -> torch.Tensor:
    """(B, N, D) tokens whose first ``prefix_tokens`` are the class token and the registers ->
    (B, 2D): the class token, then the mean of the patch tokens alone."""
    return torch.cat([tokens[:, 0], tokens[:, prefix_tokens:].mean(dim=1)], dim=-1)


def normalised(features: torch.Tensor) -> torch.Tensor:
    """A CLIP image embedding as the model compares it with text: unit L2 norm."""
    return F.normalize(features, dim=-1)


def width(recipe: str, hidden: int) -> int:
    """The embedding's width for a model whose tokens are ``hidden`` wide."""
    return 2 * hidden if recipe == "cls_mean_patch" else hidden
