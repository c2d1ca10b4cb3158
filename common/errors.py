"""The one exception type a user can cause: a bad name, file, setting or input.

Every error the project raises for something the user can fix derives from ``UserError``; the
command line prints those as one ``error: ...`` paragraph and exits 2. Anything else (a plain
ValueError, TypeError, KeyError from a bug) keeps its traceback.

The specific types also derive from the built-in type a caller would expect (a bad setting is a
ValueError, an unknown model name a KeyError), so ``except ValueError`` in user code still works.
"""


class UserError(Exception):
    """Something the user can fix; the message names the problem and the fix."""


class ConfigError(UserError, ValueError):
    """An invalid setting (out of range, wrong type, unknown name, inconsistent options)."""


class OutputError(UserError, OSError):
    """A file or folder cannot be written: no space, no permission, a read-only disk, a name too
    long. The message names the path; ``errno`` is the system's."""


class FolderInUseError(UserError, RuntimeError):
    """Another process holds the lock on a run folder (it is writing a run there)."""


def check_ranges(owner: str, obj, checks) -> None:
    """Each ``(field, lo, hi)`` of ``obj`` lies in [lo, hi]: a whole number where ``lo`` is an
    int, a finite number otherwise (bools refused); else ConfigError naming ``owner.field``."""
    import math

    for name, lo, hi in checks:
        v = getattr(obj, name)
        whole = isinstance(lo, int)
        if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)):
            raise ConfigError(f"{owner}.{name} must be {'an int' if whole else 'a number'}, "
                              f"got {v!r}")
        if not (lo <= v <= hi) or (not whole and not math.isfinite(v)):
            raise ConfigError(f"{owner}.{name} must be in [{lo}, {hi}], got {v!r}")
