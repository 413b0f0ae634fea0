"""Files at a local path or a URI (``s3://``, ``gs://``, ``file://``, ...), through pyarrow's
filesystems, so the results store and the embedding cache can live on a cluster's shared
storage.

Writes are atomic either way: a local file is written beside its target and renamed; an
object store's PUT is atomic by itself (a reader sees the whole object or none). Files a
trial memory-maps (cache files) are copied once per node into a local folder
(``$MEDSWEEP_LOCAL_CACHE``, default ``~/.cache/medsweep``) by :func:`localize`.

Schemes pyarrow does not know (``memory://`` and others) go through fsspec where installed.

Example::

    >>> write_atomic(join("s3://bucket/results", "store.json"), b"{}")   # doctest: +SKIP
    >>> read_bytes("s3://bucket/results/store.json")                      # doctest: +SKIP
    b'{}'
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import contextmanager
from typing import Optional

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables.errors import UserError

LOCAL_CACHE_ENV = "MEDSWEEP_LOCAL_CACHE"


class StorageError(OSError):
    """A location that cannot be used; the message names it."""


class UnknownLocation(StorageError, UserError):
    """A ``--results``/``--cache`` this machine has no filesystem for (``foo://x``): the user's
    input, so one line and exit 2, not a fault of the storage to retry."""


def is_uri(where: str) -> bool:
    return "://" in where


def is_local(where: str) -> bool:
    return not is_uri(where) or where.startswith("file://")


def absolute(where: str) -> str:
    """A local path made absolute (trials run with another cwd); a URI unchanged."""
    return where if is_uri(where) else os.path.abspath(os.path.expanduser(where))


def join(base: str, *parts: str) -> str:
    if is_uri(base):
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base, *parts)


def basename(where: str) -> str:
    return where.rstrip("/").rsplit("/", 1)[-1] if is_uri(where) else os.path.basename(where)


def filesystem(where: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) of a path or URI."""
    if not is_uri(where):
        return pafs.LocalFileSystem(), absolute(where)
    try:
        return pafs.FileSystem.from_uri(where)
    except ValueError as exc:  # pyarrow's ArrowInvalid: a scheme it does not know
        try:
            import fsspec
            from pyarrow.fs import FSSpecHandler, PyFileSystem

            fs, path = fsspec.core.url_to_fs(where)
        except Exception:
            raise UnknownLocation(f"{where}: not a path or a URI this machine can open ({exc}); expected a "
                                  f"folder, file://, s3://, gs:// or another scheme pyarrow or fsspec knows") from exc
        return PyFileSystem(FSSpecHandler(fs)), path


def _local_path(where: str) -> str:
    return filesystem(where)[1] if where.startswith("file://") else absolute(where)


def exists(where: str) -> bool:
    fs, path = filesystem(where)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def size(where: str) -> int:
    fs, path = filesystem(where)
    return fs.get_file_info(path).size or 0


def read_bytes(where: str) -> bytes:
    fs, path = filesystem(where)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StorageError(f"{where}: cannot be read ({exc})") from exc


def file_sha256(path: str) -> str:
    """The sha256 of a local file, read a MiB at a time (weight files are hundreds of MiB)."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def read_parquet(source, schema: Optional[pa.Schema] = None) -> pa.Table:
    """A Parquet file (bytes, or an open pyarrow file) as a table, by Parquet's own reader; with
    ``schema``, in its columns (a column the file lacks comes back null, one it adds is dropped).

    Not ``pq.read_table`` or ``pyarrow.dataset``: both go through the dataset scanner, whose
    threads can outlive the read and abort the process when it exits (apache/arrow#39862, open:
    seen here as a `sweep run` ending in SIGABRT just after its closing read of the store).
    And on the calling thread: with threads, Parquet's column readers are freed by Arrow's pool
    threads, and one freed while the interpreter exits (a reader over Python bytes wants the
    GIL then) aborted a `sweep run` of a store at a URI in about 1 of 6 runs here."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = pa.BufferReader(source)
    table = pq.ParquetFile(source).read(use_threads=False)
    if schema is None or table.schema.equals(schema):
        return table
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def makedirs(where: str) -> None:
    fs, path = filesystem(where)
    fs.create_dir(path, recursive=True)


@contextmanager
def temporary_file(folder: Optional[str], suffix: str = ""):
    """A temporary file's path in ``folder`` (made if missing; None: the system's), named
    ``.tmp-*`` so that no reader takes it for a finished file; removed when the block ends
    unless the block moved it away (a rename into place: the one atomic step of a write)."""
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(where: str, data: bytes) -> None:
    """Write ``data`` so that no reader ever sees a part of it."""
    if is_local(where):
        path = _local_path(where)
        with temporary_file(os.path.dirname(path)) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return
    fs, path = filesystem(where)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:  # one PUT: atomic on object stores
        out.write(data)


def upload(local_file: str, where: str) -> None:
    """Move a finished local file to ``where`` (a rename when local, a copy when remote)."""
    if is_local(where):
        path = _local_path(where)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.replace(local_file, path)
        return
    fs, path = filesystem(where)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pafs.copy_files(local_file, path, destination_filesystem=fs)
    os.remove(local_file)


def listdir(where: str) -> list[str]:
    """Names of the files directly in a folder (none if it does not exist); hidden and
    temporary files left out."""
    fs, path = filesystem(where)
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
    return sorted(
        info.base_name for info in fs.get_file_info(selector)
        if info.type == pafs.FileType.File and not info.base_name.startswith(".")
    )


def move(source: str, target: str) -> None:
    """Move a file within one store (a rename locally, a copy and delete on object stores)."""
    fs, src = filesystem(source)
    dst = filesystem(target)[1]
    fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
    fs.move(src, dst)


def remove(where: str) -> None:
    fs, path = filesystem(where)
    fs.delete_file(path)


def local_cache_dir() -> str:
    return os.environ.get(LOCAL_CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "medsweep")


def localize(where: str) -> str:
    """A local path of the file: itself when local, else a node-local copy made once (named by
    the URI's digest, so two stores' files never collide)."""
    if is_local(where):
        return _local_path(where)
    digest = hashlib.sha256(where.encode()).hexdigest()[:16]
    target = os.path.join(local_cache_dir(), f"{digest}-{basename(where)}")
    if not os.path.exists(target):
        fs, path = filesystem(where)
        with temporary_file(os.path.dirname(target)) as tmp:
            pafs.copy_files(path, tmp, source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
            os.replace(tmp, target)
    return target
