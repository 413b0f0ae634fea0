"""``sweep weights fetch``: the paper's published weight files, downloaded, resumed, verified.

Each file comes from the address its backbone's registry entry keeps (or ``--mirror
BASE/<name>``), into ``DIR/<name>.part`` first: an interrupted download resumes from the bytes
already there (an HTTP range request; a ``file://`` address is read from that offset). A
finished file is checked exactly as ``sweep weights check`` checks it (read whole, converted,
loaded into the backbone) before it takes its name; its sha256 goes into
``DIR/medsweep-weights.json``. A file already in DIR that loads whole is kept, not fetched.

Example::

    >>> fetch_weights(["supervised"], "/data/weights")      # doctest: +SKIP
    [{'backbone': 'supervised', 'file': '/data/weights/resnet50-0676ba61.pth', 'sha256': '...', ...}]
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Optional

from sweep.plan.weightcheck import check_weights
from trainables.errors import UserError
from trainables.models.backbones import backbone_names, get_backbone_info

RECORD = "medsweep-weights.json"
CHUNK = 1 << 20


class FetchError(UserError):
    """A file that could not be fetched or does not load; the message names its address."""


def fetchable() -> list[str]:
    return [b for b in backbone_names() if get_backbone_info(b).url]


def address_of(name: str, mirror: Optional[str] = None) -> tuple[str, str]:
    """(address, file name in DIR) of ``name``'s published file."""
    info = get_backbone_info(name)
    if not info.url:
        if info.foundation:  # its repo's files go to the Hugging Face cache, where the sweep reads them
            raise FetchError(f"{name} comes through the Hugging Face cache, not a folder: hf download {info.repo} "
                             f"(or any `sweep run` online fetches it){'; it is gated: accept its terms at ' + info.card + ' first' if info.gated else ''}")
        raise FetchError(f"backbone {name!r} has no published file to fetch; fetchable: {', '.join(fetchable())}"
                         + (" (hub backbones come through the Hugging Face cache)" if info.hub else ""))
    file_name = info.weight_files[0]
    return (f"{mirror.rstrip('/')}/{file_name}" if mirror else info.url), file_name


def _open(url: str, offset: int):
    """(stream, resumed) from ``offset``; resumed False when the source starts over at byte 0."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        stream = open(urllib.request.url2pathname(parsed.path), "rb")
        stream.seek(offset)
        return stream, True
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    response = urllib.request.urlopen(request, timeout=60)
    return response, offset > 0 and getattr(response, "status", 200) == 206


def download(url: str, dest: str, echo: Callable[[str], None] = lambda line: None) -> int:
    """``url`` into ``dest`` (via ``dest.part``, resumed where it stopped); bytes fetched now."""
    part = dest + ".part"
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        stream, resumed = _open(url, offset)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"cannot fetch {url}: {reason} (offline? fetch it on a machine that is online "
                         f"and copy it to {os.path.dirname(dest)})") from None
    if offset and resumed:
        echo(f"  resuming {os.path.basename(dest)} at {offset / 1e6:.1f} MB")
    fetched = 0
    with stream, open(part, "ab" if resumed else "wb") as out:
        try:
            for block in iter(lambda: stream.read(CHUNK), b""):
                out.write(block)
                fetched += len(block)
        except OSError as exc:  # a broken connection: what arrived stays in .part for the next try
            raise FetchError(f"{url}: download broke off after {(offset + fetched) / 1e6:.1f} MB ({exc}); "
                             f"run the same command again to resume") from None
    return fetched


def _record(folder: str, name: str, report: dict, url: str) -> None:
    path = os.path.join(folder, RECORD)
    record = {}
    if os.path.exists(path):
        with open(path) as f:
            record = json.load(f)
    record[name] = {"file": os.path.basename(report["file"]), "sha256": report["sha256"], "address": url,
                    "format": report["format"]}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    os.replace(tmp, path)


def fetch_weights(names: list[str], folder: str, mirror: Optional[str] = None,
                  echo: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Fetch, verify and record each backbone's published file into ``folder``."""
    targets = [(name, *address_of(name, mirror)) for name in names]  # every name checked first
    os.makedirs(folder, exist_ok=True)
    done = []
    for name, url, file_name in targets:
        dest = os.path.join(folder, file_name)
        report = check_weights(name, dest) if os.path.exists(dest) else None
        if report and report["ok"]:
            echo(f"{name}: {dest} is there and loads whole; not fetched")
        else:
            size = get_backbone_info(name).size_mb
            echo(f"{name}: fetching {url}" + (f" (about {size:.0f} MB)" if size and not mirror else ""))
            download(url, dest, echo)
            report = check_weights(name, dest + ".part")
            if not report["ok"]:
                os.remove(dest + ".part")  # a file that does not load is not resumed either
                raise FetchError(f"{url}: the downloaded file does not load as {name!r}: {report['error']}")
            shutil.move(dest + ".part", dest)
            report["file"] = dest
        _record(folder, name, report, url)
        done.append({"backbone": name, "file": dest, "sha256": report["sha256"], "address": url,
                     "format": report["format"]})
    return done
