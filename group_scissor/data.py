"""Data sets as in-memory tensors: MNIST (IDX .gz), CIFAR-10 (python batches), digits (embedded).

Every loader returns a ``Split`` whose ``x`` is a float32 tensor (N, C, H, W), already normalized,
and ``y`` an int64 tensor (N,). Nothing is decoded per sample during training; augmentation
(CIFAR-10: random crop with 4-pixel padding + horizontal flip) is applied per batch with tensor ops.

Where the files are looked for: ``data_dir`` if given, else ``$GROUP_SCISSOR_DATA`` if set (and
then only there: a variable pointing at the wrong folder is an error, not a silent fallback), else
``./data``, then ``../shared/datasets``. Inside it:
  MNIST     <dir>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz  (or <dir>/ or <dir>/mnist/)
  CIFAR-10  <dir>/cifar-10-batches-py/{data_batch_1..5,test_batch}
The ``digits`` data set (8x8 handwritten digits, 1,797 samples) ships inside scikit-learn; it is
upsampled to 1x28x28 so MNIST models run on it unchanged.
"""

import gzip
import io
import math
import os
import pickle
import pickletools
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import UserError

DATA_ENV = "GROUP_SCISSOR_DATA"
DATASETS = ("mnist", "cifar10", "digits")

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
MNIST_MEAN_STD = ((0.1307,), (0.3081,))
CIFAR_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


class DataError(UserError, ValueError):
    """A data set could not be found or read; the message says where and what to do."""


@dataclass
class Split:
    """One split of a data set, in memory."""

    x: torch.Tensor  # (N, C, H, W) float32, normalized
    y: torch.Tensor  # (N,) int64
    augment: bool = False
    """Random crop (pad 4) + horizontal flip per batch when training (CIFAR-10)."""

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def candidate_dirs(data_dir: str | os.PathLike | None) -> list[Path]:
    """Where to look: ``data_dir``, else ``$GROUP_SCISSOR_DATA`` alone when set, else the defaults."""
    if data_dir is not None:
        return [Path(data_dir)]
    if os.environ.get(DATA_ENV):
        return [Path(os.environ[DATA_ENV])]
    return [Path("data"), Path("..") / "shared" / "datasets"]


def _how_to_fix(data_dir: str | os.PathLike | None) -> str:
    """The last sentence of a 'not found' error: how to point the loader at the files."""
    if data_dir is None and os.environ.get(DATA_ENV):
        return (f"${DATA_ENV} is set to {os.environ[DATA_ENV]!r}, so only that folder is searched: "
                f"point it at the folder that holds MNIST/raw/ or {CIFAR_DIR}/, pass --data-dir, or "
                "unset it to search ./data and ../shared/datasets. No download is attempted.")
    return f"Put them there and pass --data-dir <dir> (or set ${DATA_ENV}); no download is attempted."


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Load a whole data set into memory. ``name``: 'mnist', 'cifar10' or 'digits'."""
    key = name.lower().replace("-", "")
    if key == "digits":
        return load_digits()
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    dirs = candidate_dirs(data_dir)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DataError(
            f"data directory {str(data_dir)!r} does not exist. Pass --data-dir pointing at the "
            f"folder that holds MNIST/raw/ or {CIFAR_DIR}/ (or set ${DATA_ENV}); "
            "'--dataset digits' needs no files."
        )
    env = os.environ.get(DATA_ENV) if data_dir is None else None
    if env and not Path(env).is_dir():
        raise DataError(
            f"${DATA_ENV} is set to {env!r}, which is not a folder; when set, it is the only place "
            f"searched. Point it at the folder that holds MNIST/raw/ or {CIFAR_DIR}/, or unset it "
            "to search ./data and ../shared/datasets (or pass --data-dir)."
        )
    loader = _load_mnist if key == "mnist" else _load_cifar10
    return loader(dirs, _how_to_fix(data_dir))


def _searched(dirs: list[Path]) -> str:
    return ", ".join(str(d.resolve()) for d in dirs)


# ---- MNIST ------------------------------------------------------------------------------------

def _find_mnist(dirs: list[Path], how_to_fix: str) -> Path:
    for d in dirs:
        for sub in (d / "MNIST" / "raw", d, d / "mnist", d / "mnist" / "raw"):
            if all((sub / f).is_file() for pair in MNIST_FILES.values() for f in pair):
                return sub
    expected = ", ".join(f for pair in MNIST_FILES.values() for f in pair)
    raise DataError(
        f"MNIST not found. Expected the four official files ({expected}) in <dir>/MNIST/raw/; "
        f"searched: {_searched(dirs)}. {how_to_fix}"
    )


MAX_IDX_BYTES = 256 << 20
"""Largest IDX file read, after decompression (MNIST's training images are 47 MB): a damaged or
hostile .gz that would inflate beyond it is refused instead of filling the memory."""


def read_idx(path: Path, expected_dims: int, max_bytes: int = MAX_IDX_BYTES) -> np.ndarray:
    """Read an IDX file (optionally .gz) into a uint8 array; strict about magic and size."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read(max_bytes + 1)  # a gzip bomb stops here
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read IDX file ({type(e).__name__}: {e}); the file is "
                        "truncated, corrupt or not gzip. Replace it with the official file.") from None
    if len(raw) > max_bytes:
        raise DataError(f"{path}: holds more than {max_bytes >> 20} MiB of data (decompressed), "
                        "far more than an MNIST file; replace it with the official file.")
    if len(raw) < 4 + 4 * expected_dims:
        raise DataError(f"{path}: too short for an IDX header; replace it with the official file.")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08 or ndim != expected_dims:
        raise DataError(f"{path}: not a uint8 IDX file with {expected_dims} dimensions "
                        f"(magic {raw[:4].hex()}); replace it with the official file.")
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(shape):  # python ints: no int64 overflow from a corrupt header
        raise DataError(f"{path}: header says {shape} = {math.prod(shape)} bytes, file has "
                        f"{body.size}; the file is truncated. Replace it with the official file.")
    return body.reshape(shape)


