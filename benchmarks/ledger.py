"""One ledger per experiment: every run of a benchmark is a named row of
``benchmarks/results/<experiment>.json``.

    {"experiment": "group_deletion", "description": "...",
     "headline": {"lenet": "<row name>", "convnet": "<row name>"},
     "rows": [{"name": "convnet-deletion-...", "model": "convnet",
               "config": {...}, "config_hash": "3f2a...", "metrics": {...},
               "command": "python benchmarks/group_deletion.py ...", "date": "2026-11-28T14:05:34",
               "machine": {"cpu": ..., "cores": ..., "torch": ..., "python": ..., "torch_threads": ...},
               "outputs": {...}}]}                  # optional: the run folder, the checkpoint

- ``name``: readable and unique in its ledger; the scripts derive it from the settings that
  differ between runs (``--name`` overrides). A row with the same name is replaced only when
  asked (``--replace``); the scripts check this before they train. A script whose row names
  say what a part measured (benchmarks/energy.py) names the rows a new one supersedes
  (``append(supersedes=...)``, also only with ``--replace``): they go, the new row takes their
  place and headlines.
- ``config``: the full effective configuration of the run (what decides its figures: recipes,
  flags, input checkpoints), ``config_hash`` the first 16 hex digits of the SHA-256 of its
  canonical JSON (sorted keys, no spaces), so two rows with the same hash ran the same thing.
- ``metrics``: what the run measured. ``command``, ``date``, ``machine``: how, when and where
  (training figures move in the last digits between CPUs).
- ``headline``: for each key (the model, mostly), the row the README and ``summary.py`` quote.
  A key's first row becomes its headline; ``--headline`` (or ``ledger.py headline``) moves it.
- Rows folded in from the files this layout replaced keep the command they were made with in
  ``command_as_run`` when a flag of it was retired, and say where they came from in
  ``migrated_from``; they record only the settings those files recorded.

Rows are appended under the lock of ``common.io.update_json``, so runs that end together keep
both rows.

    python benchmarks/ledger.py list                           # experiments, rows, headlines
    python benchmarks/ledger.py list group_deletion            # one ledger's rows
    python benchmarks/ledger.py show group_deletion ROW        # one row as JSON
    python benchmarks/ledger.py headline group_deletion convnet ROW
"""

import argparse
import datetime as dt
import hashlib
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.errors import ConfigError  # noqa: E402
from common.io import update_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

EXPERIMENTS = {
    "train_dense": "Dense baselines (benchmarks/train_dense.py): LeNet on MNIST, ConvNet on "
                   "CIFAR-10; the compression benchmarks start from these checkpoints.",
    "svd_truncation": "One-shot SVD truncation of the dense net without training "
                      "(benchmarks/svd_truncation.py): the floor rank clipping must beat.",
    "rank_clipping": "Rank clipping from the dense net (benchmarks/rank_clipping.py): plain, "
                     "nuclear norm or force regularization, optionally distilled; a row's name "
                     "is its run folder's (runs/bench/<name>).",
    "group_deletion": "Group connection deletion from a rank-clipped net "
                      "(benchmarks/group_deletion.py), beside unstructured magnitude pruning "
                      "(Han et al. 2015) of the same clipped net at the same sparsity: per mapped "
                      "matrix, the smallest-|w| weights masked to the same number of zeros as "
                      "group deletion left (metrics.magnitude_pruning).",
    "ir_drop": "The IR-drop solver (mapping/irdrop.py) against ngspice and badcrossbar on single "
               "tiles, per-tile SPICE decks against one deck, LeNet's whole chip "
               "(benchmarks/ir_drop.py).",
    "energy": "Energy, latency and throughput per inference (benchmarks/energy.py, "
              "hardware-model section 7): the ISAAC 32 nm preset against ISAAC's Table 6, and "
              "LeNet/ConvNet (dense and compressed) and VGG-16 (dense) with their interconnect.",
    "routing": "Placement and global routing (benchmarks/routing_scale.py): synthetic dense "
               "designs at scale, LeNet/ConvNet dense from the mapper against the bounds, and "
               "trained compressed nets against their dense baseline. Target: VGG-16 at 128x128 "
               "placed and routed in <= 120 s; LeNet/ConvNet dense at 64x64: zero overflow at "
               "default capacity, wirelength <= 1.15 x lower bound.",
    "mapping_speed": "The mapper at VGG-16 scale (benchmarks/mapping_speed.py); target <= 10 s "
                     "for the 16 matrices.",
    "mapped_accuracy": "The mapped network, crossbar by crossbar, against PyTorch on a whole "
                       "test set (benchmarks/mapped_accuracy.py).",
    "trainer_overhead": "One epoch of the project's Trainer against a bare PyTorch loop "
                        "(benchmarks/trainer_overhead.py); target ratio <= 1.05.",
    "device_accuracy": "Accuracy on the full test set under device effects "
                       "(benchmarks/device_accuracy.py, hardware-model section 8): the dense, "
                       "rank-clipped and compressed LeNet and ConvNet at ADC 4/6/8 bits and "
                       "programming variation 0.05/0.1/0.2, mean and spread over chip seeds, the "
                       "ideal chip beside.",
    "device_sensitivity": "Which matrices a device effect hurts (benchmarks/device_sensitivity.py): "
                          "programming variation or a coarse ADC on one matrix at a time, the "
                          "others ideal, on the shipped dense and compressed nets; the loss "
                          "against the ideal chip per matrix.",
}
AWAITING: dict[str, str] = {}
"""Experiments listed before their first run, with what they wait for: no ledger file yet.
Their first recorded row creates the file; then the entry goes (tests/test_benchmarks.py says so)."""
REQUIRED = ("name", "model", "config", "config_hash", "metrics", "command", "date", "machine")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._,=+-]*")


