"""``compile``: the whole flow, network to chip report, as a chain of resumable stages.

    report = compile(CompileConfig(model="lenet", dataset="mnist"), out="runs/chip")

Stages, each in its own folder of ``out`` with its artifacts and a ``stage.json`` (fingerprint
of the settings that made it, its metrics, its run time):
  1-train   dense baseline             checkpoint.pt, metrics.json
  2-clip    rank clipping              checkpoint.pt, ranks.json, ranks.png, mapping.json
  3-prune   group connection deletion  checkpoint.pt, wires.json, tiles.png, mapping.json
  4-map     crossbar mapping           mapping.json/.csv/.txt (final model)
  5-route   placement + routing        routing.json, placement/routes, floorplan.png,
                                       congestion.png (and the dense baseline's)
  6-export  netlists                   chip.json (+ weights), chip.sp, chip.v
then report.json and report.md in ``out``. A stage whose stage.json fingerprint matches is
skipped; an interrupted training stage resumes from its resume.pt; ``force`` redoes everything.
"""

import hashlib
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

import models
from common.io import write_json, write_text
from group_scissor.config import CompileConfig

STAGES = ("train", "clip", "prune", "map", "route", "export")


def _settings(cfg) -> dict | None:
    """A stage config's fields for its fingerprint, less the fields marked ``added_later`` while
    they hold their default: runs made before such a field existed keep their fingerprints.
    Every other field counts always, so changing a default redoes the stages it affects."""
    if cfg is None:
        return None
    out = asdict(cfg)
    for f in fields(cfg):
        if f.metadata.get("fingerprint_omits_default") and getattr(cfg, f.name) == f.default:
            del out[f.name]
    return out


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Runner:
    def __init__(self, cfg: CompileConfig, out: Path, force: bool, progress: bool, log):
        self.cfg, self.out, self.force, self.progress, self.log = cfg, out, force, progress, log
        self.prev = ""  # fingerprint of the previous stage (changes ripple downstream)
        self.records: dict[str, dict] = {}

    def run(self, index: int, name: str, settings, fn) -> dict:
        folder = self.out / f"{index}-{name}"
        fp = _fingerprint(self.prev, name, settings)
        rec_path = folder / "stage.json"
        if not self.force and rec_path.is_file():
            try:
                rec = json.loads(rec_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                rec = {}  # a damaged record: redo the stage
            if rec.get("fingerprint") == fp:
                self.log(f"[{index}-{name}] up to date, skipped")
                self.prev, self.records[name] = fp, rec
                return rec
        self.log(f"[{index}-{name}] running")
        resume = (not self.force and (folder / "resume.pt").is_file()
                  and _same_fp(folder / "stage.pending", fp))
        folder.mkdir(parents=True, exist_ok=True)
        write_text(folder / "stage.pending", fp)
        start = time.perf_counter()
        metrics = fn(folder, resume)
        rec = {"stage": name, "fingerprint": fp, "seconds": round(time.perf_counter() - start, 2),
               "metrics": metrics}
        write_json(rec_path, rec)
        (folder / "stage.pending").unlink(missing_ok=True)
        self.prev, self.records[name] = fp, rec
        return rec


def _same_fp(path: Path, fp: str) -> bool:
    return path.is_file() and path.read_text().strip() == fp


def compile(cfg: CompileConfig, out: str | Path, force: bool = False, progress: bool = True,
            log=print) -> dict:
    """Run (or resume) every stage; returns the report (also written to out/report.json)."""
    from group_scissor.compress import clip_stage
    from group_scissor.distill import DistillConfig
    from group_scissor.prune import prune_stage
    from group_scissor.stages import train_stage

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models.info(cfg.model)  # unknown model: fail before any work
    write_text(out / "config.toml", cfg.to_toml())
    r = _Runner(cfg, out, force, progress, log)
    common = dict(model_name=cfg.model, dataset=cfg.dataset, data_dir=cfg.data_dir)
    hw = dict(crossbar=cfg.crossbar, encoding=cfg.encoding)

    def train(folder, resume):
        if cfg.baseline_checkpoint:
            return _evaluate_checkpoint(cfg, cfg.baseline_checkpoint, folder)
        res = train_stage(cfg.model, cfg.dataset, cfg.data_dir, cfg.train, folder,
                          resume=resume, force=not resume, progress=progress)
        return {"test_accuracy": res.test_accuracy, "checkpoint": str(folder / "checkpoint.pt")}

    base = r.run(1, "train", [cfg.model, cfg.dataset, cfg.baseline_checkpoint, _settings(cfg.train)],
                 train)

    teacher = (DistillConfig(base["metrics"]["checkpoint"], cfg.distill_temperature,
                             cfg.distill_weight) if cfg.distill_weight > 0 else None)
    kd = [cfg.distill_weight, cfg.distill_temperature] if teacher else []  # in the fingerprints

    def clip(folder, resume):
        res = clip_stage(**common, train_cfg=cfg.clip_train, clip_cfg=cfg.clip, out=folder,
                         checkpoint=base["metrics"]["checkpoint"], resume=resume,
                         force=not resume, progress=progress, distill=teacher, **hw)
        return {"test_accuracy": res.test_accuracy, "checkpoint": str(folder / "checkpoint.pt"),
                **res.extra.get("mapping", {})}

    clipped = r.run(2, "clip", [_settings(cfg.clip_train), _settings(cfg.clip), hw, *kd], clip)

    def prune(folder, resume):
        res = prune_stage(**common, train_cfg=cfg.prune_train, prune_cfg=cfg.prune, out=folder,
                          checkpoint=clipped["metrics"]["checkpoint"], resume=resume,
                          force=not resume, progress=progress, distill=teacher, **hw)
        w = res.extra["wires"]
        return {"test_accuracy": res.test_accuracy, "checkpoint": str(folder / "checkpoint.pt"),
                "wire_ratio": w["wire_ratio"], "wires": w["total"]["wires"],
                "dense_wires": w["dense_baseline"]["wires"]}

    pruned = r.run(3, "prune", [_settings(cfg.prune_train), _settings(cfg.prune), hw, *kd], prune)
    final_ckpt = pruned["metrics"]["checkpoint"]
    r.run(4, "map", [hw], lambda folder, resume: _map_stage(cfg, final_ckpt, folder))
    r.run(5, "route", [hw, _settings(cfg.place), _settings(cfg.route)],
          lambda folder, resume: _route_stage(cfg, final_ckpt, folder))
    r.run(6, "export", [hw, list(cfg.formats)],
          lambda folder, resume: _export_stage(cfg, final_ckpt, folder, out / "5-route"))
    from group_scissor.report import build_report, write_report

    report = build_report(cfg, out, r.records)
    write_report(report, out)
    return report


def _mapped(cfg: CompileConfig, checkpoint):
    from mapping.network import map_model
    from mapping.spec import CrossbarSpec
    from models.checkpoint import load_model

    model = load_model(cfg.model, checkpoint)
    spec = CrossbarSpec.parse(cfg.crossbar, encoding=cfg.encoding)
    return model, map_model(model, spec, models.info(cfg.model).input_shape)


def _evaluate_checkpoint(cfg: CompileConfig, checkpoint, folder: Path) -> dict:
    from group_scissor.stages import prepare
    from group_scissor.train import evaluate

    model, data = prepare(cfg.model, cfg.dataset, cfg.data_dir, cfg.train.seed, checkpoint)
    _, acc = evaluate(model, data.test.x, data.test.y)
    write_json(folder / "metrics.json", {"model": cfg.model, "dataset": data.name, "epochs": [],
                                         "test_accuracy": acc, "checkpoint": str(checkpoint)})
    return {"test_accuracy": acc, "checkpoint": str(checkpoint)}


def _map_stage(cfg: CompileConfig, checkpoint, folder: Path) -> dict:
    from mapping.report import write_reports

    _, mapped = _mapped(cfg, checkpoint)
    write_reports(mapped, folder, {"model": cfg.model, "checkpoint": str(checkpoint)})
    return {"n_crossbars": mapped.n_crossbars, "cells": mapped.cells,
            "cell_area_ratio": mapped.cell_area_ratio,
            "crossbar_area_ratio": mapped.crossbar_area_ratio, "area_um2": mapped.area_um2,
            "total_wires": mapped.total_wires, "dense_wires": mapped.baseline.total_wires}


def _route_stage(cfg: CompileConfig, checkpoint, folder: Path) -> dict:
    from mapping.route_cli import place_and_route

    _, mapped = _mapped(cfg, checkpoint)
    return place_and_route(mapped, folder, cfg.place, cfg.route)


def _export_stage(cfg: CompileConfig, checkpoint, folder: Path, route_dir: Path) -> dict:
    import netlists

    _, mapped = _mapped(cfg, checkpoint)
    written = {}
    if "json" in cfg.formats:
        written["json"] = str(netlists.write_json(mapped, folder / "chip.json"))
    if "spice" in cfg.formats:
        written["spice"] = str(netlists.write_spice(mapped, folder / "chip.sp"))
    if "verilog" in cfg.formats:
        written["verilog"] = str(netlists.write_verilog(mapped, folder / "chip.v"))
    return {"files": written}
