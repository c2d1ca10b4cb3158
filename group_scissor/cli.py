"""The ``group-scissor`` command line: one command per stage and ``compile`` end to end.

Every command turns the project's own errors (bad names, missing data, corrupt checkpoints,
invalid settings, divergence) into a one-paragraph message and exit code 2, never a traceback.
"""

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Group Scissor: compress a network (rank clipping, group connection "
                       "deletion) and compile it onto memristor crossbars.")

# ---- options shared by every training command ----------------------------------------------
Model = Annotated[str, typer.Option(help="Registered model name (see 'group-scissor models').")]
DatasetOpt = Annotated[str, typer.Option("--dataset", help="mnist, cifar10 or digits (embedded).")]
DataDir = Annotated[Path | None, typer.Option(help="Folder holding MNIST/raw/ or cifar-10-batches-py/ "
                    "(default: $GROUP_SCISSOR_DATA if set, else ./data, then ../shared/datasets).")]
Epochs = Annotated[int, typer.Option(help="Epochs to train.")]
Lr = Annotated[float, typer.Option(help="Peak learning rate.")]
BatchSize = Annotated[int, typer.Option(help="Global mini-batch size.")]
Momentum = Annotated[float, typer.Option(help="SGD momentum.")]
WeightDecay = Annotated[float, typer.Option(help="L2 weight decay.")]
Schedule = Annotated[str, typer.Option(help="constant, step or cosine.")]
Warmup = Annotated[float, typer.Option(help="Linear learning-rate warm-up, in epochs.")]
Seed = Annotated[int, typer.Option(help="Random seed (init, batch order, augmentation).")]
Out = Annotated[Path, typer.Option(help="Output directory.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")]
Force = Annotated[bool, typer.Option("--force", help="Start over even if --out holds a run.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar.")]
Teacher = Annotated[Path | None, typer.Option(
    help="Distil from this trained checkpoint (e.g. the dense baseline); default: no teacher.")]
DistillT = Annotated[float, typer.Option(help="Distillation temperature.")]
DistillW = Annotated[float, typer.Option(
    help="Share of the loss given to the teacher's soft targets, in [0, 1].")]


def friendly_errors(fn):
    """Turn the project's expected errors into a clear message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from common.errors import UserError

        try:
            return fn(*args, **kwargs)
        except UserError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; the last finished epoch is kept (use --resume).", err=True)
            raise typer.Exit(130) from None

    return wrapper


@app.command()
@friendly_errors
def train(model: Model = "lenet", dataset: DatasetOpt = "mnist", data_dir: DataDir = None,
          epochs: Epochs = 10, lr: Lr = 0.01, batch_size: BatchSize = 64,
          momentum: Momentum = 0.9, weight_decay: WeightDecay = 5e-4,
          schedule: Schedule = "cosine", warmup_epochs: Warmup = 0.0, seed: Seed = 0,
          checkpoint: Annotated[Path | None, typer.Option(help="Start from these weights.")] = None,
          out: Out = Path("runs/train"), resume: Resume = False, force: Force = False,
          quiet: Quiet = False) -> None:
    """Train a dense model; writes OUT/checkpoint.pt and OUT/metrics.json every epoch."""
    from group_scissor.stages import train_stage
    from group_scissor.train import TrainConfig

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, schedule=schedule,
                      warmup_epochs=warmup_epochs, seed=seed)
    result = train_stage(model, dataset, data_dir, cfg, out, checkpoint=checkpoint,
                         resume=resume, force=force, progress=not quiet)
    if result.is_main:
        typer.echo(f"{model} on {dataset}: test accuracy {result.test_accuracy:.4f} "
                   f"after {len(result.history)} epochs -> {out}")


@app.command()
@friendly_errors
def clip(model: Model = "lenet", dataset: DatasetOpt = "mnist", data_dir: DataDir = None,
         checkpoint: Annotated[Path | None, typer.Option(
             help="Dense checkpoint to start from (default: a fresh model).")] = None,
         tolerance: Annotated[float, typer.Option(
             help="Largest share of a layer's weight energy one clip may drop.")] = 0.01,
         clip_interval: Annotated[int, typer.Option(help="Optimizer steps between clips.")] = 500,
         fine_tune_epochs: Annotated[float, typer.Option(
             help="Final epochs trained at fixed ranks.")] = 0.0,
         fine_tune_lr: Annotated[float | None, typer.Option(
             help="Restart the learning rate from this for the fine-tune epochs "
                  "(default: the schedule runs on).")] = None,
         fine_tune_warmup_epochs: Annotated[float, typer.Option(
             help="Warm up to --fine-tune-lr over this many epochs.")] = 0.0,
         tolerance_ramp_epochs: Annotated[float, typer.Option(
             help="Raise the tolerance from 0 over this many epochs.")] = 0.0,
         layers: Annotated[str | None, typer.Option(
             help="Comma-separated layers to factorize (default: all but the classifier).")] = None,
         regularizer: Annotated[str, typer.Option(help="none, nuclear or force.")] = "none",
         reg_strength: Annotated[float, typer.Option(help="Regularizer strength.")] = 0.0,
         crossbar: Annotated[str, typer.Option(help="Crossbar for the area report.")] = "64x64",
         encoding: Annotated[str, typer.Option(help="differential, offset or unsigned.")] =
         "differential",
         epochs: Epochs = 8, lr: Lr = 0.01, batch_size: BatchSize = 64,
         momentum: Momentum = 0.9, weight_decay: WeightDecay = 5e-4,
         schedule: Schedule = "cosine", warmup_epochs: Warmup = 0.0, seed: Seed = 0,
         teacher: Teacher = None, distill_temperature: DistillT = 4.0,
         distill_weight: DistillW = 0.9,
         out: Out = Path("runs/clip"), resume: Resume = False, force: Force = False,
         quiet: Quiet = False) -> None:
    """Rank clipping: train low-rank pairs while clipping their ranks; writes OUT/checkpoint.pt,
    ranks.json, ranks.png, metrics.json and the mapper's report (mapping.json)."""
    from group_scissor.compress import ClipStageConfig, clip_stage
    from group_scissor.distill import from_options
    from group_scissor.train import TrainConfig

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, schedule=schedule,
                      warmup_epochs=warmup_epochs, seed=seed)
    ccfg = ClipStageConfig(tolerance=tolerance, clip_interval=clip_interval,
                           fine_tune_epochs=fine_tune_epochs, fine_tune_lr=fine_tune_lr,
                           fine_tune_warmup_epochs=fine_tune_warmup_epochs,
                           tolerance_ramp_epochs=tolerance_ramp_epochs,
                           layers=tuple(x.strip() for x in layers.split(",")) if layers else None,
                           regularizer=regularizer, reg_strength=reg_strength)
    res = clip_stage(model, dataset, data_dir, cfg, ccfg, out, checkpoint=checkpoint,
                     resume=resume, force=force, progress=not quiet, crossbar=crossbar,
                     encoding=encoding,
                     distill=from_options(teacher, distill_temperature, distill_weight))
    if res.is_main:
        m = res.extra.get("mapping", {})
        typer.echo(f"{model} on {dataset}: test accuracy {res.test_accuracy:.4f}, ranks "
                   f"{_ranks(res.model)}, cell area {m.get('cell_area_ratio', float('nan')):.2%} "
                   f"of dense -> {out}")