def sci(x: float) -> str:
    """0.0275 -> '2.75e-2', 0.005 -> '5e-3': a strength as the command line writes it (row
    names, the README)."""
    if x == 0:
        return "0"
    e = math.floor(math.log10(abs(x)))
    m = round(x / 10**e, 6)
    if abs(m) >= 10:
        m, e = m / 10, e + 1
    return f"{m:g}e{e}"


def path(experiment: str, results: Path = RESULTS) -> Path:
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"no experiment {experiment!r}; the ledgers are: {', '.join(EXPERIMENTS)}.")
    return Path(results) / f"{experiment}.json"


def config_hash(config: Any) -> str:
    """First 16 hex digits of the SHA-256 of ``config``'s canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _plain(obj: Any) -> Any:
    """``obj`` as JSON gives it back (tuples as lists, paths as strings), so that the stored
    config hashes to the stored hash."""
    def default(o):
        if hasattr(o, "tolist"):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serializable: {type(o).__name__}")

    return json.loads(json.dumps(obj, default=default))


def empty(experiment: str) -> dict:
    return {"experiment": experiment, "description": EXPERIMENTS[experiment], "headline": {},
            "rows": []}


def load(experiment: str, results: Path = RESULTS) -> dict:
    p = path(experiment, results)
    return json.loads(p.read_text()) if p.is_file() else empty(experiment)


def find(doc: dict, name: str) -> dict | None:
    return next((r for r in doc["rows"] if r["name"] == name), None)


def row(experiment: str, name: str, results: Path = RESULTS) -> dict:
    """The row ``name`` of ``experiment``'s ledger; a ConfigError listing the rows if absent."""
    doc = load(experiment, results)
    r = find(doc, name)
    if r is None:
        raise ConfigError(f"no row {name!r} in {experiment}; rows: "
                          f"{', '.join(x['name'] for x in doc['rows']) or 'none'}.")
    return r


def headline(experiment: str, key: str, results: Path = RESULTS) -> dict | None:
    """The headline row of ``key`` (a model) in ``experiment``, or None."""
    doc = load(experiment, results)
    name = doc["headline"].get(key)
    return None if name is None else find(doc, name)


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise ConfigError(f"row name {name!r}: use letters, digits and . _ , = + - (no spaces, "
                          "not starting with a sign).")
    return name


def make_row(name: str, model: str, config: dict, metrics: dict, *, command: str | None = None,
             date: str | None = None, machine: dict | None = None, **extra) -> dict:
    """A ledger row; ``command``, ``date`` and ``machine`` default to this process's."""
    if machine is None:
        from benchmarks.machine import machine as this_machine

        machine = this_machine()
    config = _plain(config)
    return {"name": check_name(name), "model": model, "config": config,
            "config_hash": config_hash(config), "metrics": _plain(metrics),
            "command": command or "python " + " ".join(sys.argv),
            "date": date or dt.datetime.now().isoformat(timespec="seconds"),
            "machine": machine, **_plain(extra)}


def refuse_existing(experiment: str, name: str, replace: bool, results: Path = RESULTS) -> None:
    """Before a run: a ConfigError if its row would replace one and ``replace`` is not set."""
    check_name(name)
    old = None if replace else find(load(experiment, results), name)
    if old is not None:
        raise ConfigError(
            f"{path(experiment, results)} has a row {name!r} already (recorded {old['date']} by "
            f"'{old['command']}'); pass --replace to replace it, or --name for a new row.")


