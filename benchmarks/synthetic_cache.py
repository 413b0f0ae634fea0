"""A synthetic embedding-cache file in the real format (trainables/cache/embeddings.py): pool and
test splits of ``dim``-d float32 features of 2 classes, class 1 shifted by ``shift`` in every
dimension, so a probe has something to find. Used by the benchmarks that need a PatchCam-sized pool."""

from __future__ import annotations

import numpy as np


def write_cache(path: str, pool: int, test: int, dim: int, shift: float = 0.1, seed: int = 0) -> None:
    import pyarrow as pa

    from trainables.cache.embeddings import _split_table
    from trainables.data.datasets import ImageSet

    rng = np.random.default_rng(seed)
    tables = []
    for name, n in (("pool", pool), ("test", test)):
        labels = rng.integers(0, 2, n)
        features = rng.standard_normal((n, dim), dtype=np.float32) + labels[:, None].astype(np.float32) * shift
        split = ImageSet(images=None, labels=labels, ids=[str(i) for i in range(n)])
        tables.append(_split_table(name, split, np.arange(n), features, "float32"))
        del features
    table = pa.concat_tables(tables)
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=len(table))
