"""What a run is, for resuming it: the settings a resume.pt must share with the command that
continues it.

A stage hands the Trainer a ``run`` dict (stage, model, dataset, its own config dataclasses,
crossbar, teacher, initial checkpoint, derived steps such as the deletion step). The Trainer
saves it in resume.pt and writes it to config.json with the train settings; a resume under a
different run is refused, because continuing would change the objective mid-run (another
lambda, crossbar or teacher) and config.json would misreport the run.
"""

import json
from dataclasses import MISSING, asdict, fields, is_dataclass
from typing import Any


def run_json(run: dict[str, Any]) -> dict[str, Any]:
    """``run`` as config.json holds it: dataclasses as dicts, tuples as lists, paths as str."""
    plain = {k: asdict(v) if is_dataclass(v) else v for k, v in run.items()}
    return json.loads(json.dumps(plain, default=str))


def run_diff(saved: dict[str, Any], run: dict[str, Any]) -> dict[str, tuple]:
    """{'prune.lambda_': (saved, now), ...} over the settings that differ. A field of a config
    dataclass missing from ``saved`` (added to the code after the run was saved) counts as its
    default, which is what that run used."""
    saved = dict(saved)
    for k, v in run.items():
        if is_dataclass(v) and isinstance(saved.get(k), dict):
            defaults = {f.name: f.default for f in fields(v) if f.default is not MISSING}
            saved[k] = {**run_json({"d": defaults})["d"], **saved[k]}
    before, now = _flat(run_json(saved)), _flat(run_json(run))
    return {k: (before.get(k), now.get(k)) for k in sorted(set(before) | set(now))
            if before.get(k) != now.get(k)}


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)) if isinstance(v, dict)
                   else {f"{prefix}.{k}" if prefix else str(k): v})
    return out