def append(experiment: str, new: dict, *, replace: bool = False, headline_key: str | None = None,
           make_headline: bool = False, supersedes: tuple[str, ...] = (),
           results: Path = RESULTS) -> list[str]:
    """Add ``new`` to ``experiment``'s ledger under its lock; a row of the same name is replaced
    in place only if ``replace``. ``headline_key``: the key (model) whose headline the row
    becomes if ``make_headline`` or if the key has none yet. ``supersedes``: rows of other names
    that ``new`` replaces (a benchmark part whose row name changed with what it measures; only
    with ``replace``): they are removed, ``new`` takes the place of the first and any headline
    that named one of them. Returns the names of the other rows with the same config_hash."""
    missing = [k for k in REQUIRED if k not in new]
    if missing:
        raise ValueError(f"row without {missing}")
    supersedes = tuple(n for n in supersedes if n != new["name"])
    if supersedes and not replace:
        raise ConfigError(f"{experiment}: row {new['name']!r} would replace "
                          f"{', '.join(map(repr, supersedes))}; pass --replace to replace them.")
    same: list[str] = []

    def update(doc: dict) -> dict:
        doc = doc or empty(experiment)
        gone = [i for i, r in enumerate(doc["rows"]) if r["name"] in supersedes]
        if gone:
            if not any(r["name"] == new["name"] for r in doc["rows"]):
                doc["rows"][gone[0]] = {"name": new["name"]}  # its place; filled below
                gone = gone[1:]
            doc["rows"] = [r for i, r in enumerate(doc["rows"]) if i not in gone]
            doc["headline"] = {k: (new["name"] if v in supersedes else v)
                               for k, v in doc["headline"].items()}
        at = next((i for i, r in enumerate(doc["rows"]) if r["name"] == new["name"]), None)
        if at is not None and not replace:
            old = doc["rows"][at]
            raise ConfigError(f"{experiment} has a row {new['name']!r} already (recorded "
                              f"{old['date']}); pass --replace to replace it.")
        if at is None:
            doc["rows"].append(new)
        else:
            doc["rows"][at] = new
        same[:] = [r["name"] for r in doc["rows"]
                   if r["config_hash"] == new["config_hash"] and r["name"] != new["name"]]
        if headline_key is not None and (make_headline or headline_key not in doc["headline"]):
            doc["headline"][headline_key] = new["name"]
        return doc

    update_json(path(experiment, results), update, indent=1)
    return same


def record(experiment: str, new: dict, args, headline_key: str | None,
           results: Path = RESULTS) -> None:
    """``append`` with the scripts' flags (--replace, --headline), and say what happened."""
    same = append(experiment, new, replace=args.replace, headline_key=headline_key,
                  make_headline=args.headline, results=results)
    doc = load(experiment, results)
    is_head = headline_key is not None and doc["headline"].get(headline_key) == new["name"]
    print(f"recorded row {new['name']!r} in {path(experiment, results)}"
          + (f" (the {headline_key} headline)" if is_head else ""))
    if same:
        print(f"  same config (hash {new['config_hash']}) as: {', '.join(same)}")


def set_headline(experiment: str, key: str, name: str, results: Path = RESULTS) -> None:
    def update(doc: dict) -> dict:
        doc = doc or empty(experiment)
        if find(doc, name) is None:
            raise ConfigError(f"no row {name!r} in {experiment}; rows: "
                              f"{', '.join(r['name'] for r in doc['rows']) or 'none'}.")
        doc["headline"][key] = name
        return doc

    update_json(path(experiment, results), update, indent=1)


def add_arguments(ap: argparse.ArgumentParser, name_help: str) -> None:
    """The flags every benchmark script has for its ledger row."""
    ap.add_argument("--name", default=None, help=f"the row's name in the ledger (default: {name_help})")
    ap.add_argument("--replace", action="store_true",
                    help="replace the ledger's row of the same name (default: refuse to run)")
    ap.add_argument("--headline", action="store_true",
                    help="make the row its model's headline (a model's first row is, anyway)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("list", help="the ledgers, or one ledger's rows")
    p.add_argument("experiment", nargs="?", choices=list(EXPERIMENTS))
    p = sub.add_parser("show", help="one row as JSON")
    p.add_argument("experiment", choices=list(EXPERIMENTS))
    p.add_argument("row")
    p = sub.add_parser("headline", help="make ROW the headline of KEY (a model)")
    p.add_argument("experiment", choices=list(EXPERIMENTS))
    p.add_argument("key")
    p.add_argument("row")
    args = ap.parse_args()
    if args.cmd == "show":
        print(json.dumps(row(args.experiment, args.row), indent=1))
    elif args.cmd == "headline":
        set_headline(args.experiment, args.key, args.row)
        print(f"{args.experiment}: headline of {args.key} -> {args.row}")
    elif args.experiment:
        doc = load(args.experiment)
        heads = {v: k for k, v in doc["headline"].items()}
        for r in doc["rows"]:
            mark = f"  [headline {heads[r['name']]}]" if r["name"] in heads else ""
            print(f"{r['date'][:10]}  {r['config_hash']}  {r['name']}{mark}")
    else:
        for e in EXPERIMENTS:
            doc = load(e)
            print(f"{e:18s}{len(doc['rows']):4d} rows  headline: "
                  + (", ".join(f"{k}={v}" for k, v in doc["headline"].items()) or "-"))


if __name__ == "__main__":
    from benchmarks.guard import guarded

    guarded(main)