def _normalize(x: torch.Tensor, mean_std: tuple) -> torch.Tensor:
    mean = torch.tensor(mean_std[0]).view(1, -1, 1, 1)
    std = torch.tensor(mean_std[1]).view(1, -1, 1, 1)
    return (x - mean) / std


def _check_labels(path: Path, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Integer labels in [0, num_classes), as int64; else a DataError naming the file."""
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise DataError(f"{path}: 'labels' must be integers, one per image; got {labels.dtype} "
                        f"of shape {labels.shape}. Replace it with the official file.")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise DataError(f"{path}: label {labels[bad[0]]} at index {bad[0]} ({bad.size} of {labels.size} "
                        f"labels) is outside [0, {num_classes}); replace it with the official file.")
    return labels.astype(np.int64)


def _read_mnist_split(root: Path, img_f: str, lab_f: str) -> tuple[np.ndarray, np.ndarray]:
    imgs, labs = read_idx(root / img_f, 3), read_idx(root / lab_f, 1)
    if imgs.shape[1:] != (28, 28):
        raise DataError(f"{root / img_f}: images are {imgs.shape[1]}x{imgs.shape[2]}; MNIST images "
                        "are 28x28 grayscale. Replace it with the official file.")
    if len(imgs) == 0:
        raise DataError(f"{root / img_f}: holds no images; replace it with the official file.")
    if len(imgs) != len(labs):
        raise DataError(f"{root}: {img_f} has {len(imgs)} images but {lab_f} has "
                        f"{len(labs)} labels; replace them with the official files.")
    return imgs, _check_labels(root / lab_f, labs, 10)


def _load_mnist(dirs: list[Path], how_to_fix: str) -> Dataset:
    root = _find_mnist(dirs, how_to_fix)
    splits = {}
    for split, (img_f, lab_f) in MNIST_FILES.items():
        imgs, labs = _read_mnist_split(root, img_f, lab_f)
        x = torch.from_numpy(imgs.copy()).float().div_(255).unsqueeze(1)  # (N,1,28,28)
        splits[split] = Split(_normalize(x, MNIST_MEAN_STD), torch.from_numpy(labs))
    return Dataset("mnist", splits["train"], splits["test"], 10)


# ---- CIFAR-10 ---------------------------------------------------------------------------------

def _load_cifar10(dirs: list[Path], how_to_fix: str) -> Dataset:
    root = next((d / CIFAR_DIR for d in dirs
                 if all((d / CIFAR_DIR / f).is_file() for fs in CIFAR_FILES.values() for f in fs)),
                None)
    if root is None:
        raise DataError(
            f"CIFAR-10 not found. Expected {CIFAR_DIR}/ with data_batch_1..5 and test_batch "
            f"(the official python version); searched: {_searched(dirs)}. {how_to_fix}"
        )
    splits = {}
    for split, files in CIFAR_FILES.items():
        xs, ys = zip(*(read_cifar_batch(root / f) for f in files), strict=True)
        x = torch.from_numpy(np.concatenate(xs)).float().div_(255)  # (N,3,32,32)
        splits[split] = Split(_normalize(x, CIFAR_MEAN_STD),
                              torch.from_numpy(np.concatenate(ys)), augment=(split == "train"))
    return Dataset("cifar10", splits["train"], splits["test"], 10)


# CIFAR-10 batches are pickles, and unpickling calls whatever the file names. _CifarUnpickler
# resolves only the names that rebuild the official batches' contents (dicts, lists, bytes, ints
# and numpy arrays); any other (os.system, builtins.exec, ...) is refused before anything runs.
# Even the allowed names never reach numpy's own unpickling: numpy's dtype.__setstate__ crashes
# the interpreter on a malformed state, and np.dtype(..., copy=False) is numpy's process-wide
# dtype. The file's dtypes and arrays are read into the _Spec objects below, checked, and turned
# into arrays only with np.frombuffer (so no allocation beyond the file's own bytes either).
_SIMPLE_DTYPE = re.compile(r"b1|[iu][1248]|f[248]")


def _bad(what: str) -> pickle.UnpicklingError:
    return pickle.UnpicklingError(f"malformed {what}")


def _text(v):
    """A python 2 str reads as bytes under encoding='bytes'."""
    return v.decode("latin1") if isinstance(v, bytes) else v


class _Spec:
    __slots__ = ()

    def __setstate__(self, state):  # what BUILD calls; by default, refuse
        raise _bad(f"BUILD on {type(self).__name__}")


class _Callable(_Spec):
    """An allowed global, as handed to the pickle: callable, and immune to BUILD."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)


class _NdarrayType(_Spec):
    """Stands for numpy.ndarray: only usable as the first argument of _reconstruct."""

    __slots__ = ()


class _DtypeSpec(_Spec):
    """``numpy.dtype(kind, align, copy)`` then BUILD (byte order): a plain bool/int/float dtype."""

    __slots__ = ("dtype",)

    def __init__(self, kind, align=False, copy=False):
        kind = _text(kind)
        if not (isinstance(kind, str) and _SIMPLE_DTYPE.fullmatch(kind)):
            raise _bad(f"dtype {kind!r}: a CIFAR-10 batch holds only bool, int and float arrays")
        self.dtype = np.dtype(kind)

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, elsize, alignment, flags[, metadata])
        if not (isinstance(state, tuple) and len(state) in (8, 9)
                and all(v is None for v in state[2:5]) and _text(state[1]) in ("<", ">", "|", "=")):
            raise _bad("dtype state")
        if _text(state[1]) in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(_text(state[1]))


