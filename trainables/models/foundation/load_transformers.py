"""Foundation models transformers builds (Phikon: ViTModel; Phikon-v2, RAD-DINO: Dinov2Model;
hibou: the repo's own Dinov2 variant, code that runs only when the user trusts it by name).

``from_pretrained`` reads the snapshot folder the weight file lies in, never the network,
in float32 (transformers 5 would keep a checkpoint's own dtype), and reports which keys it
could not match: any is an error naming them. Its ``.bin`` reader uses
``torch.load(weights_only=True)``, so a file that needs code to unpickle is refused.
"""

from __future__ import annotations

import os
import pickle

import torch
from torch import nn

from trainables.models.foundation import recipes
from trainables.models.foundation.loading import FoundationError, beside, key_problem, remote_code_files


class TransformersEncoder(nn.Module):
    """A transformers vision model whose output is its card's embedding."""

    def __init__(self, model: nn.Module, recipe: str):
        super().__init__()
        self.model, self.recipe = model, recipe
        self.registers = int(getattr(model.config, "num_register_tokens", 0) or 0)
        self.num_features = recipes.width(recipe, model.config.hidden_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=images)
        if self.recipe == "pooler":
            return out.pooler_output
        if self.recipe == "cls":
            return recipes.class_token(out.last_hidden_state)
        return recipes.class_and_mean_patch(out.last_hidden_state, 1 + self.registers)


def refused_code(info, config_path: str) -> str:
    files = remote_code_files(config_path)
    return (f"{info.name}: {info.repo} is built by Python code its repo ships ({', '.join(files) or 'auto_map'}), "
            f"which medsweep runs only when told to: read it at https://huggingface.co/{info.repo}/tree/main, "
            f"then pass --trust-remote-code {info.name}")


def build_transformers(info, weights_path: str, trust_remote_code: bool = False) -> TransformersEncoder:
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    # Its load report and progress bar: any key it lists is an error below, named there.
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    config_path = beside(weights_path, "config.json")
    if (info.remote_code or remote_code_files(config_path)) and not trust_remote_code:
        raise FoundationError(refused_code(info, config_path))
    folder = os.path.dirname(weights_path)
    try:
        model, loading = AutoModel.from_pretrained(
            folder, local_files_only=True, trust_remote_code=trust_remote_code, output_loading_info=True,
            dtype=torch.float32, **dict(info.timm_kwargs))
    except (OSError, ValueError, RuntimeError, KeyError, pickle.UnpicklingError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ""
        if any(w in str(exc) for w in ("weights_only", "Unsupported global", "npickl")):
            hint = " (it needs code to unpickle, which medsweep never runs)"
        raise FoundationError(f"{folder}: {info.name} does not load{hint}: {text}") from None
    wrong = [m[0] if isinstance(m, (tuple, list)) else m for m in loading.get("mismatched_keys", [])]
    problem = key_problem(f"{info.name} ({type(model).__name__})", weights_path,
                          loading.get("missing_keys", []), loading.get("unexpected_keys", []), wrong)
    if problem:
        raise FoundationError(problem)
    return TransformersEncoder(model.eval(), info.embedding)
