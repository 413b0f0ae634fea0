import numpy as np
import torch

from trainables.training.batches import FeatureBatches


def _matrix(n=40, d=3, dtype=np.float32):
    return (np.arange(n * d, dtype=np.float64).reshape(n, d)).astype(dtype)


def test_batches_cover_the_rows_once_per_pass_with_their_labels():
    features, labels = _matrix(), np.arange(40) % 4
    rows = np.array([3, 5, 7, 11, 13, 17, 19, 23, 29, 31])
    batches = FeatureBatches([[features]], labels, rows, batch_size=4, shuffle=True, seed=1)
    assert len(batches) == 3
    seen = []
    for (x,), y in batches:
        assert x.dtype == torch.float32 and x.shape[1] == 3
        row_of = (x[:, 0] / 3).long().numpy()  # row r holds 3r, 3r+1, 3r+2
        assert np.array_equal(y.numpy(), labels[row_of])
        seen += row_of.tolist()
    assert sorted(seen) == rows.tolist()


def test_shuffled_order_differs_between_passes_and_is_seeded():
    features, labels = _matrix(), np.zeros(40, dtype=np.int64)
    first = lambda b: torch.cat([x[0][:, 0] for x, _ in b]).tolist()  # noqa: E731
    a = FeatureBatches([[features]], labels, None, batch_size=8, shuffle=True, seed=7)
    b = FeatureBatches([[features]], labels, None, batch_size=8, shuffle=True, seed=7)
    assert first(a) == first(b) and first(a) != first(a)
    plain = FeatureBatches([[features]], labels, None, batch_size=8)
    assert first(plain) == features[:, 0].tolist()


def test_each_pass_reads_the_next_view():
    labels = np.zeros(6, dtype=np.int64)
    views = [[np.full((6, 2), float(v), np.float32)] for v in range(3)]
    batches = FeatureBatches(views, labels, None, batch_size=6)
    assert [next(iter(batches))[0][0][0, 0].item() for _ in range(5)] == [0, 1, 2, 0, 1]


def test_float16_cache_converts_one_batch_at_a_time_and_the_mapped_file_is_never_copied_whole():
    half = _matrix(dtype=np.float16)
    half.setflags(write=False)  # as a memory-mapped cache is
    (x,), _ = next(iter(FeatureBatches([[half]], np.zeros(40, np.int64), np.array([2, 4]), batch_size=2)))
    assert x.dtype == torch.float32 and x.tolist() == [[6, 7, 8], [12, 13, 14]]


def test_balanced_batches_draw_rare_classes_as_often_as_common_ones():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    batches = FeatureBatches([[_matrix(100)]], labels, None, batch_size=50, balance=True, seed=0)
    drawn = torch.cat([y for _ in range(50) for _, y in batches])
    counts = torch.bincount(drawn, minlength=3)
    assert len(drawn) == 50 * 100 and counts.min() / counts.max() > 0.85