class _ArraySpec(_Spec):
    """A numpy array: from ``_reconstruct`` then BUILD (the official files), or ``_frombuffer``."""

    __slots__ = ("array",)

    def __init__(self, array=None):
        self.array = array

    def __setstate__(self, state):
        # ndarray.__reduce__'s state: (version, shape, dtype, is_fortran, raw bytes)
        if self.array is not None or not (isinstance(state, tuple) and len(state) == 5):
            raise _bad("array state")
        _, shape, dtype, fortran, raw = state
        if fortran not in (False, True):
            raise _bad("array state")
        self.array = _array(raw, dtype, shape, "F" if fortran else "C")


def _array(buf, dtype, shape, order) -> np.ndarray:
    if not (isinstance(buf, bytes | bytearray) and isinstance(dtype, _DtypeSpec)
            and isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)
            and _text(order) in ("C", "F")):
        raise _bad("array")
    # a copy into a bytearray: a writable array, as numpy's own unpickling gives
    return np.frombuffer(bytearray(buf), dtype=dtype.dtype).reshape(shape, order=_text(order))


def _reconstruct(subtype, shape, typecode) -> _ArraySpec:
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: the empty array that BUILD then fills."""
    if not (isinstance(subtype, _NdarrayType) and shape == (0,) and isinstance(typecode, bytes | str)):
        raise _bad("numpy _reconstruct")
    return _ArraySpec()


def _frombuffer(buf, dtype, shape, order) -> _ArraySpec:
    """numpy's ``_frombuffer``: arrays pickled with protocol 5 (python 3's default)."""
    return _ArraySpec(_array(buf, dtype, shape, order))


def _scalar(dtype, data) -> int | float | bool:
    """numpy's ``scalar(dtype, bytes)`` (numpy ints in a 'labels' list), as a python number."""
    if not (isinstance(dtype, _DtypeSpec) and isinstance(data, bytes) and len(data) == dtype.dtype.itemsize):
        raise _bad("numpy scalar")
    return np.frombuffer(data, dtype=dtype.dtype)[0].item()


def _latin1(text, encoding) -> bytes:
    """``_codecs.encode(str, 'latin1')``: how python 3 writes bytes with pickle protocol <= 2."""
    if not (isinstance(text, str) and encoding in ("latin1", "latin-1")):
        raise _bad("_codecs.encode")
    return text.encode("latin1")


