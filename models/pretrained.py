"""Reference checkpoints shipped with the package: the headline runs of the README's table,
named without a path.

    load_model("lenet", "lenet:group-scissor")     # or --checkpoint lenet:group-scissor

``models/pretrained/manifest.json`` lists each one: its file (a state dict, read with
``torch.load(weights_only=True)``), sha256, size, the config and command that made it and the
figures its ledger row records (benchmarks/results/<experiment>.json). A file whose sha256
differs from the manifest's is refused. ``benchmarks/ship_checkpoints.py`` writes them.
"""

import hashlib
import json
import re
from pathlib import Path

from common.errors import UserError

FOLDER = Path(__file__).with_name("pretrained")
MANIFEST = FOLDER / "manifest.json"
NAME = re.compile(r"([a-z0-9_]+):([a-z0-9_-]+)")


class PretrainedError(UserError, ValueError):
    """A shipped checkpoint that is unknown, missing or corrupt."""


def manifest() -> dict[str, dict]:
    """name -> entry (model, file, sha256, bytes, config, command, ledger)."""
    if not MANIFEST.is_file():
        return {}
    try:
        doc = json.loads(MANIFEST.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PretrainedError(f"{MANIFEST} is damaged ({e}); reinstall group-scissor") from None
    entries = doc.get("checkpoints") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("file"), str) and isinstance(e.get("sha256"), str)
            and isinstance(e.get("model"), str) for e in entries.values()):
        raise PretrainedError(f"{MANIFEST} does not list checkpoints as expected; reinstall "
                              "group-scissor")
    return entries


def available() -> list[str]:
    return sorted(manifest())


def is_name(path) -> bool:
    """A ``model:variant`` name rather than a path (an existing file of that name wins)."""
    return (isinstance(path, str) and NAME.fullmatch(path) is not None
            and not Path(path).exists())


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry(name: str) -> dict:
    entries = manifest()
    if name not in entries:
        raise PretrainedError(f"no shipped checkpoint named {name!r}; shipped: "
                              f"{', '.join(sorted(entries)) or 'none'} (see 'group-scissor "
                              "models'), or pass the path of a checkpoint.pt")
    return entries[name]


def resolve(name: str) -> Path:
    """The verified file of shipped checkpoint ``name``."""
    e = entry(name)
    path = FOLDER / Path(e["file"]).name  # a plain file name inside the folder, nothing else
    if not path.is_file():
        raise PretrainedError(f"shipped checkpoint {name!r} is missing ({path}); reinstall "
                              "group-scissor or restore the file from git")
    if sha256(path) != e["sha256"]:
        raise PretrainedError(f"shipped checkpoint {name!r} ({path}) does not match the sha256 in "
                              f"{MANIFEST.name}: the file is corrupt or was replaced; restore it "
                              "from git")
    return path
