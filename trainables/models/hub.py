"""Backbones from the Hugging Face Hub: ``hf-hub:ORG/REPO`` or a timm pretrained tag ``ARCH.TAG``.

A hub backbone is resolved to one weight file in the local Hugging Face cache (downloaded
first when online and not cached; never when ``HF_HUB_OFFLINE=1``). That file's sha256 is
its weights digest, as for a local file, so cache keys and rows name exactly the weights a
trial used. The architecture, its arguments and its preprocessing (mean, std, input size)
come from the model's own ``pretrained_cfg`` (the repo's ``config.json`` for ``hf-hub:``,
timm's registry for a tag), and the weights load through timm's own pretrained loader
(classifier dropped, a ViT's position embeddings resampled to the dataset's image size,
``.bin`` files read with ``weights_only=True``; trainables/models/backbones.py builds it).

Example::

    >>> is_hub_backbone("hf-hub:timm/vit_small_patch14_dinov2.lvd142m"), is_hub_backbone("resnet50")
    (True, False)
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
from typing import Optional

from trainables.errors import UserError

HUB_PREFIX = "hf-hub:"
# What a timm model repo holds its weights as, in the order timm itself prefers them.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class HubError(UserError):
    """A hub backbone that cannot be resolved; the message names the repo, file or address."""


def is_hub_backbone(name: str) -> bool:
    """``hf-hub:ORG/REPO``, or ``ARCH.TAG`` naming one of timm's published pretrained weights."""
    if name.startswith(HUB_PREFIX):
        return True
    if "." not in name:
        return False
    # Here, not at the module's top: names without a tag never need timm (2 s to import).
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(name.split(".", 1)[0]):
        return False
    try:
        cfg = get_pretrained_cfg(name)
    except Exception:  # timm raises on some unknown tags, returns None on others
        return False
    return cfg is not None and cfg.tag == name.split(".", 1)[1]


_CACHE_ONLY = contextvars.ContextVar("cache_only", default=False)


def _offline_by_environment() -> bool:
    """``HF_HUB_OFFLINE`` as the Hugging Face libraries read it, read now (not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "on", "yes", "true")


def offline() -> bool:
    """``HF_HUB_OFFLINE`` set, or inside :func:`cache_only`."""
    return _CACHE_ONLY.get() or _offline_by_environment()


@contextlib.contextmanager
def cache_only():
    """Look in the local cache only, as offline: a plan lists what a sweep would fetch, and
    fetches nothing (a dozen gated repos, each retried for half a minute without network)."""
    token = _CACHE_ONLY.set(True)
    try:
        yield
    finally:
        _CACHE_ONLY.reset(token)


def cache_dir() -> str:
    """The hub cache in use: ``HF_HUB_CACHE``, else ``HF_HOME``/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


def _where(repo: str) -> str:
    return f"https://huggingface.co/{repo}"


def gated_message(repo: str) -> str:
    """What to do about a gated repo the user may not read yet (the token itself never shown)."""
    from huggingface_hub import get_token

    who = ("the Hugging Face token in use has not been granted access" if get_token()
           else "no Hugging Face token is set")
    return (f"{repo}: {_where(repo)} is gated and {who}: accept the model's terms on that page, then log in "
            f"here (set HF_TOKEN, or run `hf auth login`)")


