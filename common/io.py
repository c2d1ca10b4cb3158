"""Atomic file writes, for every package: a file is written to a temporary name beside its
target, flushed, then renamed into place, so an interrupted run never leaves a half-written
checkpoint, report, plot or netlist behind."""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it onto ``path`` (never partial).

    ``mode`` is 'w' (text, UTF-8), 'wb' or 'w+b'.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_open(path) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, default=_jsonable) + "\n")


def update_json(path: str | os.PathLike, update, indent: int = 2) -> Any:
    """Read the JSON object at ``path`` ({} if absent), apply ``update(obj) -> obj`` and write it
    back atomically, holding a lock on the file's folder so that two processes updating it (two
    benchmark runs ending together) do not lose each other's entries. Returns the new obj."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)  # a lock on the folder leaves no lock file behind
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)  # released when the descriptor closes
        obj = update(json.loads(path.read_text()) if path.is_file() else {})
        write_json(path, obj, indent=indent)
    finally:
        os.close(folder)
    return obj


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def save_figure(fig, path: str | os.PathLike, dpi: int = 120, **kw) -> Path:
    """Save a matplotlib figure as PNG, atomically."""
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, **kw)
    return Path(path)


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
