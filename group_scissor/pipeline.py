"""``compile``: the whole flow, network to chip report, as a chain of resumable stages.

    report = compile(CompileConfig(model="lenet", dataset="mnist"), out="runs/chip")

Stages, each in its own folder of ``out``; each reads the previous stage's files, writes its
own and a ``metrics.json``, and a ``stage.json`` (schema version, fingerprint of its settings
and of the stages before it, metrics, run time) once it is complete:
  1-train   dense baseline             checkpoint.pt, metrics.json
  2-clip    rank clipping              checkpoint.pt, ranks.json, ranks.png, mapping.json
  3-prune   group connection deletion  checkpoint.pt, wires.json, tiles.png, mapping.json
  4-map     3-prune/checkpoint.pt   -> design.json (+ weights), dense.json, mapping.json/.csv/.txt
  5-route   4-map/design.json       -> routed.json, placement.json, routes.json, routing.json,
                                       floorplan.png, congestion.png (and the dense baseline's)
  6-export  4-map + 5-route/routed.json -> chip.json (+ weights, with the layout), chip.sp, chip.v
  7-evaluate  only with [evaluate] device_file: 3-prune/checkpoint.pt mapped as 4-map maps it, on
            N chips of the device -> evaluate.json (the report of ``group-scissor evaluate``)
then report.json, report.md and the effective config.toml in ``out``, built from the stages'
metrics. Every setting is checked before stage 1 starts. A stage whose stage.json matches is
skipped; a stage about to run first loses its stage.json, so a run killed under other settings
is never taken for up to date; an interrupted training stage resumes from its resume.pt when
its settings are the same. Map, route and export write into a fresh folder that replaces the
old one whole. Paths inside ``out`` are recorded relative to it, so a copied or moved run
folder reads its own files. A folder made under another settings schema is refused (--force).

7-evaluate comes last but depends on 4-map only (the final checkpoint and the crossbar spec; it
maps the network itself, as ``group-scissor evaluate`` does): its fingerprint chains to 4-map's,
so a new placement or netlist format does not re-run the chips. Without a device file it is not
run, an earlier run's 7-evaluate is removed (the run folder holds what its config.toml says),
and the report says "not evaluated".
"""

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import models
from common.errors import ConfigError
from common.io import folder_lock, write_json, write_text
from group_scissor.config import TECH_ROUTE_FIELDS, CompileConfig
from group_scissor.resume import SCHEMA_VERSION

STAGES = ("train", "clip", "prune", "map", "route", "export", "evaluate")
STAGE_FILES = {
    "train": ("checkpoint.pt", "metrics.json"),
    "clip": ("checkpoint.pt", "ranks.json", "ranks.png", "mapping.json"),
    "prune": ("checkpoint.pt", "wires.json", "tiles.png", "mapping.json"),
    "map": ("design.json", "dense.json", "mapping.json", "mapping.csv", "mapping.txt"),
    "route": ("routed.json", "placement.json", "routes.json", "routing.json", "floorplan.png",
              "congestion.png", "dense_floorplan.png", "dense_congestion.png"),
    "export": (),  # chip.json/.sp/.v as compile's ``formats`` ask
    "evaluate": ("evaluate.json",),
}
"""The files each stage writes besides stage.json and metrics.json (tests/test_contracts.py)."""
TRAINING = ("train", "clip", "prune")
"""Stages that train in place and resume from resume.pt; the others replace their folder."""
OPTIONAL = {"evaluate": "evaluate.device_file"}
"""Stages run only when this setting is set (else not run and their folder removed)."""


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Runner:
    def __init__(self, out: Path, force: bool, log):
        self.out, self.force, self.log = out, force, log
        self.prev = ""  # fingerprint of the previous stage (changes ripple downstream)
        self.records: dict[str, dict] = {}

    def run(self, index: int, name: str, settings, fn, after: str | None = None) -> dict:
        """Run stage ``name`` unless its record matches; ``after``: the stage whose
        fingerprint this one's chains to (default: the stage run before it)."""
        folder = self.out / f"{index}-{name}"
        prev = self.prev if after is None else self.records[after]["fingerprint"]
        fp = _fingerprint(SCHEMA_VERSION, prev, name, settings)
        rec_path = folder / "stage.json"
        rec = _record(rec_path) if not self.force else {}
        if rec.get("fingerprint") == fp:
            self.log(f"[{index}-{name}] up to date, skipped")
            self.prev, self.records[name] = fp, rec
            return rec
        self.log(f"[{index}-{name}] running")
        rec_path.unlink(missing_ok=True)  # invalid from here until the stage completes
        _sweep(self.out, folder)
        start = time.perf_counter()
        if name in TRAINING:
            resume = (not self.force and (folder / "resume.pt").is_file()
                      and _same_fp(folder / "stage.pending", fp))
            folder.mkdir(parents=True, exist_ok=True)
            write_text(folder / "stage.pending", fp)
            metrics = fn(folder, resume)
            (folder / "stage.pending").unlink(missing_ok=True)
        else:  # written whole into a fresh folder that then replaces the old one
            tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                metrics = fn(tmp, False)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if folder.exists():
                old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
                folder.rename(old)
                tmp.rename(folder)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(folder)
        rec = {"stage": name, "schema_version": SCHEMA_VERSION, "fingerprint": fp,
               "seconds": round(time.perf_counter() - start, 2), "metrics": metrics}
        write_json(rec_path, rec)
        self.prev, self.records[name] = fp, rec
        return rec


