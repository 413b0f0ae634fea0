"""A named foundation model from its repo's files: fetch them into the Hugging Face cache (or
find them there offline), build the model with the loader its entry names, load its weights
strictly, and wrap it in an encoder whose output is the card's embedding.

Strict means every tensor of the file is used and none the model has is missing, with two
deliberate exceptions, both named in errors: a classifier the file carries (its entry is
built without one) and a CLIP file's text tower (only the image tower embeds).

Example::

    >>> path = fetch_model_files(get_backbone_info("phikon"))             # doctest: +SKIP
    >>> encoder = build_foundation(get_backbone_info("phikon"), path, 0, False)  # doctest: +SKIP
    >>> encoder(torch.zeros(1, 3, 224, 224)).shape                         # doctest: +SKIP
    torch.Size([1, 768])
"""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn

from trainables.errors import UserError
from trainables.models import hub
from trainables.models.weights import read_checkpoint

# What each loader reads from the repo: files it needs beside the weights, and the weight
# files in the order the library itself prefers them.
REPO_FILES = {
    "timm": (("config.json",), ("model.safetensors", "pytorch_model.bin")),
    "transformers": (("config.json",), ("model.safetensors", "pytorch_model.bin")),
    "open_clip": (("open_clip_config.json",), ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")),
}


class FoundationError(UserError):
    """A foundation model that cannot be fetched, built or loaded; names the model and what is wrong."""


def unavailable_loader(info) -> Optional[str]:
    """Why ``info``'s loader cannot run here, or None."""
    if info.loader == "conch":
        # CONCH is built by Mahmood Lab's own `conch` package (a CoCa variant stock open_clip
        # cannot build), published on GitHub only; PyPI's "conch-fork" is an unofficial copy.
        try:
            import conch  # noqa: F401
        except ImportError:
            return (f"{info.name}: {info.repo} is built by Mahmood Lab's `conch` package, which is on no package "
                    f"index: install it from https://github.com/mahmoodlab/CONCH (pip install "
                    f"git+https://github.com/Mahmoodlab/CONCH.git); medsweep has no loader for CONCH without it")
        return (f"{info.name}: medsweep has no loader for the `conch` package's models yet; "
                f"extract CONCH's embeddings with it and train on them as your own backbone")
    if info.loader in ("transformers", "open_clip"):
        module = "transformers" if info.loader == "transformers" else "open_clip"
        try:
            __import__(module)
        except ImportError:
            return (f"{info.name}: {info.repo} is built by {module}, which is not installed: "
                    f"pip install -c requirements.lock -e '.[foundation]'")
    return None


def _check_loader(info) -> None:
    problem = unavailable_loader(info)
    if problem:
        raise FoundationError(problem)


def remote_code_files(config_path: str) -> list[str]:
    """The Python files a transformers config's ``auto_map`` names (``modeling_x.Class`` ->
    ``modeling_x.py``): the code ``trust_remote_code`` would run."""
    auto_map = hub.read_config(config_path).get("auto_map") or {}
    targets = [t for v in auto_map.values() for t in (v if isinstance(v, list) else [v]) if t]
    return sorted({t.split("--")[-1].rsplit(".", 1)[0] + ".py" for t in targets})


def fetch_model_files(info) -> str:
    """The weight file of ``info`` in the local Hugging Face cache, with the files its loader
    reads beside it (fetched first when online; a gated repo the user may not read yet is one
    line naming its page): that file's sha256 is the model's weights digest."""
    _check_loader(info)
    needed, weights = REPO_FILES[info.loader]
    for filename in needed:
        path = hub.download_file(info.repo, filename)
        if path is None:
            raise FoundationError(hub.missing_file_message(info.repo, filename))
        if filename == "config.json" and info.loader == "transformers":
            for code in remote_code_files(path):
                if hub.download_file(info.repo, code) is None:
                    raise FoundationError(hub.missing_file_message(info.repo, code))
            hub.download_file(info.repo, "preprocessor_config.json")  # shown by `weights check`, optional
    for filename in weights:
        path = hub.download_file(info.repo, filename)
        if path is not None:
            return path
    raise FoundationError(hub.missing_file_message(info.repo, " or ".join(weights)))


def tensor_count(path: str) -> int:
    """How many tensors a weight file holds; a safetensors file's from its header alone (a
    ViT-g's 4.5 GB are read once, by the load that follows, not twice)."""
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(path, "pt") as f:
                return len(list(f.keys()))
        except (SafetensorError, OSError) as exc:
            raise FoundationError(f"{path}: not a readable safetensors file: {exc}") from None
    return len(read_tensors(path))


def read_tensors(path: str) -> dict:
    """A weight file's tensors: safetensors, or a pickle read with ``weights_only=True`` (one
    that needs code to unpickle is refused, naming what it asked for)."""
    if path.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise FoundationError(f"{path}: not a readable safetensors file: {exc}") from None
    state = read_checkpoint(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FoundationError(f"{path}: expected a flat state dict of tensors")
    return state


def key_problem(what: str, path: str, missing, unexpected, wrong_shape) -> Optional[str]:
    """One line naming the keys that keep a file from loading whole, or None."""
    if not (missing or unexpected or wrong_shape):
        return None
    return (f"{path}: does not load whole into {what}: {len(missing)} missing {sorted(missing)[:8]}, "
            f"{len(unexpected)} unexpected {sorted(unexpected)[:8]}, {len(wrong_shape)} of another shape "
            f"{sorted(wrong_shape)[:8]}")


def build_foundation(info, weights_path: str, seed: int = 0, trust_remote_code: bool = False) -> nn.Module:
    """The encoder of a named foundation model, weights loaded strictly from ``weights_path``
    (the files its loader reads lie beside it, as in a hub snapshot)."""
    _check_loader(info)
    if info.loader == "timm":
        from trainables.models.foundation.load_timm import build_timm

        return build_timm(info, weights_path, seed)
    if info.loader == "transformers":
        from trainables.models.foundation.load_transformers import build_transformers

        return build_transformers(info, weights_path, trust_remote_code)
    from trainables.models.foundation.load_open_clip import build_open_clip

    return build_open_clip(info, weights_path)


def beside(weights_path: str, filename: str) -> str:
    path = os.path.join(os.path.dirname(weights_path), filename)
    if not os.path.isfile(path):
        raise FoundationError(f"{weights_path}: {filename} is not beside it (a hub snapshot holds both)")
    return path
