import builtins
import gzip
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from group_scissor.data import DATA_ENV, DataError, augment_batch, load_dataset, read_cifar_batch, read_idx

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def write_idx(path, arr):
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def fake_mnist(root, n_train=12, n_test=6):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return raw


def test_mnist_loader_reads_idx(tmp_path):
    fake_mnist(tmp_path)
    d = load_dataset("mnist", tmp_path)
    assert d.train.x.shape == (12, 1, 28, 28) and d.test.x.shape == (6, 1, 28, 28)
    assert d.train.x.dtype == torch.float32 and d.train.y.dtype == torch.int64
    assert not d.train.augment


def test_truncated_idx_is_a_clear_error(tmp_path):
    raw = fake_mnist(tmp_path)
    path = raw / "train-images-idx3-ubyte.gz"
    data = gzip.open(path).read()
    with gzip.open(path, "wb") as f:
        f.write(data[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_dataset("mnist", tmp_path)
    path.write_bytes(path.read_bytes()[:50])  # a cut-off gzip stream
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        read_idx(path, 3)


def test_gzip_bomb_is_refused_before_it_fills_memory(tmp_path):
    path = tmp_path / "bomb-idx3-ubyte.gz"
    header = struct.pack(">HBB3I", 0, 8, 3, 5000, 28, 28)
    with gzip.open(path, "wb") as f:  # 4 MB of zeros, a few kB on disk
        f.write(header + bytes(5000 * 28 * 28))
    assert path.stat().st_size < 20_000
    with pytest.raises(DataError, match="more than 1 MiB"):
        read_idx(path, 3, max_bytes=1 << 20)
    assert read_idx(path, 3).shape == (5000, 28, 28)  # the default cap holds every MNIST file


def test_missing_files_name_expected_files_and_dirs(tmp_path):
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*searched: .*" + tmp_path.name):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nope")
    with pytest.raises(DataError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet", tmp_path)


def test_cifar_loader_reads_python_batches(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
                 b"labels": list(rng.integers(0, 10, 4)), b"batch_label": b"x"}
        (root / name).write_bytes(pickle.dumps(batch))
    d = load_dataset("cifar10", tmp_path)
    assert d.train.x.shape == (20, 3, 32, 32) and d.test.x.shape == (4, 3, 32, 32)
    assert d.train.augment and not d.test.augment
    # R plane first: pixel (0,0) of channel 0 is byte 0, of channel 1 is byte 1024
    raw = pickle.loads((root / "data_batch_1").read_bytes())[b"data"]
    g = (raw[0, 1024] / 255 - 0.4822) / 0.2435
    assert d.train.x[0, 1, 0, 0].item() == pytest.approx(g, abs=1e-5)
    (root / "test_batch").write_bytes(b"garbage")
    with pytest.raises(DataError, match="test_batch: not a readable CIFAR-10"):
        load_dataset("cifar10", tmp_path)


def test_digits_is_embedded():
    d = load_dataset("digits")
    assert d.input_shape == (1, 28, 28)
    assert len(d.train) + len(d.test) == 1797
    assert set(d.train.y.unique().tolist()) == set(range(10))


def test_augment_is_seeded_and_shape_preserving():
    x = torch.randn(8, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and torch.equal(a, b)
    # each output is a shifted (and maybe flipped) window of its own input
    for i in range(8):
        found = any(
            torch.equal(a[i], torch.nn.functional.pad(x[i], (4, 4, 4, 4))[:, dy:dy + 32, dx:dx + 32]
                        .flip(2) if f else
                        torch.nn.functional.pad(x[i], (4, 4, 4, 4))[:, dy:dy + 32, dx:dx + 32])
            for dy in range(9) for dx in range(9) for f in (False, True))
        assert found


def test_real_mnist_and_cifar(real_data_dir):
    m = load_dataset("mnist", real_data_dir)
    assert (len(m.train), len(m.test)) == (60000, 10000)
    c = load_dataset("cifar10", real_data_dir)
    assert (len(c.train), len(c.test)) == (50000, 10000)
    assert c.train.x.mean((0, 2, 3)).abs().max() < 1e-3


class Payload:
    """Pickles as a call of ``func(*args)``: what a malicious batch would run when unpickled."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def fake_cifar(root, n=4, protocol=pickle.DEFAULT_PROTOCOL, **overrides):
    """The six batches of a tiny CIFAR-10; ``overrides`` replace whole batches by name."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": b"x"}
        (d / name).write_bytes(pickle.dumps(overrides.get(name, batch), protocol=protocol))
    return d


@pytest.mark.parametrize("payload", ["system", "exec", "print"])
def test_cifar_batch_cannot_run_code(tmp_path, payload, capsys):
    marker = tmp_path / "MARKER"
    func, args = {"system": (os.system, (f"touch {marker}",)),
                  "exec": (builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
                  "print": (builtins.print, ("PAYLOAD RAN",))}[payload]
    evil = {b"data": Payload(func, *args), b"labels": [0] * 4, b"batch_label": b"x"}
    fake_cifar(tmp_path, test_batch=evil)
    with pytest.raises(DataError, match=rf"test_batch: .*refused .*\b{func.__name__}\b"):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()
    assert "PAYLOAD RAN" not in capsys.readouterr().out


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL])
def test_cifar_batches_with_numpy_values_still_load(tmp_path, protocol):
    """numpy arrays and numpy ints, as written by python 3 with an old or the default protocol."""
    rng = np.random.default_rng(1)
    batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
             b"labels": list(rng.integers(0, 10, 4)), b"batch_label": b"x", "filenames": ["a.png"]}
    fake_cifar(tmp_path, protocol=protocol, test_batch=batch)
    d = load_dataset("cifar10", tmp_path)
    assert d.test.y.tolist() == [int(v) for v in batch[b"labels"]]