def _outside(checkpoint) -> str:
    """A checkpoint from outside the run folder as recorded: absolute, or a shipped name."""
    from models import pretrained

    return str(checkpoint) if pretrained.is_name(str(checkpoint)) else os.path.abspath(checkpoint)


def _inside(out: Path, recorded: str):
    """A recorded checkpoint as a path to load: inside ``out`` if relative; absolute paths and
    shipped names as they are."""
    from models import pretrained

    return recorded if pretrained.is_name(recorded) else out / recorded


def _sweep(out: Path, folder: Path) -> None:
    """Remove what a killed run of this stage left: its half-built folders in ``out`` and the
    temporary files of interrupted atomic writes in its folder (compile holds ``out``)."""
    for old in out.glob(f".{folder.name}.*.tmp"):
        shutil.rmtree(old, ignore_errors=True)
    for old in out.glob(f".{folder.name}.*.old"):
        shutil.rmtree(old, ignore_errors=True)
    for old in folder.glob(".*.tmp") if folder.is_dir() else ():
        if old.is_file():
            old.unlink(missing_ok=True)


def _record(path: Path) -> dict:
    """A stage.json, or {} if absent or damaged (the stage is redone); another schema: refused."""
    try:
        rec = json.loads(path.read_text()) if path.is_file() else None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {}
    if not isinstance(rec, dict):
        return {}
    if rec.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"{path.parent.parent} holds a compile made by another group-scissor "
                          f"(settings schema {rec.get('schema_version', 1)}, this is "
                          f"{SCHEMA_VERSION}); re-run with --force to start it over, or choose "
                          "another --out")
    return rec


def _same_fp(path: Path, fp: str) -> bool:
    return path.is_file() and path.read_text().strip() == fp


def validate(cfg: CompileConfig) -> None:
    """Every check that can run before training: the model, the data set's name and files,
    the stages' epoch budgets, the per-matrix lambdas against the clipped model, the teacher.
    Raises a UserError naming the setting; takes a few seconds at most."""
    from group_scissor.compress import layers_to_clip
    from group_scissor.data import DATASETS, load_dataset
    from group_scissor.group_lasso import grouped_matrices
    from group_scissor.stages import check_fine_tune_epochs, fine_tune_restart
    from models.checkpoint import load_model
    from models.lowrank import to_low_rank

    info = models.info(cfg.model)
    _device_file(cfg)
    key = cfg.dataset.lower().replace("-", "")
    if key != "digits" and key not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.dataset!r}; available: digits, "
                          f"{', '.join(DATASETS)}")
    for what, train, stage in (("clip", cfg.clip_train, cfg.clip),
                               ("prune", cfg.prune_train, cfg.prune)):
        check_fine_tune_epochs(stage.fine_tune_epochs, train.epochs,
                               f"{what} needs epochs before its fine-tuning "
                               f"({what}.fine_tune_epochs, {what}_train.epochs)")
        fine_tune_restart(train, stage.fine_tune_epochs, stage.fine_tune_lr,
                          stage.fine_tune_warmup_epochs)
    spec = cfg.spec()
    model = load_model(cfg.model, cfg.baseline_checkpoint)  # a bad checkpoint fails now
    to_low_rank(model, layers_to_clip(cfg.clip, cfg.model))
    grouped_matrices(model, spec.rows, spec.lcols, cfg.prune)  # unknown matrix names fail now
    data = load_dataset(cfg.dataset, cfg.data_dir)  # last: the slowest check (files readable)
    if tuple(info.input_shape) != data.input_shape:
        raise ConfigError(f"model {cfg.model!r} takes inputs of shape {info.input_shape} but "
                          f"dataset {cfg.dataset!r} has {data.input_shape}")