_CIFAR_GLOBALS = {
    ("numpy", "ndarray"): _NdarrayType(),
    ("numpy", "dtype"): _Callable(_DtypeSpec),
    ("numpy.core.multiarray", "_reconstruct"): _Callable(_reconstruct),  # the official files
    ("numpy._core.multiarray", "_reconstruct"): _Callable(_reconstruct),  # written by numpy >= 2
    ("numpy.core.numeric", "_frombuffer"): _Callable(_frombuffer),
    ("numpy._core.numeric", "_frombuffer"): _Callable(_frombuffer),
    ("numpy.core.multiarray", "scalar"): _Callable(_scalar),
    ("numpy._core.multiarray", "scalar"): _Callable(_scalar),
    ("_codecs", "encode"): _Callable(_latin1),
}


def _check_memo_indices(raw: bytes) -> None:
    """Refuse memo indices no real pickle has: the C unpickler of CPython < 3.15 sizes its memo
    table by the largest index, so a 9-byte file could make it allocate and zero gigabytes
    (CPython gh-115952). A pickler numbers memo entries 0, 1, 2, ...: each index is below the
    count of opcodes before it. Costs ~0.06 s on an official 30 MB batch."""
    for n, (op, arg, _) in enumerate(pickletools.genops(raw)):
        if op.name in _MEMO_OPS and not (isinstance(arg, int) and 0 <= arg < n):
            raise _bad(f"pickle: memo index {arg} at opcode {n}")


_MEMO_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"})


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _CIFAR_GLOBALS[(module, name)]
        except (KeyError, TypeError):
            raise _RefusedGlobal(f"{module}.{name}") from None


def _resolved(v):
    return v.array if isinstance(v, _ArraySpec) else v


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> (uint8 (N, 3, 32, 32), int64 (N,)), without running its code."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e}).") from None
    try:
        _check_memo_indices(raw)
        d = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _RefusedGlobal as e:
        raise DataError(
            f"{path}: refused to unpickle the global {e}, which an official CIFAR-10 python batch "
            "never holds (only dicts, lists, bytes, ints and numpy arrays); nothing from the file was "
            "run. Replace it with the file from the official python tarball.") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means a bad file
        raise DataError(f"{path}: not a readable CIFAR-10 python batch ({type(e).__name__}: {e}); "
                        "replace it with the file from the official python tarball.") from None
    if not isinstance(d, dict):
        what = "numpy value" if isinstance(d, _Spec) else type(d).__name__
        raise DataError(f"{path}: holds a {what}, not a dict as a CIFAR-10 python batch does; "
                        "replace it with the file from the official python tarball.")
    data, labels = (_resolved(_batch_field(path, d, k)) for k in ("data", "labels"))
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3072):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072) (N images of "
                        f"3x32x32, R plane then G then B), got {got}; replace it with the official file.")
    if len(data) == 0:
        raise DataError(f"{path}: holds no images; replace it with the official file.")
    if not isinstance(labels, list | np.ndarray):
        raise DataError(f"{path}: 'labels' must be a list of ints, got {type(labels).__name__}; "
                        "replace it with the official file.")
    try:
        labels = np.asarray(labels)
    except (ValueError, TypeError, OverflowError) as e:  # ragged, or ints beyond int64
        raise DataError(f"{path}: 'labels' must be integers, one per image ({e}); "
                        "replace it with the official file.") from None
    labels = _check_labels(path, labels, 10)
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels; "
                        "replace it with the official file.")
    return data.reshape(-1, 3, 32, 32), labels


def _batch_field(path: Path, d: dict, key: str):
    for k in (key.encode(), key):  # python 2 wrote bytes keys, python 3 may write str
        if k in d:
            return d[k]
    keys = ", ".join(repr(k)[:40] for k in list(d)[:6]) + (", ..." if len(d) > 6 else "")
    raise DataError(f"{path}: lacks '{key}' (keys: {keys or 'none'}); it is not a CIFAR-10 python "
                    "batch. Replace it with the official file.")


# ---- digits (embedded) ------------------------------------------------------------------------

def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits, upsampled to 1x28x28; a fixed seeded train/test split."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)  # (1797,1,8,8)
    x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
    x = (x - x.mean()) / x.std()
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(y) * test_fraction)
    test, train = perm[:n_test], perm[n_test:]
    return Dataset("digits", Split(x[train], y[train]), Split(x[test], y[test]), 10)


# ---- batching ---------------------------------------------------------------------------------

def augment_batch(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop (zero padding ``pad``) and horizontal flip, per sample, vectorized.

    x: (B, C, H, W) -> (B, C, H, W).
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # (B,1,H,1)
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # (B,1,1,W)
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None],
                 rows, cols]
    flip = torch.rand(b, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)
