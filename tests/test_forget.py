import hashlib

import numpy as np
import pytest

from bench.spec import ForgetSpec
from bench.errors import UserError
from bench.forget import materialize, select_indices

POOL = np.arange(0, 200, 2)  # a training pool that is not simply 0..n
LABELS = np.arange(200) % 10


def test_random_protocol_is_fixed_by_its_seed(tmp_path):
    spec = ForgetSpec("random", fraction=0.1, seed=3)
    a = select_indices(spec, POOL, LABELS, 10, tmp_path)
    b = select_indices(spec, POOL, LABELS, 10, tmp_path)
    c = select_indices(ForgetSpec("random", fraction=0.1, seed=4), POOL, LABELS, 10, tmp_path)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == 10 and np.all(np.isin(a, POOL)) and np.all(np.diff(a) > 0)


def test_class_protocol_takes_the_whole_class_of_the_pool(tmp_path):
    idx = select_indices(ForgetSpec("class", label=4), POOL, LABELS, 10, tmp_path)
    assert np.array_equal(idx, POOL[LABELS[POOL] == 4]) and len(idx) == 20
    with pytest.raises(UserError, match="class 12 does not exist"):
        select_indices(ForgetSpec("class", label=12), POOL, LABELS, 10, tmp_path)


def test_file_protocol_reads_and_checks_indices(tmp_path):
    np.save(tmp_path / "forget_idx.npy", np.array([10, 4, 2]))
    idx = select_indices(ForgetSpec("file", path="forget_idx.npy"), POOL, LABELS, 10, tmp_path)
    assert idx.tolist() == [2, 4, 10]
    np.save(tmp_path / "bad.npy", np.array([3, 4]))
    with pytest.raises(UserError, match="index 3 is not in the training pool"):
        select_indices(ForgetSpec("file", path="bad.npy"), POOL, LABELS, 10, tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        select_indices(ForgetSpec("file", path="missing.npy"), POOL, LABELS, 10, tmp_path)


def test_materialize_writes_once_with_sha256_and_refuses_a_changed_set(tmp_path):
    spec = ForgetSpec("random", fraction=0.1, seed=0)
    fs = materialize(spec, POOL, LABELS, 10, tmp_path, tmp_path / "results", "s")
    path = tmp_path / "results" / fs.file
    assert fs.file == "s/forget_sets/random-10pct.npy"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == fs.sha256
    assert np.array_equal(np.load(path), fs.indices)
    again = materialize(spec, POOL, LABELS, 10, tmp_path, tmp_path / "results", "s")
    assert again.sha256 == fs.sha256
    before = path.read_bytes()
    with pytest.raises(UserError, match="already holds a different forget set"):
        materialize(ForgetSpec("random", fraction=0.1, seed=1), POOL, LABELS, 10, tmp_path,
                    tmp_path / "results", "s")
    assert path.read_bytes() == before  # nothing a user ran before is overwritten
