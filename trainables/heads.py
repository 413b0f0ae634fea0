"""Heads trained on frozen embeddings: the linear probe and DVME (the paper's section 5.4).

DVME projects each backbone's embedding to ``proj_dim``, lets self-attention weigh the
backbones against each other, then layer norm, a projection back to ``proj_dim``, ReLU,
dropout 0.2 and the classifier. Two attention forms:

- ``token`` (default): one token per backbone, a timm ViT ``Block`` (pre-norm attention and
  MLP with residuals): attention *between backbones*, the paper's stated intent.
- ``listing``: the paper's Appendix E code, the concatenated vector as ``N * proj_dim`` tokens
  of width 1 through timm's ``Attention`` (its memory grows with (N * proj_dim)^2 per image).

``attention=False`` is the paper's ablation (Appendix C).

Example::

    >>> head = DVME([96, 64], n_classes=10, proj_dim=32)
    >>> head({"a": torch.zeros(4, 96), "b": torch.zeros(4, 64)}).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Attention, Block
from torch import nn


class DVME(nn.Module):
    def __init__(
        self,
        dims: list[int],
        n_classes: int,
        proj_dim: int = 512,
        attention: bool = True,
        attention_form: str = "token",
        num_heads: int = 8,
        dropout: float = 0.2,
    ):
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(d, proj_dim) for d in dims)
        self.attention_form = attention_form
        width = proj_dim * len(dims)
        if not attention:
            self.attn = None
        elif attention_form == "token":
            heads = num_heads if proj_dim % num_heads == 0 else 1
            self.attn = Block(dim=proj_dim, num_heads=heads, mlp_ratio=2.0)
        elif attention_form == "listing":
            self.attn = Attention(dim=1, num_heads=1, qkv_bias=True)
        else:
            raise ValueError(f"unknown attention_form {attention_form!r}; valid: token, listing")
        self.norm = nn.LayerNorm(width)
        self.proj_head = nn.Linear(width, proj_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(proj_dim, n_classes)

    def forward(self, features: dict[str, torch.Tensor] | list[torch.Tensor]) -> torch.Tensor:
        parts = list(features.values()) if isinstance(features, dict) else list(features)
        tokens = torch.stack([p(x) for p, x in zip(self.projections, parts)], dim=1)  # (B, N, P)
        if self.attn is not None:
            if self.attention_form == "token":
                tokens = self.attn(tokens)
            else:
                tokens = self.attn(tokens.reshape(tokens.shape[0], -1, 1))
        out = self.norm(tokens.reshape(tokens.shape[0], -1))
        out = self.dropout(self.proj_head(out).relu())
        return self.classifier(out)