def test_malformed_numpy_state_is_refused_without_reaching_numpy(tmp_path):
    """numpy's own dtype.__setstate__ segfaults on a state that lost two fields (found by fuzzing),
    so the batch's numpy values must be checked before numpy sees them. Run in a child process:
    a regression fails this test instead of killing the test session."""
    blob = pickle.dumps(_batch(), protocol=2)
    state = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"  # (3, '|', None, None, None, -1, -1, 0)
    assert blob.count(state) == 1
    (tmp_path / "batch").write_bytes(blob.replace(state, state[2:]))
    code = ("import sys; from group_scissor.data import DataError, read_cifar_batch\n"
            "try: read_cifar_batch(sys.argv[1])\n"
            "except DataError as e: print(e)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "batch")], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert r.returncode == 0, f"child died with {r.returncode}: {r.stderr[-500:]}"
    assert "malformed dtype state" in r.stdout

@pytest.fixture
def real_cifar_dir() -> Path:
    d = Path(os.environ.get(DATA_ENV, SHARED_DATA)) / "cifar-10-batches-py"
    if not (d / "test_batch").is_file():
        pytest.skip(f"real CIFAR-10 not found at {d}")
    return d


def test_real_cifar_batch_passes_the_restricted_unpickler(real_cifar_dir):
    x, y = read_cifar_batch(real_cifar_dir / "test_batch")
    assert x.shape == (10000, 3, 32, 32) and x.dtype == np.uint8 and x.flags.writeable
    assert y.shape == (10000,) and y.dtype == np.int64 and set(y.tolist()) == set(range(10))


def _batch(n=4, labels=None, width=3072):
    rng = np.random.default_rng(2)
    return {b"data": rng.integers(0, 256, (n, width), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist() if labels is None else labels}


@pytest.mark.parametrize("file, arr, match", [
    ("train-labels-idx1-ubyte.gz", np.array([1, 2, 12] + [0] * 9),
     r"train-labels-idx1-ubyte.gz: .*label 12 at index 2.*\[0, 10\)"),
    ("t10k-images-idx3-ubyte.gz", np.zeros((6, 32, 32)),
     r"t10k-images-idx3-ubyte.gz: images are 32x32.*28x28"),
    ("t10k-images-idx3-ubyte.gz", np.zeros((0, 28, 28)), r"t10k-images-idx3-ubyte.gz: .*no images"),
    ("t10k-labels-idx1-ubyte.gz", np.zeros(0), r"t10k-labels-idx1-ubyte.gz: .*no images|6 images but"),
    ("t10k-labels-idx1-ubyte.gz", np.zeros(5), r"6 images but .*5 labels"),
])
def test_mnist_is_validated_on_load(tmp_path, file, arr, match):
    raw = fake_mnist(tmp_path)
    write_idx(raw / file, arr)
    with pytest.raises(DataError, match=match):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("batch, match", [
    (_batch(labels=[0, 1, -1, 2]), r"test_batch: .*label -1 at index 2.*\[0, 10\)"),
    (_batch(labels=[0, 10, 9, 2]), r"test_batch: .*label 10 at index 1"),
    (_batch(labels=[0.5, 1.0, 2.0, 3.0]), r"test_batch: 'labels' must be integers"),
    (_batch(labels=[True, False, True, True]), r"test_batch: 'labels' must be integers"),
    (_batch(labels=b"0123"), r"test_batch: 'labels' must be a list"),
    (_batch(width=1024), r"test_batch: 'data' must be .*\(N, 3072\).*1024"),
    ({b"data": np.zeros((4, 3072), np.float32), b"labels": [0] * 4}, r"test_batch: 'data' must be .*uint8"),
    (_batch(n=0, labels=[]), r"test_batch: .*no images"),
    (_batch(labels=[0, 1, 2]), r"test_batch: 4 images but 3 labels"),
    ([1, 2], r"test_batch: .*not a dict"),
    ({b"labels": [0]}, r"test_batch: .*lacks 'data'"),
    ({b"data": np.zeros((1, 3072), np.uint8)}, r"test_batch: .*lacks 'labels'"),
])
def test_cifar_is_validated_on_load(tmp_path, batch, match):
    fake_cifar(tmp_path, test_batch=batch)
    with pytest.raises(DataError, match=match):
        load_dataset("cifar10", tmp_path)


@pytest.mark.parametrize("labels", [np.array(3), [[0, 1], [2]], [2**70] * 4, [b"a"] * 4, [None] * 4])
def test_cifar_odd_labels_are_data_errors(tmp_path, labels):
    fake_cifar(tmp_path, test_batch=_batch(labels=labels))
    with pytest.raises(DataError, match="test_batch: 'labels' must be"):
        load_dataset("cifar10", tmp_path)


@pytest.fixture
def in_project_with_data(tmp_path, monkeypatch):
    """cwd holds ./data with MNIST and CIFAR-10, the fallbacks $GROUP_SCISSOR_DATA must not reach."""
    project = tmp_path / "project"
    fake_mnist(project / "data")
    fake_cifar(project / "data")
    monkeypatch.chdir(project)
    monkeypatch.delenv(DATA_ENV, raising=False)
    return project


def test_data_env_unset_falls_back_to_dot_data(in_project_with_data):
    assert len(load_dataset("mnist").test) == 6


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_data_env_pointing_nowhere_is_an_error(in_project_with_data, monkeypatch, name):
    monkeypatch.setenv(DATA_ENV, str(in_project_with_data / "nope"))
    with pytest.raises(DataError, match=rf"\${DATA_ENV} is set to '.*nope'.*not a folder.*unset it"):
        load_dataset(name)


@pytest.mark.parametrize("name, what", [("mnist", "MNIST/raw/"), ("cifar10", "cifar-10-batches-py/")])
def test_data_env_without_the_files_is_an_error(in_project_with_data, monkeypatch, name, what):
    empty = in_project_with_data / "empty"
    empty.mkdir()
    monkeypatch.setenv(DATA_ENV, str(empty))
    with pytest.raises(DataError, match=rf"searched: .*empty\b.*\${DATA_ENV} is set.*unset it") as e:
        load_dataset(name)
    assert what in str(e.value)
    # an explicit data_dir still wins over the variable
    assert len(load_dataset(name, in_project_with_data / "data").test) in (4, 6)


def test_data_env_with_the_files_is_used(in_project_with_data, monkeypatch, tmp_path):
    fake_mnist(tmp_path / "elsewhere", n_test=3)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "elsewhere"))
    assert len(load_dataset("mnist").test) == 3



