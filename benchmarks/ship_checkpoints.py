"""Ship the checkpoints of the README's headline runs with the package (issue: results anyone
can check in minutes).

    python benchmarks/ship_checkpoints.py --model lenet [--model convnet]

For each model it takes the headline rows of the train_dense, rank_clipping, group_deletion and
routing ledgers, copies their checkpoints (the run folders the rows name, which the reproduce
scripts in examples/ re-create) to models/pretrained/<model>-<variant>.pt as plain state dicts,
and records each in models/pretrained/manifest.json with its sha256, size, config, command and
the figures of its ledger row. ``group-scissor verify`` then recomputes every figure from them.
A checkpoint missing from this machine is an error naming the script that re-creates it: never
ship another run under the old figures.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from common.errors import UserError  # noqa: E402
from common.io import save_torch, update_json  # noqa: E402
from models import pretrained  # noqa: E402
from models.checkpoint import load_checkpoint, state_dict_of  # noqa: E402

VARIANTS = {"dense": "train_dense", "clipped": "rank_clipping", "group-scissor": "group_deletion"}


def _checkpoint(row: dict) -> Path:
    out = row.get("outputs") or {}
    path = Path(out["checkpoint"]) if "checkpoint" in out else Path(out.get("run", "")) / "checkpoint.pt"
    if not path.is_file():
        raise UserError(f"the checkpoint of ledger row {row['name']!r} ({path}) is not on this "
                        "machine; re-create it with examples/reproduce_"
                        f"{row['model']}.sh (the stages resume) and run this again")
    return path


def ship(model: str) -> dict:
    entries = {}
    for variant, experiment in VARIANTS.items():
        row = ledger.headline(experiment, model)
        if row is None:
            raise UserError(f"the {experiment} ledger has no headline row for {model}")
        state = state_dict_of(load_checkpoint(_checkpoint(row)))
        dest = pretrained.FOLDER / f"{model}-{variant}.pt"
        save_torch(dest, {k: v.detach().clone().contiguous() for k, v in state.items()})
        entry = {"model": model, "file": dest.name, "sha256": pretrained.sha256(dest),
                 "bytes": dest.stat().st_size, "config": row["config"],
                 "command": row.get("command"), "date": row.get("date"),
                 "ledger": {"experiment": experiment, "row": row["name"],
                            "metrics": row["metrics"]}}
        if variant == "group-scissor":
            routed = ledger.headline("routing", model)
            if routed is not None:
                entry["routed"] = {"experiment": "routing", "row": routed["name"],
                                   "metrics": routed["metrics"]}
        entries[f"{model}:{variant}"] = entry
        print(f"{model}:{variant:14s} {dest.stat().st_size / 1e6:.2f} MB  {entry['sha256'][:16]}  "
              f"<- {row['name']}")
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, choices=["lenet", "convnet"])
    args = ap.parse_args()
    shipped = {}
    for m in args.model:
        shipped.update(ship(m))
    update_json(pretrained.MANIFEST, lambda doc: {
        "description": "Checkpoints of the README's headline runs; see models/pretrained.py",
        "checkpoints": {**doc.get("checkpoints", {}), **shipped}})
    print(f"wrote {pretrained.MANIFEST}; check them with: group-scissor verify")


if __name__ == "__main__":
    guarded(main)
