"""Atomic file writes: every artifact is written to a temporary file, then renamed into place,
so an interrupted run never leaves a half-written checkpoint or report behind."""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    data = (json.dumps(obj, indent=2, default=_jsonable) + "\n").encode()
    return _atomic(Path(path), lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic(Path(path), lambda f: f.write(text.encode()))


def save_torch(path: str | os.PathLike, obj: Any) -> Path:
    return _atomic(Path(path), lambda f: torch.save(obj, f))


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
