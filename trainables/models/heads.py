"""The models trials train: the linear probe and DVME (the paper's section 5.4) on frozen
embeddings, and a finetuned backbone with its classifier.

DVME projects each backbone's embedding to ``proj_dim``, lets self-attention weigh the
backbones against each other, then layer norm, a projection back to ``proj_dim``, ReLU,
dropout 0.2 and the classifier. Two attention forms:

- ``token`` (default): one token per backbone, a timm ViT ``Block`` (pre-norm attention and
  MLP with residuals): attention *between backbones*, the paper's stated intent.
- ``listing``: the paper's Appendix E code, the concatenated vector as ``N * proj_dim`` tokens
  of width 1 through timm's ``Attention`` (its memory grows with (N * proj_dim)^2 per image).

Without attention (the paper's ablation, section 6.2), ``no_attention_head`` says what follows
the projections: ``linear``, the text's model, their concatenation straight into the linear
classifier; ``mlp``, the attention model's head kept (layer norm, projection, ReLU, dropout).
``qkv_bias``: the attention's query/key/value bias (timm's default, False, as Listing 1's).

Example::

    >>> head = DVME([96, 64], n_classes=10, proj_dim=32)
    >>> head({"a": torch.zeros(4, 96), "b": torch.zeros(4, 64)}).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

import torch
from timm.models.vision_transformer import Attention, Block
from torch import nn


ANALYSIS_FLOATS = 2**25  # attention weights written out at once by the analysis: 128 MiB


def attention_weights(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """The softmax attention matrix timm's ``Attention`` applies to ``x``, averaged over heads:
    (B, N, N), row i = how token i attends to every token (rows sum to 1)."""
    B, N, _ = x.shape
    qkv = attn.qkv(x).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, _ = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1).mean(dim=1)


class LinearProbe(nn.Module):
    """The linear evaluation head: one linear layer on one frozen backbone's embedding."""

    def __init__(self, dim: int, n_classes: int):
        super().__init__()
        self.linear = nn.Linear(dim, n_classes)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.linear(features[0])


class Finetuned(nn.Module):
    """A whole backbone and a linear classifier on its embedding, every layer trained."""

    def __init__(self, backbone: nn.Module, info, dim: int, n_classes: int):
        super().__init__()
        self.backbone, self.info = backbone, info
        self.classifier = nn.Linear(dim, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from trainables.models.backbones import embed

        return self.classifier(embed(self.backbone, self.info, images))


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
        qkv_bias: bool = False,
        no_attention_head: str = "linear",
    ):
        super().__init__()
        self.projections = nn.ModuleList(nn.Linear(d, proj_dim) for d in dims)
        self.attention_form = attention_form
        width = proj_dim * len(dims)
        # The text's ablation: the concatenated projections are the meta-embedding the classifier reads.
        self.direct = not attention and no_attention_head == "linear"
        if not attention:
            self.attn = None
        elif attention_form == "token":
            heads = num_heads if proj_dim % num_heads == 0 else 1
            self.attn = Block(dim=proj_dim, num_heads=heads, mlp_ratio=2.0, qkv_bias=qkv_bias)
        elif attention_form == "listing":
            self.attn = Attention(dim=1, num_heads=1, qkv_bias=qkv_bias)
            # N * proj_dim tokens (1,536 in the paper): a written-out attention matrix is
            # 2.4 GB per copy at batch 256; scaled_dot_product_attention never writes it out
            # (benchmarks/dvme_attention.py). timm uses it unless TIMM_FUSED_ATTN=0 says not to.
            self.attn.fused_attn = True
        else:
            raise ValueError(f"unknown attention_form {attention_form!r}; valid: token, listing")
        if self.direct:
            self.norm = self.proj_head = None
            self.dropout = nn.Identity()
            self.classifier = nn.Linear(width, n_classes)
        else:
            self.norm = nn.LayerNorm(width)
            self.proj_head = nn.Linear(width, proj_dim)
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(proj_dim, n_classes)

    def _tokens(self, features) -> torch.Tensor:
        parts = list(features.values()) if isinstance(features, dict) else list(features)
        return torch.stack([p(x) for p, x in zip(self.projections, parts)], dim=1)  # (B, N, P)

    @torch.no_grad()
    def backbone_attention(self, features) -> torch.Tensor | None:
        """(B, N, N) attention between the N backbones: row i = how backbone i's projection
        attends to each backbone's (the paper's analysis). In the listing form, a backbone's
        block of width-1 tokens is averaged over its queries and summed over its keys. None
        without attention."""
        if self.attn is None:
            return None
        tokens = self._tokens(features)
        if self.attention_form == "token":
            return attention_weights(self.attn.attn, self.attn.norm1(tokens))
        B, N, P = tokens.shape
        # The (N*P)^2 matrix of each image is written out here: a few images at a time.
        chunk = max(1, ANALYSIS_FLOATS // (N * P) ** 2)
        blocks = []
        for start in range(0, B, chunk):
            weights = attention_weights(self.attn, tokens[start:start + chunk].reshape(-1, N * P, 1))
            blocks.append(weights.reshape(-1, N, P, N, P).sum(dim=4).mean(dim=2))
        return torch.cat(blocks)

    def forward(self, features: dict[str, torch.Tensor] | list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.embed(features)))

    def embed(self, features: dict[str, torch.Tensor] | list[torch.Tensor]) -> torch.Tensor:
        """The fused meta-embedding the classifier reads (proj_dim wide; N * proj_dim for the
        direct ablation): what the paper's t-SNE figures of DVME show."""
        tokens = self.mixed_tokens(features)
        flat = tokens.reshape(tokens.shape[0], -1)
        if self.direct:
            return flat
        return self.proj_head(self.norm(flat)).relu()

    def mixed_tokens(self, features: dict[str, torch.Tensor] | list[torch.Tensor]) -> torch.Tensor:
        """(B, N, proj_dim): each backbone's projection after the attention, where backbones
        see each other (without attention: the projections as they are)."""
        tokens = self._tokens(features)
        if self.attn is None:
            return tokens
        if self.attention_form == "token":
            return self.attn(tokens)
        return self.attn(tokens.reshape(tokens.shape[0], -1, 1)).reshape(tokens.shape)
