"""Content fingerprints: every byte counts, stat decides only what is read again."""

import os

import pytest

from tests import layouts
from trainables.data.datasets import load_dataset
from trainables.data.filedigests import content_fingerprint, run_in_threads


class CountingRunner:
    """The thread runner, counting the files it reads."""

    def __init__(self):
        self.read, self.decoded = 0, 0

    def __call__(self, chunks, decode):
        n = sum(len(c) for c in chunks)
        self.read += n
        self.decoded += n if decode else 0
        return run_in_threads(chunks, decode)


@pytest.fixture
def folder(tmp_path):
    root = str(tmp_path / "data")
    layouts.folder(root)
    return root


def _fingerprint(root, index, runner=run_in_threads, check=True):
    return content_fingerprint(load_dataset("folder", root), str(index), check=check, run_chunks=runner)


def test_a_second_fingerprint_reads_no_file_and_gives_the_same_value(folder, tmp_path):
    first, second = CountingRunner(), CountingRunner()
    a, problems = _fingerprint(folder, tmp_path / "index", first)
    b, _ = _fingerprint(folder, tmp_path / "index", second)
    n_files = len(a.pool) + len(a.test)
    assert problems == [] and first.read == first.decoded == n_files
    assert second.read == 0 and a.fingerprint == b.fingerprint


def test_an_image_rewritten_with_the_same_size_changes_the_fingerprint(folder, tmp_path):
    before, _ = _fingerprint(folder, tmp_path / "index")
    path = os.path.join(folder, "train", "benign", "benign_0.png")
    size, stat = os.path.getsize(path), os.stat(path)
    with open(path, "r+b") as f:  # one pixel byte flipped near the end: same size, still a file
        f.seek(size - 20)
        byte = f.read(1)
        f.seek(size - 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert os.path.getsize(path) == size
    counter = CountingRunner()
    after, _ = _fingerprint(folder, tmp_path / "index", counter)
    assert after.fingerprint != before.fingerprint and counter.read == 1  # only the changed file


def test_mtimes_alone_never_change_the_fingerprint(folder, tmp_path):
    """A copy on another node, or a touched tree, has other mtimes and the same bytes."""
    before, _ = _fingerprint(folder, tmp_path / "index")
    for dirpath, _, files in os.walk(folder):
        for name in files:
            os.utime(os.path.join(dirpath, name), ns=(1, 10**18))
    counter = CountingRunner()
    after, _ = _fingerprint(folder, tmp_path / "index", counter)
    assert after.fingerprint == before.fingerprint and counter.read == len(after.pool) + len(after.test)
    moved = str(tmp_path / "copy")
    os.rename(folder, moved)  # the data set moved to another folder: same content, same key
    assert _fingerprint(moved, tmp_path / "index2")[0].fingerprint == before.fingerprint


def test_an_image_that_does_not_decode_is_named_and_remembered(folder, tmp_path):
    bad = os.path.join(folder, "test", "malignant", "malignant_1.png")
    with open(bad, "r+b") as f:
        f.truncate(40)
    _, problems = _fingerprint(folder, tmp_path / "index")
    assert len(problems) == 1 and problems[0].startswith(f"{bad}: not a readable image")
    counter = CountingRunner()
    _, again = _fingerprint(folder, tmp_path / "index", counter)
    assert again == problems and counter.read == 0  # the outcome was kept with the digest


def test_digest_only_then_checked_decodes_what_was_not_decoded(folder, tmp_path):
    plain, _ = _fingerprint(folder, tmp_path / "index", check=False)
    counter = CountingRunner()
    checked, _ = _fingerprint(folder, tmp_path / "index", counter, check=True)
    assert plain.fingerprint == checked.fingerprint and counter.decoded == len(checked.pool) + len(checked.test)


def test_labels_and_holdout_are_part_of_the_fingerprint(tmp_path):
    root = str(tmp_path / "aptos")
    layouts.aptos(root, labels=(0, 1, 2, 3, 4) * 5, n_test=2)
    index = str(tmp_path / "index")
    full, _ = content_fingerprint(load_dataset("aptos", root), index)
    held, _ = content_fingerprint(load_dataset("aptos", root, holdout=0.2), index)
    assert held.fingerprint.endswith("-holdout0.2") and held.fingerprint[:-len("-holdout0.2")] != full.fingerprint
    csv_path = os.path.join(root, "train.csv")
    text = open(csv_path).read().splitlines()
    first_id, label = text[1].split(",")
    text[1] = f"{first_id},{(int(label) + 1) % 5}"
    with open(csv_path, "w") as f:
        f.write("\n".join(text) + "\n")
    relabelled, _ = content_fingerprint(load_dataset("aptos", root), index)
    assert relabelled.fingerprint != full.fingerprint


def test_pcam_h5_files_are_digested_whole(tmp_path):
    root = str(tmp_path / "pcam")
    layouts.pcam_h5(root)
    index = str(tmp_path / "index")
    before, problems = content_fingerprint(load_dataset("patchcam", root), index)
    assert problems == [] and before.fingerprint.startswith("patchcam-")
    import h5py

    path = os.path.join(root, "camelyonpatch_level_2_split_test_x.h5")
    with h5py.File(path, "r+") as h5:  # one pixel changed in place: same file size
        h5["x"][0, 0, 0, 0] = (int(h5["x"][0, 0, 0, 0]) + 1) % 256
    after, _ = content_fingerprint(load_dataset("patchcam", root), index)
    assert after.fingerprint != before.fingerprint


def test_data_in_memory_keeps_its_own_content_fingerprint(tmp_path):
    data = load_dataset("digits")
    same, problems = content_fingerprint(data, str(tmp_path))
    assert same.fingerprint == data.fingerprint and problems == [] and not os.listdir(tmp_path)