def _download(repo: str, filename: str) -> Optional[str]:
    """The file's path in the cache (downloading it when online); None if the repo lacks it."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError

    try:
        return hf_hub_download(repo, filename, cache_dir=cache_dir(), local_files_only=offline())
    except LocalEntryNotFoundError:  # (a kind of EntryNotFoundError: caught first)
        if offline():
            return None
        raise HubError(f"{repo}: cannot reach {_where(repo)} and {filename} is not in the local "
                       f"Hugging Face cache {cache_dir()}") from None
    except GatedRepoError:  # before the generic case: its text would quote the request
        raise HubError(gated_message(repo)) from None
    except EntryNotFoundError:  # the repo exists and lacks this file
        return None
    except Exception as exc:  # no network, a private or missing repo: one line naming the address
        raise HubError(f"{HUB_PREFIX}{repo}: cannot fetch {filename} from {_where(repo)}: "
                       f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def download_file(repo: str, filename: str) -> Optional[str]:
    """``filename`` of ``repo`` in the local cache, fetched first when online and not cached;
    None where the repo lacks it (or, offline, the cache does)."""
    return _download(repo, filename)


def missing_file_message(repo: str, filename: str) -> str:
    if offline():
        return str(_not_cached(repo, f"{filename} is", label=repo))
    return f"{repo}: {_where(repo)} has no {filename}"


def _not_cached(repo: str, what: str, label: Optional[str] = None) -> HubError:
    """``label``: how the message names the repo (a named model's is its repo, without hf-hub:)."""
    why = " and HF_HUB_OFFLINE=1" if _offline_by_environment() else ""
    return HubError(
        f"{label or HUB_PREFIX + repo}: {what} not in the local Hugging Face cache {cache_dir()}{why}; "
        f"fetch it once online (hf download {repo}) or point HF_HUB_CACHE at a cache that holds it"
    )


def _repo_and_file(name: str) -> tuple[str, Optional[str], dict]:
    """(hub repo, a weight-file override or None, pretrained cfg of a tag or {})."""
    if name.startswith(HUB_PREFIX):
        repo = name[len(HUB_PREFIX):]
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise HubError(f"backbone {name!r}: expected hf-hub:ORG/REPO")
        return repo, None, {}
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name).to_dict()
    if not cfg.get("hf_hub_id"):
        raise HubError(f"backbone {name!r}: timm publishes its weights only at {cfg.get('url') or 'no address'}, "
                       f"not on the Hugging Face Hub; download the file and give --weights {name}=FILE")
    return cfg["hf_hub_id"], cfg.get("hf_hub_filename"), cfg


def read_config(path: str) -> dict:
    """A repo's JSON config (config.json, open_clip_config.json); one that does not parse, named."""
    with open(path) as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as exc:
            raise HubError(f"{path}: not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise HubError(f"{path}: expected a JSON object, found {type(config).__name__}")
    return config


@functools.lru_cache(maxsize=64)
def hub_config(name: str, weights_path: Optional[str] = None) -> tuple[str, dict, dict]:
    """(timm architecture, pretrained_cfg, model arguments) of a hub backbone.

    A repo's config.json is read beside ``weights_path`` where it is there (the snapshot
    folder the weight file was resolved in: a trial on another node reads what the driver
    resolved, whatever its own hub settings), else from the hub cache."""
    repo, _, tag_cfg = _repo_and_file(name)
    if tag_cfg:
        return name.split(".", 1)[0], tag_cfg, {}
    beside = os.path.join(os.path.dirname(weights_path), "config.json") if weights_path else None
    path = beside if beside and os.path.isfile(beside) else _download(repo, "config.json")
    if path is None:
        raise _not_cached(repo, "config.json is") if offline() else HubError(
            f"{name}: {_where(repo)} has no config.json: not a timm model repo")
    config = read_config(path)
    arch = config.get("architecture")
    import timm

    if not arch or not timm.is_model(arch):
        raise HubError(f"{path}: architecture {arch!r} is not a timm model (a timm hub repo's config.json names one)")
    pretrained_cfg = dict(config.get("pretrained_cfg") or {})
    pretrained_cfg.setdefault("num_classes", config.get("num_classes", 0))
    return arch, pretrained_cfg, dict(config.get("model_args") or {})


def hub_weight_file(name: str) -> str:
    """The weight file of a hub backbone in the local cache (downloaded first when online)."""
    repo, override, _ = _repo_and_file(name)
    for filename in (override,) if override else WEIGHT_FILES:
        path = _download(repo, filename)
        if path is not None:
            return path
    if offline():
        raise _not_cached(repo, f"none of its weight files ({', '.join(WEIGHT_FILES)}) is")
    raise HubError(f"{name}: {_where(repo)} holds none of {', '.join(WEIGHT_FILES)}")
