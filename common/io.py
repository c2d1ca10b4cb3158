"""Atomic file writes, for every package: a file is written to a temporary name beside its
target, flushed, then renamed into place, so an interrupted run never leaves a half-written
checkpoint, report, plot or netlist behind. A write the user can fix (disk full, quota, read-only
disk, no permission, a name too long) fails with an OutputError naming the path.

Run folders are written by one process at a time: ``folder_lock`` holds an exclusive flock on
FOLDER/.lock (which records the holder's pid) while a run writes there."""

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from common.errors import ConfigError, FolderInUseError, OutputError

NAME_MAX = 255
"""Bytes in one file or folder name on the usual file systems (ext4, xfs, btrfs, tmpfs)."""


def output_error(e: OSError, path: str | os.PathLike, action: str = "write",
                 what: str | None = None) -> OutputError | None:
    """``e``, raised while trying to ``action`` ``path``, as an OutputError naming the path and
    the fix, if the user can fix it (no space, quota, read-only disk, permission, a name too
    long, a file where a folder belongs); None for any other error (a bug or a failing disk).
    ``what``: how the user named the path (e.g. '--out')."""
    path = Path(path)
    subject = f"{what} {_short(path)}" if what else _short(path)
    code = e.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        why = ("no space left on the device" if code == errno.ENOSPC else
               "no space left in your disk quota")
        fix = ("free some space (or raise the quota), or write to another disk; the files written "
               "before are intact.")
    elif code == errno.EROFS:
        why, fix = "the file system is read-only", "write to a folder on a writable disk."
    elif code in (errno.EACCES, errno.EPERM):
        where = f" on {e.filename}" if e.filename and str(e.filename) != str(path) else ""
        why = f"permission denied{where}"
        fix = "write to a folder you may write into, or fix its permissions."
    elif code == errno.ENAMETOOLONG:
        long = [p for p in path.parts if len(os.fsencode(p)) > NAME_MAX]
        why = (f"the name {_short(Path(long[0]))!r} is {len(os.fsencode(long[0]))} bytes, longer "
               f"than the {NAME_MAX} a file system allows" if long else
               "the path is longer than the system allows")
        fix = "choose a shorter name."
    elif code == errno.ENOTDIR:
        why, fix = "a part of that path is a file, not a folder", "choose another path."
    else:
        return None
    err = OutputError(f"cannot {action} {subject}: {why}; {fix}")
    err.errno = code
    return err


def _short(path: Path) -> str:
    """``path`` with every name over 40 characters cut (a name too long would fill the message)."""
    return str(Path(*[p if len(p) <= 40 else f"{p[:20]}...({len(p)} characters)"
                      for p in path.parts])) if path.parts else str(path)


def make_dir(folder: str | os.PathLike, what: str | None = None) -> bool:
    """Create ``folder`` and its parents if needed; True if this call created it. A folder the
    user cannot have (no permission, read-only disk, name too long, a file in the way) is a
    UserError naming it (``what``: how the user named it, e.g. '--out')."""
    folder = Path(folder)
    subject = f"{what} {_short(folder)}" if what else _short(folder)
    try:
        if folder.is_dir():
            return False
        folder.mkdir(parents=True)
        return True
    except FileExistsError:
        if folder.is_dir():  # made by another process just now
            return False
        raise ConfigError(f"{subject} is a file; pass a directory.") from None
    except OSError as e:
        err = output_error(e, folder, "create", what)
        if err is None:
            raise
        raise err from None


LOCK_NAME = ".lock"
_held: dict[str, int] = {}  # lock files this process holds -> nesting depth


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str | None = None) -> Iterator[Path]:
    """Hold ``folder`` (created if needed) for this process: an exclusive flock on FOLDER/.lock,
    which records the pid, so that two runs never write one folder. Another holder: a
    FolderInUseError naming its pid, at once (no waiting). Reentrant within a process (a stage
    holds it around its Trainer, which takes it too).

    Released on exit, also on an exception; the kernel releases it when the process dies, so a
    .lock left by a killed run does not block (its pid is only informative). On release the
    lock file is removed, and the folder too if this call created it and nothing was written."""
    folder = Path(folder)
    created = make_dir(folder, what)
    path = folder / LOCK_NAME
    key = os.path.realpath(path)
    if key in _held:
        _held[key] += 1
        try:
            yield path
        finally:
            _held[key] -= 1
        return
    fd = _lock(path, what)
    _held[key] = 1
    try:
        yield path
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: see _lock
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: a run refused before writing leaves no trace


def _lock(path: Path, what: str | None) -> int:
    """Open and flock ``path`` (non-blocking), write our pid into it; the descriptor."""
    import fcntl

    subject = f"{what} {_short(path.parent)}" if what else _short(path.parent)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # the folder was removed under us (an empty one, released)
            make_dir(path.parent, what)
            continue
        except OSError as e:
            err = output_error(e, path.parent, "write into", what)
            if err is None:
                raise
            raise err from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise FolderInUseError(
                f"{subject} is in use by another run (pid {pid if pid.isdigit() else 'unknown'}); "
                "wait for it to finish, or pass another --out (one run writes a folder at a "
                "time).") from None
        # a holder releasing just now unlinks the file we opened before unlocking it: then lock
        # the file now at the path, which the next run will open too
        try:
            st, at = os.fstat(fd), os.stat(path)
            if (st.st_dev, st.st_ino) == (at.st_dev, at.st_ino):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as e:
        os.close(fd)
        err = output_error(e, path)
        if err is None:
            raise
        raise err from None
    return fd


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it onto ``path`` (never partial).

    ``mode`` is 'w' (text, UTF-8), 'wb' or 'w+b'.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        err = output_error(e, path)
        if err is None:
            raise
        raise err from None
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual file mode
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)
        # a write to this file that failed (not an error of the caller's reading another file)
        ours = isinstance(e, OSError) and e.filename in (None, tmp)
        err = output_error(e, path) if ours else None
        if err is None:
            raise
        raise err from None


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