def test_corrupt_gzip_body_is_a_data_error(tmp_path):
    """A flipped byte inside the deflate stream is a zlib.error, not an OSError."""
    raw = fake_mnist(tmp_path)
    path = raw / "train-labels-idx1-ubyte.gz"
    gz = bytearray(gzip.compress(gzip.decompress(path.read_bytes())))  # 10-byte header, no name
    gz[10] = 0b111  # first deflate block: final, type 3 (reserved) -> "invalid block type"
    path.write_bytes(bytes(gz))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: cannot read"):
        load_dataset("mnist", tmp_path)


def test_unreadable_cifar_batch_is_a_data_error(tmp_path):
    d = fake_cifar(tmp_path)
    (d / "test_batch").unlink()
    (d / "test_batch").mkdir()  # found by name, but not a readable file
    with pytest.raises(DataError, match="test_batch: cannot read"):
        read_cifar_batch(d / "test_batch")


@st.composite
def mutations(draw, base: bytes) -> bytes:
    """``base`` with 1-4 random edits: a byte set, a cut-off tail, bytes inserted or deleted."""
    b = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "truncate", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(b) - 1, 0)))
        if op == "set" and b:
            b[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del b[pos:]
        elif op == "insert":
            b[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        else:
            del b[pos:pos + draw(st.integers(1, 8))]
    return bytes(b)


_IDX = (struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 3, 4, 5)
        + np.arange(60, dtype=np.uint8).tobytes())
_FUZZ = settings(max_examples=100, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(data=st.data(), layer=st.sampled_from(["plain", "gz content", "gz stream"]))
def test_idx_reader_on_mutated_files_reads_or_raises_data_error(tmp_path, data, layer):
    if layer == "gz stream":
        blob, name = data.draw(mutations(gzip.compress(_IDX, mtime=0))), "f.gz"
    else:
        blob, name = data.draw(mutations(_IDX)), "f"
        if layer == "gz content":
            blob, name = gzip.compress(blob, mtime=0), "f.gz"
    (tmp_path / name).write_bytes(blob)
    try:
        arr = read_idx(tmp_path / name, 3)
    except DataError:
        return
    assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim == 3


_BATCH = {b"data": np.arange(2 * 3072, dtype=np.uint32).astype(np.uint8).reshape(2, 3072),
          b"labels": [np.int64(3), 7], b"batch_label": b"x"}  # a numpy int: dtype and scalar too


@_FUZZ
@given(data=st.data(), protocol=st.sampled_from([2, pickle.DEFAULT_PROTOCOL]))
def test_cifar_reader_on_mutated_batches_reads_or_raises_data_error(tmp_path, data, protocol):
    (tmp_path / "batch").write_bytes(data.draw(mutations(pickle.dumps(_BATCH, protocol=protocol))))
    try:
        x, y = read_cifar_batch(tmp_path / "batch")
    except DataError:
        return
    assert x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32) and len(x) >= 1
    assert y.dtype == np.int64 and y.shape == (len(x),) and ((y >= 0) & (y < 10)).all()


def test_cifar_memo_index_beyond_the_file_is_refused(tmp_path):
    """CPython < 3.15's C unpickler sizes its memo by the largest index it is given, so a few
    bytes could make it allocate and zero gigabytes (gh-115952); such an index is refused
    before unpickling. 2**20 (16 MB if it were honoured) keeps this test cheap either way."""
    blob = pickle.dumps(_batch(), protocol=2)
    assert blob.startswith(b"\x80\x02}q\x00")  # the batch dict, memoized at index 0
    blob = b"\x80\x02}r" + struct.pack("<I", 1 << 20) + blob[5:]
    fake_cifar(tmp_path, test_batch=None)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(blob)
    with pytest.raises(DataError, match=r"test_batch: .*memo index 1048576"):
        load_dataset("cifar10", tmp_path)
