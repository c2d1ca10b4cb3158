"""What a run is, for resuming it: the settings a resume.pt must share with the command that
continues it.

A stage hands the Trainer a ``run`` dict (stage, model, dataset, its own config dataclasses,
crossbar, teacher, initial checkpoint, derived steps such as the deletion step). The Trainer
saves it in resume.pt and writes it to config.json with the train settings; a resume under a
different run is refused, because continuing would change the objective mid-run (another
lambda, crossbar or teacher) and config.json would misreport the run.
"""

import json
import os
from dataclasses import asdict, is_dataclass
from typing import Any

SCHEMA_VERSION = 2
"""Version of the settings schema (the config sections and their fields). Every saved run
(config.toml, stage.json, resume.pt) records it; a run saved under another version is refused
with a message to start over (--force), never read through a compatibility path."""
PATHS = ("init_checkpoint", "distill.teacher")
"""Settings that name a file: compared as real paths (runs/a.pt and ./runs/a.pt are one file)."""
DERIVED = {"delete_step": "--epochs and --fine-tune-epochs",
           "last_clip_step": "--epochs and --fine-tune-epochs"}
"""Settings a stage derives from others, with what they follow (named when they differ)."""


def run_json(run: dict[str, Any]) -> dict[str, Any]:
    """``run`` as config.json holds it: configs as dicts (their ``to_dict`` if they have one),
    tuples as lists, paths as str."""
    return json.loads(json.dumps({k: _plain(v) for k, v in run.items()}, default=str))


def run_diff(saved: dict[str, Any], run: dict[str, Any]) -> dict[str, tuple]:
    """{'prune.lambda_': (saved, now), ...} over the settings that differ."""
    before, now = _flat(run_json(saved)), _flat(run_json(run))
    for d in (before, now):
        for k in PATHS + ("model",) * _is_onnx(d.get("model")):  # a model may be a file
            if isinstance(d.get(k), str):
                d[k] = os.path.realpath(d[k])
    return {k: (before.get(k), now.get(k)) for k in sorted(set(before) | set(now))
            if before.get(k) != now.get(k)}


def _is_onnx(model) -> bool:
    return isinstance(model, str) and model.lower().endswith(".onnx")


def explain(diff: dict[str, tuple], limit: int = 6) -> str:
    """'prune.lambda_: 0.1 -> 0.2; ...' (at most ``limit``), with what derived settings follow."""
    shown = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in list(diff.items())[:limit])
    more = "; ..." if len(diff) > limit else ""
    why = [f"{k} follows {DERIVED[k]}" for k in diff if k in DERIVED]
    return shown + more + (f"; {', '.join(why)}" if why else "")


def _plain(v):
    if hasattr(v, "to_dict") and is_dataclass(v):
        return v.to_dict()
    return asdict(v) if is_dataclass(v) else v


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out