def _ranks(model) -> dict:
    from models.lowrank import ranks

    return ranks(model)


@app.command("compile")
@friendly_errors
def compile_cmd(
        config: Annotated[Path | None, typer.Option(help="TOML file with every setting.")] = None,
        model: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
        dataset: Annotated[str | None, typer.Option(help="digits (embedded), mnist, cifar10.")] = None,
        data_dir: DataDir = None,
        crossbar: Annotated[str | None, typer.Option(help="Crossbar size ROWSxCOLS.")] = None,
        encoding: Annotated[str | None, typer.Option(help="differential, offset, unsigned.")] = None,
        checkpoint: Annotated[Path | None, typer.Option(
            help="Trained dense checkpoint: skip the train stage.")] = None,
        set_: Annotated[list[str] | None, typer.Option("--set", help=(
            "Override one setting, SECTION.FIELD=VALUE (e.g. clip.tolerance=0.05); "
            "repeatable."))] = None,
        out: Out = Path("runs/compile"), force: Force = False, quiet: Quiet = False) -> None:
    """End to end: dense baseline, rank clipping, group deletion, mapping, placement and
    routing, netlists and report (OUT/report.json, OUT/report.md). Re-running resumes."""
    from group_scissor.config import CompileConfig
    from group_scissor.pipeline import compile as run_compile

    overrides = list(set_ or [])
    for key, value in (("model", model), ("dataset", dataset), ("data_dir", data_dir),
                       ("crossbar", crossbar), ("encoding", encoding),
                       ("baseline_checkpoint", checkpoint)):
        if value is not None:
            overrides.append(f"{key}={json.dumps(str(value))}")
    cfg = CompileConfig.load(config, overrides)
    rep = run_compile(cfg, out, force=force, progress=not quiet,
                      log=lambda msg: typer.echo(msg, err=True))
    typer.echo(f"{cfg.model} on {cfg.dataset}: accuracy {rep['accuracy']['baseline']:.4f} -> "
               f"{rep['accuracy']['final']:.4f}; cell area {rep['cell_area_ratio']:.2%}, "
               f"crossbars {rep['crossbar_area_ratio']:.2%}, routing area "
               f"{(rep['routing_area_ratio'] or float('nan')):.2%} of dense -> {out}/report.md")


@app.command("models")
def list_models() -> None:
    """List the registered models."""
    import models

    for name in models.available():
        i = models.info(name)
        typer.echo(f"{name:10s} input {i.input_shape}  classes {i.num_classes}  "
                   f"dataset {i.default_dataset or '-'}")


def _register_stage_commands() -> None:
    """Commands whose implementation lives with their stage's package."""
    import importlib

    for cmd, (module, func) in {
        "map": ("mapping.cli", "map_command"),
        "route": ("mapping.route_cli", "route_command"),
        "export": ("netlists.cli", "export_command"),
        "prune": ("group_scissor.prune_cli", "prune_command"),
    }.items():
        fn = getattr(importlib.import_module(module), func)
        app.command(cmd)(friendly_errors(fn))


_register_stage_commands()


def main() -> None:
    app(prog_name="group-scissor")


if __name__ == "__main__":
    sys.exit(main())
