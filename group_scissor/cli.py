"""The ``group-scissor`` command line: one command per stage and ``compile`` end to end.

Every command reads the one settings schema (group_scissor/config.py): ``--config FILE``,
``--set section.field=VALUE`` and one flag per setting it uses, generated from the dataclass
fields and their docstrings (group_scissor/flags.py). The project's user errors print as one
``error: ...`` paragraph with exit code 2; anything else is a bug and keeps its traceback.
"""

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from group_scissor.flags import friendly_errors, settings_command

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Group Scissor: compress a network (rank clipping, group connection "
                       "deletion) and compile it onto memristor crossbars. Every command takes "
                       "--config FILE and --set SECTION.FIELD=VALUE over compile's settings; "
                       "defaults are the same for every command.")

Out = Annotated[Path, typer.Option(help="Output directory.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")]
Force = Annotated[bool, typer.Option("--force", help="Start over even if --out holds a run.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
Teacher = Annotated[Path | None, typer.Option(
    help="Distil from this trained checkpoint (e.g. the dense baseline) with --distill-weight "
         "(0.9 is usual); default: no teacher.")]
Checkpoint = Annotated[Path | None, typer.Option(
    help="Trained checkpoint (checkpoint.pt of train/clip/prune); default: a fresh model.")]
Design = Annotated[Path | None, typer.Option(
    help="A mapped design (design.json of 'group-scissor map', or its folder) instead of "
         "--model/--checkpoint; its crossbar, encoding and weight precision (weight_bits, "
         "cell_bits) are the ones it was mapped with.")]

DATA = ("model", "dataset", "data_dir")
HARDWARE = ("crossbar", "encoding")
BITS = ("weight_bits", "cell_bits")
"""The weight precision (bit slicing): map and the stages after it, not training."""
DISTILL = ("distill_weight", "distill_temperature")


@settings_command(app, "train", top=DATA, sections=("train",))
def train(cfg, checkpoint: Annotated[Path | None, typer.Option(
              help="Start from these weights.")] = None,
          out: Out = Path("runs/train"), resume: Resume = False, force: Force = False,
          quiet: Quiet = False) -> None:
    """Train a dense model; writes OUT/checkpoint.pt and OUT/metrics.json every epoch."""
    from group_scissor.stages import train_stage

    result = train_stage(cfg.model, cfg.dataset, cfg.data_dir, cfg.train, out,
                         checkpoint=checkpoint, resume=resume, force=force, progress=not quiet)
    if result.is_main:
        typer.echo(f"{cfg.model} on {cfg.dataset}: test accuracy {result.test_accuracy:.4f} "
                   f"after {len(result.history)} epochs -> {out}")


def _teacher(cfg, teacher):
    from common.errors import ConfigError
    from group_scissor.distill import DistillConfig

    if teacher is None:
        return None
    if cfg.distill_weight == 0:
        raise ConfigError("--teacher needs --distill-weight > 0 (the share of the loss given to "
                          "the teacher's soft targets; 0.9 is usual)")
    return DistillConfig(str(teacher), cfg.distill_temperature, cfg.distill_weight)


@settings_command(app, "clip", top=DATA + HARDWARE + DISTILL, sections=("clip_train", "clip"))
def clip(cfg, checkpoint: Checkpoint = None, teacher: Teacher = None,
         out: Out = Path("runs/clip"), resume: Resume = False, force: Force = False,
         quiet: Quiet = False) -> None:
    """Rank clipping: train low-rank pairs while clipping their ranks; writes OUT/checkpoint.pt,
    ranks.json, ranks.png, metrics.json and the mapper's report (mapping.json)."""
    from group_scissor.compress import clip_stage, layers_to_clip
    from models.lowrank import ranks

    res = clip_stage(cfg.model, cfg.dataset, cfg.data_dir, cfg.clip_train, cfg.clip, out,
                     checkpoint=checkpoint, resume=resume, force=force, progress=not quiet,
                     crossbar=cfg.crossbar, encoding=cfg.encoding,
                     distill=_teacher(cfg, teacher))
    if res.is_main:
        m = res.extra.get("mapping", {})
        r = ranks(res.model)
        asked = layers_to_clip(cfg.clip, cfg.model)
        dense = [n for n in asked or () if n not in r]  # clipped to full rank: merged back
        typer.echo(f"{cfg.model} on {cfg.dataset}: test accuracy {res.test_accuracy:.4f}, ranks "
                   f"{r}{f', merged back to dense: {dense}' if dense else ''}, cell area "
                   f"{m.get('cell_area_ratio', float('nan')):.2%} of dense -> {out}")


@settings_command(app, "prune", top=DATA + HARDWARE + DISTILL, sections=("prune_train", "prune"))
def prune(cfg, checkpoint: Checkpoint = None, teacher: Teacher = None,
          out: Out = Path("runs/prune"), resume: Resume = False, force: Force = False,
          quiet: Quiet = False) -> None:
    """Group connection deletion: train with a crossbar-aligned group Lasso, delete the wire
    groups that reach zero, fine-tune; writes OUT/checkpoint.pt, metrics.json, wires.json,
    tiles.png and the mapper's report (mapping.json). Per-matrix strengths:
    --lambda '*=2e-3,fc1=1e-3'."""
    from group_scissor.prune import prune_stage

    res = prune_stage(cfg.model, cfg.dataset, cfg.data_dir, cfg.prune_train, cfg.prune, out,
                      checkpoint=checkpoint, resume=resume, force=force, progress=not quiet,
                      crossbar=cfg.crossbar, encoding=cfg.encoding,
                      distill=_teacher(cfg, teacher))
    if res.is_main:
        w = res.extra["wires"]
        t, d = w["total"], w["dense_baseline"]
        typer.echo(f"{cfg.model} on {cfg.dataset}: test accuracy {res.test_accuracy:.4f}; wires "
                   f"{t['wires']} of dense {d['wires']} ({w['wire_ratio']:.2%}), crossbars "
                   f"{t['crossbars']} of {d['crossbars']}, cell area {w['cell_area_ratio']:.2%} "
                   f"of dense -> {out}")


@settings_command(app, "map", top=("model",) + HARDWARE + BITS + ("tech",))
def map_(cfg, checkpoint: Checkpoint = None, out: Out = Path("runs/map")) -> None:
    """Map MODEL (weights from --checkpoint) onto crossbars; writes OUT/design.json (units,
    nets, row signals, tile weights), dense.json, mapping.json/.csv/.txt and metrics.json."""
    from group_scissor.physical import map_stage

    map_stage(cfg.model, checkpoint, cfg.spec(), out)
    typer.echo((out / "mapping.txt").read_text().rstrip())
    typer.echo(f"wrote {out / 'design.json'}, dense.json, mapping.json, mapping.csv, mapping.txt")


def _design(cfg, checkpoint, design, out: Path) -> Path:
    """The design file a route/export works on: --design, or the model mapped into OUT/map."""
    from group_scissor.physical import map_stage

    if design is not None:
        if checkpoint is not None:
            from common.errors import ConfigError

            raise ConfigError("pass either --design (a mapped design) or --checkpoint (mapped "
                              "first), not both")
        return design
    map_stage(cfg.model, checkpoint, cfg.spec(), out / "map")
    return out / "map"


@settings_command(app, "route", top=("model",) + HARDWARE + BITS + ("tech",),
                  sections=("place", "route"))
def route(cfg, checkpoint: Checkpoint = None, design: Design = None,
          out: Out = Path("runs/route")) -> None:
    """Place and route a design and its dense baseline; writes OUT/routed.json, placement.json,
    routes.json, routing.json, floorplan.png, congestion.png (and the dense baseline's)."""
    from dataclasses import asdict

    from group_scissor.config import TECH_ROUTE_FIELDS
    from group_scissor.physical import route_stage

    src = _design(cfg, checkpoint, design, out)
    settings = {k: v for k, v in asdict(cfg.route).items() if k not in TECH_ROUTE_FIELDS}
    rep = route_stage(src, out, cfg.place, settings)
    ratio = rep["routing_area_ratio"]
    share = "(no dense.json beside the design)" if ratio is None else f"= {ratio:.2%} of dense"
    typer.echo(f"wirelength {rep['wirelength']} (bound for any routing {rep['signal_bound']}), "
               f"routing area {rep['routing_area_um2']:.4g} um2 {share}; "
               f"congestion max {rep['max_congestion']:.2f}, overflow {rep['overflow']} tracks; "
               f"die {rep['routable']['die_area_um2']:.4g} um2 for "
               f"{rep['routable']['crossbar_area_um2']:.4g} um2 of crossbars (their sites)"
               f"{'' if rep['routable']['routable'] else ' (NOT routable at this capacity)'} "
               f"-> {out}/routing.json")


@settings_command(app, "export", top=("model",) + HARDWARE + BITS + ("tech", "formats"))
def export(cfg, checkpoint: Checkpoint = None, design: Design = None,
           routed: Annotated[Path | None, typer.Option(
               help="The route stage's routed.json (or its folder): chip.json carries its sites "
                    "and routes.")] = None,
           out: Out = Path("runs/netlists")) -> None:
    """Write the netlists of a design: OUT/chip.json (+ chip.weights.npz), chip.sp, chip.v."""
    from group_scissor.physical import export_stage

    m = export_stage(_design(cfg, checkpoint, design, out), out, cfg.formats, routed)
    for f, name in m["files"].items():
        typer.echo(f"{f:8s} {Path(out) / name}")
    typer.echo(f"{m['crossbars']} crossbars, {m['nets']} nets, {m['wires']} wires"
               f"{', with layout' if m['layout'] else ''} -> {out}")


@settings_command(app, "compile",
                  top=DATA + HARDWARE + BITS + ("tech", "baseline_checkpoint", "formats") + DISTILL,
                  sections=("train", "clip_train", "clip", "prune_train", "prune", "place",
                            "route", "evaluate"))
def compile_(cfg, out: Out = Path("runs/compile"), force: Force = False,
             quiet: Quiet = False) -> None:
    """End to end: dense baseline, rank clipping, group deletion, mapping, placement and
    routing, netlists and report (OUT/report.json, OUT/report.md); with --device-file also the
    accuracy on --seeds chips of that device (as 'evaluate' reports it). Re-running resumes;
    every setting is checked before the first stage starts."""
    from group_scissor.pipeline import compile as run_compile
    from group_scissor.report import device_line

    rep = run_compile(cfg, out, force=force, progress=not quiet,
                      log=lambda msg: typer.echo(msg, err=True))
    typer.echo(f"{cfg.model} on {cfg.dataset}: accuracy {rep['accuracy']['baseline']:.4f} -> "
               f"{rep['accuracy']['final']:.4f}; cell area {rep['cell_area_ratio']:.2%}, "
               f"crossbars {rep['crossbar_area_ratio']:.2%}, routing area "
               f"{(rep['routing_area_ratio'] or float('nan')):.2%} of dense; "
               f"{device_line(rep['device_accuracy'])} -> {out}/report.md")


def verify(data_dir: Annotated[Path | None, typer.Option(
               help="Folder holding MNIST/raw/ and cifar-10-batches-py/ (default: "
                    "$GROUP_SCISSOR_DATA if set, else ./data, then ../shared/datasets).")] = None,
           model: Annotated[list[str] | None, typer.Option(
               help="Only this model's checkpoints (repeatable); default: every shipped one.")]
           = None) -> None:
    """Recompute the README's paper table from the shipped checkpoints and the real test sets;
    exit 1 if a figure differs from the ledger that recorded it."""
    from common.errors import UserError
    from group_scissor.verify import table, verify_model
    from models import pretrained

    shipped = sorted({e["model"] for e in pretrained.manifest().values()})
    chosen = model or shipped
    if not shipped:
        raise UserError("this installation ships no checkpoints (models/pretrained/manifest.json "
                        "is absent); write them with benchmarks/ship_checkpoints.py")
    if set(chosen) - set(shipped):
        raise UserError(f"no shipped checkpoints for {sorted(set(chosen) - set(shipped))}; "
                        f"shipped: {', '.join(shipped)}")
    start, checks = time.perf_counter(), []
    for m in chosen:
        checks += verify_model(m, data_dir, log=lambda msg: typer.echo(msg, err=True))
    typer.echo(table(checks))
    bad = [c for c in checks if not c.ok]
    typer.echo(f"{len(checks) - len(bad)} of {len(checks)} figures equal the ledger "
               f"({time.perf_counter() - start:.0f} s)")
    if bad:
        raise typer.Exit(1)


app.command("verify")(friendly_errors(verify))


@settings_command(app, "evaluate", top=("data_dir",) + HARDWARE + BITS + ("tech",),
                  sections=("evaluate",))
def evaluate(cfg, checkpoint: Annotated[str, typer.Option(
                 help="Trained checkpoint: a checkpoint.pt, or a shipped name such as "
                      "lenet:group-scissor (see 'group-scissor models').")],
             model: Annotated[str | None, typer.Option(
                 help="Model of the checkpoint; default: the shipped checkpoint's, or the "
                      "config.json beside checkpoint.pt.")] = None,
             threads: Annotated[int, typer.Option(help="Torch threads.")] = 1,
             out: Out = Path("runs/evaluate")) -> None:
    """Accuracy on the full test set of the mapped network on N chips of a device file
    (hardware-model section 8): mean and spread over the chip seeds, the ideal chip and
    PyTorch beside; writes OUT/evaluate.json. The settings are compile's: its [evaluate] section
    (--device-file is required here), crossbar, encoding, weight precision, tech and data_dir;
    the model and data set are the checkpoint's (the config.json of its run, or the shipped
    model's), not --config's."""
    import torch

    from common.errors import ConfigError
    from common.io import make_dir, write_json
    from group_scissor.evaluate import evaluate as run
    from group_scissor.evaluate import format_report

    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    ev = cfg.evaluate
    if ev.device_file is None:
        raise ConfigError("evaluate needs a device: --device-file PRESET_OR_FILE (presets: ideal, "
                          "rram_4bit, rram_neurosim), or evaluate.device_file in --config")
    torch.set_num_threads(threads)
    make_dir(out, "--out")
    rep = run(model, checkpoint, ev.device_file, ev.seeds, cfg.spec(), cfg.data_dir,
              ev.calibration_samples, test_samples=ev.test_samples,
              log=lambda msg: typer.echo(msg, err=True))
    write_json(out / "evaluate.json", rep)
    typer.echo(format_report(rep))
    typer.echo(f"wrote {out / 'evaluate.json'}")


@app.command("models")
def list_models() -> None:
    """List the registered models and the shipped checkpoints (--checkpoint MODEL:VARIANT)."""
    import models
    from models import pretrained

    width = max(map(len, models.available()))
    for name in models.available():
        i = models.info(name)
        typer.echo(f"{name:{width}s}  input {i.input_shape}  classes {i.num_classes}  "
                   f"dataset {i.default_dataset or '-'}")
    shipped = pretrained.manifest()
    if shipped:
        typer.echo("\nshipped checkpoints (--checkpoint NAME):")
        for name, e in sorted(shipped.items()):
            figures = e["ledger"]["metrics"]
            typer.echo(f"  {name:22s} test accuracy {figures.get('test_accuracy')}  "
                       f"({e['ledger']['experiment']}: {e['ledger']['row']})")


def main() -> int:
    """The console script: click's own usage errors (an unknown option, a missing value) are
    reported like every other error, ``error: ...`` with exit code 2."""
    usage_error = typer.BadParameter.__mro__[1]  # click's UsageError, as typer ships it

    try:
        rv = app(prog_name="group-scissor", standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # bare ``group-scissor``: the help
            typer.echo(e.format_message(), err=True)
            return 2
        where = e.ctx.command_path if e.ctx is not None else "group-scissor"
        typer.echo(f"error: {e.format_message()} (see '{where} --help')", err=True)
        return 2
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