def _device_file(cfg: CompileConfig) -> dict | None:
    """The whole device file of [evaluate] (None: no device evaluation), read and checked
    against the encoding; a ConfigError names the setting."""
    from mapping.devices import DeviceModel, describe

    name = cfg.evaluate.device_file
    if name is None:
        return None
    try:
        file = describe(name)
    except ConfigError as e:
        raise ConfigError(f"evaluate.device_file (--device-file) {name!r}: {e}") from None
    device = DeviceModel.from_dict(file)
    if cfg.encoding == "unsigned" and (device.physical or device.has_wires):
        raise ConfigError(f"evaluate.device_file {name!r} has a physical conductance window or "
                          "wire resistance, which encoding 'unsigned' (signed conductances, an "
                          "idealisation) cannot take; use --encoding differential or offset")
    return file


def compile(cfg: CompileConfig, out: str | Path, force: bool = False, progress: bool = True,
            log=print) -> dict:
    """Run (or resume) every stage; returns the report (also written to out/report.json)."""

    out = Path(out)
    cfg = cfg.absolute()  # the files as config.toml records them: resumable from any folder
    validate(cfg)
    with folder_lock(out, "--out"):  # one compile per run folder
        return _compile(cfg, out, force, progress, log)


def _compile(cfg: CompileConfig, out: Path, force: bool, progress: bool, log) -> dict:
    from group_scissor.compress import clip_stage
    from group_scissor.distill import DistillConfig
    from group_scissor.physical import export_stage, map_stage, route_stage
    from group_scissor.prune import prune_stage
    from group_scissor.stages import train_stage

    r = _Runner(out, force, log)
    common = dict(model_name=cfg.model, dataset=cfg.dataset, data_dir=cfg.data_dir)
    hw = dict(crossbar=cfg.crossbar, encoding=cfg.encoding)

    def here(p: Path) -> str:
        """A path inside ``out`` as recorded: relative to ``out``."""
        return p.relative_to(out).as_posix()

    def train(folder, resume):
        if cfg.baseline_checkpoint:
            return _evaluate_checkpoint(cfg, cfg.baseline_checkpoint, folder)
        res = train_stage(cfg.model, cfg.dataset, cfg.data_dir, cfg.train, folder,
                          resume=resume, force=not resume, progress=progress)
        return {"test_accuracy": res.test_accuracy, "checkpoint": here(folder / "checkpoint.pt")}

    base_ckpt = None if cfg.baseline_checkpoint is None else _outside(cfg.baseline_checkpoint)
    base = r.run(1, "train", [models.identity(cfg.model), cfg.dataset, base_ckpt,
                              asdict(cfg.train)], train)
    teacher_ckpt = _inside(out, base["metrics"]["checkpoint"])

    teacher = (DistillConfig(str(teacher_ckpt), cfg.distill_temperature, cfg.distill_weight)
               if cfg.distill_weight > 0 else None)
    kd = [cfg.distill_weight, cfg.distill_temperature] if teacher else []  # in the fingerprints

    def clip(folder, resume):
        res = clip_stage(**common, train_cfg=cfg.clip_train, clip_cfg=cfg.clip, out=folder,
                         checkpoint=teacher_ckpt, resume=resume, force=not resume,
                         progress=progress, distill=teacher, **hw)
        return {"test_accuracy": res.test_accuracy, "checkpoint": here(folder / "checkpoint.pt"),
                **res.extra.get("mapping", {})}

    clipped = r.run(2, "clip", [asdict(cfg.clip_train), asdict(cfg.clip), hw, *kd], clip)

    def prune(folder, resume):
        res = prune_stage(**common, train_cfg=cfg.prune_train, prune_cfg=cfg.prune, out=folder,
                          checkpoint=out / clipped["metrics"]["checkpoint"], resume=resume,
                          force=not resume, progress=progress, distill=teacher, **hw)
        w = res.extra["wires"]
        return {"test_accuracy": res.test_accuracy, "checkpoint": here(folder / "checkpoint.pt"),
                "wire_ratio": w["wire_ratio"], "wires": w["total"]["wires"],
                "dense_wires": w["dense_baseline"]["wires"]}

    pruned = r.run(3, "prune", [asdict(cfg.prune_train), asdict(cfg.prune), hw, *kd], prune)
    final_ckpt = out / pruned["metrics"]["checkpoint"]
    spec = cfg.spec()
    # weight_bits / cell_bits: the map stage on (training does not see them); only when set,
    # so an unsliced run keeps its fingerprint
    r.run(4, "map", [hw, spec.tech.to_dict(), *([cfg.bits] if cfg.bits else [])],
          lambda folder, _: map_stage(cfg.model, final_ckpt, spec, folder))
    route_settings = {k: v for k, v in asdict(cfg.route).items() if k not in TECH_ROUTE_FIELDS}
    r.run(5, "route", [asdict(cfg.place), route_settings],
          lambda folder, _: route_stage(out / "4-map", folder, cfg.place, route_settings))
    r.run(6, "export", [list(cfg.formats)],
          lambda folder, _: export_stage(out / "4-map", folder, cfg.formats, out / "5-route"))
    device_file = _device_file(cfg)
    if device_file is None:
        _drop_stage(out, 7, "evaluate", log)
    else:
        def evaluate(folder, _):
            from group_scissor.evaluate import evaluate as run_evaluate

            ev = cfg.evaluate
            rep = run_evaluate(cfg.model, str(final_ckpt), ev.device_file, ev.seeds, spec,
                               cfg.data_dir, ev.calibration_samples, test_samples=ev.test_samples,
                               dataset=cfg.dataset,
                               log=(lambda m: log(f"  {m}")) if progress else None)
            rep["checkpoint"] = here(final_ckpt)  # recorded inside ``out``, as every stage's
            write_json(folder / "evaluate.json", rep)
            metrics = {k: rep[k] for k in ("device_file", "device_name", "seeds", "deterministic",
                                           "accuracy", "accuracies", "ideal_accuracy",
                                           "pytorch_accuracy", "test_samples", "full_test_set",
                                           "calibration_samples", "n_crossbars")}
            write_json(folder / "metrics.json", metrics)
            return metrics

        # chained to 4-map, not to export: placement, routing and netlists do not change it
        # the device file by its content (device_file), not by its path
        ev_settings = {k: v for k, v in asdict(cfg.evaluate).items() if k != "device_file"}
        r.run(7, "evaluate", [device_file, ev_settings], evaluate, after="map")
    from group_scissor.report import build_report, write_report

    report = build_report(cfg, out, r.records)
    write_text(out / "config.toml", cfg.to_toml())  # with the report: the two always agree
    write_report(report, out)
    return report


def _drop_stage(out: Path, index: int, name: str, log) -> None:
    """An optional stage that is not asked for: what an earlier run left of it is removed."""
    folder = out / f"{index}-{name}"
    _sweep(out, folder)
    if folder.exists():
        shutil.rmtree(folder)
        log(f"[{index}-{name}] not asked for ({OPTIONAL[name]} unset): removed the "
            f"{folder.name} of an earlier run")


def _evaluate_checkpoint(cfg: CompileConfig, checkpoint, folder: Path) -> dict:
    from group_scissor.stages import prepare
    from group_scissor.train import evaluate

    model, data = prepare(cfg.model, cfg.dataset, cfg.data_dir, cfg.train.seed, checkpoint)
    _, acc = evaluate(model, data.test.x, data.test.y)
    ckpt = _outside(checkpoint)
    write_json(folder / "metrics.json", {"model": cfg.model, "dataset": data.name, "epochs": [],
                                         "test_accuracy": acc, "checkpoint": ckpt})
    return {"test_accuracy": acc, "checkpoint": ckpt}


