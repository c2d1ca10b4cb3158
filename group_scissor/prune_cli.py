"""``group-scissor prune``: group connection deletion as a command.

Register with ``app.command("prune")(friendly_errors(prune_command))``. The options mirror
``group-scissor clip``; the aliases are defined here (not imported from group_scissor.cli) so
that importing this module never re-enters the CLI's registration.
"""

from pathlib import Path
from typing import Annotated

import typer

from common.errors import ConfigError

Opt = typer.Option


def prune_command(
    model: Annotated[str, Opt(help="Registered model name (see 'group-scissor models').")] = "lenet",
    dataset: Annotated[str, Opt("--dataset", help="mnist, cifar10 or digits (embedded).")] = "mnist",
    data_dir: Annotated[Path | None, Opt(help="Folder holding MNIST/raw/ or cifar-10-batches-py/ "
                        "(default: $GROUP_SCISSOR_DATA if set, else ./data, ../shared/datasets).")] = None,
    checkpoint: Annotated[Path | None, Opt(
        help="Rank-clipped checkpoint to prune (OUT/checkpoint.pt of 'group-scissor clip'); "
             "default: a fresh dense model.")] = None,
    lambda_: Annotated[float, Opt("--lambda", help="Group Lasso strength (per group norm); "
                                  "~2e-3 for 10 MNIST epochs, ~0.1 for 10 digits epochs.")]
    = 2e-3,
    layer_lambda: Annotated[str | None, Opt(
        help="Per-matrix or per-layer strengths overriding --lambda, e.g. 'fc1=1e-3,conv1.U=0'.")
    ] = None,
    layers: Annotated[str | None, Opt(
        help="Comma-separated matrices/layers to regularize (default: every mapped matrix).")]
    = None,
    crossbar: Annotated[str, Opt(help="Crossbar ROWSxCOLS whose tiles define the groups.")]
    = "64x64",
    encoding: Annotated[str, Opt(help="differential, offset or unsigned (sets the logical "
                                      "columns per crossbar).")] = "differential",
    threshold: Annotated[float, Opt(
        help="Delete a group whose RMS weight is at most THRESHOLD x its matrix's RMS weight "
             "(0: only groups already exactly zero).")] = 0.05,
    absolute_threshold: Annotated[bool, Opt(
        "--absolute-threshold", help="Compare the group's norm to THRESHOLD itself.")] = False,
    prox: Annotated[bool, Opt("--prox/--subgradient",
                              help="Proximal group soft-threshold after each step, or the "
                                   "penalty's subgradient in the loss.")] = True,
    sqrt_size_weighting: Annotated[bool, Opt(
        "--sqrt-size-weighting", help="Scale each group's norm by sqrt(its size).")] = False,
    rebalance: Annotated[bool, Opt(
        "--rebalance", help="At deletion, equalize the norms of each low-rank pair's factors "
                            "(outputs unchanged); needed to fine-tune at a high --fine-tune-lr "
                            "after a penalty on one factor.")] = False,
    fine_tune_epochs: Annotated[float, Opt(
        help="Final epochs trained without the penalty, deleted groups masked.")] = 1.0,
    fine_tune_lr: Annotated[float | None, Opt(
        help="Restart the learning rate from this for the fine-tune epochs "
             "(default: the schedule runs on).")] = None,
    fine_tune_warmup_epochs: Annotated[float, Opt(
        help="Warm up to --fine-tune-lr over this many epochs.")] = 0.0,
    epochs: Annotated[int, Opt(help="Epochs to train (regularized + fine-tuning).")] = 8,
    lr: Annotated[float, Opt(help="Peak learning rate.")] = 0.01,
    batch_size: Annotated[int, Opt(help="Global mini-batch size.")] = 64,
    momentum: Annotated[float, Opt(help="SGD momentum.")] = 0.9,
    weight_decay: Annotated[float, Opt(help="L2 weight decay.")] = 5e-4,
    schedule: Annotated[str, Opt(help="constant, step or cosine.")] = "cosine",
    warmup_epochs: Annotated[float, Opt(help="Linear learning-rate warm-up, in epochs.")] = 0.0,
    seed: Annotated[int, Opt(help="Random seed (init, batch order, augmentation).")] = 0,
    teacher: Annotated[Path | None, Opt(
        help="Distil from this trained checkpoint (e.g. the dense baseline); default: no "
             "teacher.")] = None,
    distill_temperature: Annotated[float, Opt(help="Distillation temperature.")] = 4.0,
    distill_weight: Annotated[float, Opt(
        help="Share of the loss given to the teacher's soft targets, in [0, 1].")] = 0.9,
    out: Annotated[Path, Opt(help="Output directory.")] = Path("runs/prune"),
    resume: Annotated[bool, Opt("--resume", help="Continue the run in --out.")] = False,
    force: Annotated[bool, Opt("--force", help="Start over even if --out holds a run.")] = False,
    quiet: Annotated[bool, Opt("--quiet", help="No progress bar.")] = False,
) -> None:
    """Group connection deletion: train with a crossbar-aligned group Lasso, delete the wire
    groups that reach zero, fine-tune; writes OUT/checkpoint.pt, metrics.json, wires.json,
    tiles.png and the mapper's report (mapping.json)."""
    from group_scissor.distill import from_options
    from group_scissor.prune import PruneConfig, prune_stage
    from group_scissor.train import TrainConfig

    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, schedule=schedule,
                      warmup_epochs=warmup_epochs, seed=seed)
    lam: float | dict[str, float] = lambda_
    if layer_lambda:
        lam = {"*": lambda_, **parse_layer_lambda(layer_lambda)}
    pcfg = PruneConfig(lambda_=lam, sqrt_size_weighting=sqrt_size_weighting,
                       method="prox" if prox else "subgradient", threshold=threshold,
                       threshold_mode="absolute" if absolute_threshold else "relative",
                       layers=tuple(x.strip() for x in layers.split(",")) if layers else None,
                       fine_tune_epochs=fine_tune_epochs, fine_tune_lr=fine_tune_lr,
                       fine_tune_warmup_epochs=fine_tune_warmup_epochs, rebalance=rebalance)
    res = prune_stage(model, dataset, data_dir, cfg, pcfg, out, checkpoint=checkpoint,
                      resume=resume, force=force, progress=not quiet, crossbar=crossbar,
                      encoding=encoding,
                      distill=from_options(teacher, distill_temperature, distill_weight))
    if res.is_main:
        w = res.extra["wires"]
        t, d = w["total"], w["dense_baseline"]
        typer.echo(f"{model} on {dataset}: test accuracy {res.test_accuracy:.4f}; wires "
                   f"{t['wires']} of dense {d['wires']} ({w['wire_ratio']:.2%}), crossbars "
                   f"{t['crossbars']} of {d['crossbars']}, cell area {w['cell_area_ratio']:.2%} "
                   f"of dense -> {out}")


def parse_layer_lambda(text: str) -> dict[str, float]:
    """'fc1=1e-3, conv1.U=0' -> {'fc1': 0.001, 'conv1.U': 0.0}."""
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--layer-lambda: bad entry {item!r}; write NAME=VALUE pairs "
                             "separated by commas, e.g. 'fc1=1e-3,conv1.U=0'") from None
    return out
