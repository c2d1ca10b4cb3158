"""The prune stage (Group Scissor step 2, group connection deletion): train a (rank-clipped)
model with the crossbar-aligned group Lasso, delete the groups that went to zero, fine-tune with
the deletions masked, then map it and count the wires it no longer needs.

    cfg = PruneConfig(lambda_=1e-3, fine_tune_epochs=2)
    result = prune_stage("lenet", "mnist", None, TrainConfig(epochs=10), cfg, Path("runs/prune"),
                         checkpoint="runs/clip/checkpoint.pt")

Writes into ``out``: checkpoint.pt, resume.pt, metrics.json (Trainer; metrics.json gains the
final wire figures), config.json, wires.json, tiles.png and the mapper's mapping.json/.csv/.txt.

wires.json (all counts on the logical tile grid, hardware-model.md sections 2-4):
  crossbar                     {rows, cols, encoding, lcols}
  layers[]                     per layer: name, shape, rank, input_wires, output_wires, wires,
                               nets, crossbars, dense {input_wires, output_wires, wires, nets,
                               crossbars} (the layer as one dense N x M matrix; a grouped conv
                               as its g dense group matrices), wire_ratio, and matrices[] (U and
                               V of a pair, 'dw.g0' .. of a grouped conv): name, shape, grid,
                               input_wires, output_wires, wires, nets, crossbars, input_groups,
                               output_groups, zero_input_groups, zero_output_groups
  total, dense_baseline, before  {input_wires, output_wires, wires, nets, crossbars, cells}
                               (before: the checkpoint as loaded, before pruning)
  deleted                      {step, groups: {matrix: {input, output}} deleted groups,
                               dead_signals: {matrix: {columns, rows}}}
  wire_ratio                   total wires / dense baseline wires
  net_ratio, crossbar_area_ratio, cell_area_ratio   same, for nets, crossbars and cells
An input wire is a live input-wire group (a row with a non-zero weight in the tile), an output
wire a live output-wire group, so input_wires = input_groups - zero_input_groups.
"""

import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import models
from common.errors import ConfigError
from common.io import save_figure, write_json
from group_scissor.distill import DistillConfig, distillation
from group_scissor.group_lasso import GroupLasso, GroupLassoConfig, grouped_matrices
from group_scissor.stages import (
    check_fine_tune_epochs,
    check_fine_tune_warmup,
    fine_tune_restart,
    prepare,
    run_folder,
)
from group_scissor.train import TrainConfig, Trainer, TrainResult


@dataclass(frozen=True)
class PruneConfig(GroupLassoConfig):
    """Group connection deletion as a stage: the group Lasso (see GroupLassoConfig) for the
    first epochs - fine_tune_epochs, deletion, then fine-tuning with the deletions masked."""

    fine_tune_epochs: float = 1.0
    """Final epochs trained without the penalty, deleted groups held at zero by masks."""
    fine_tune_lr: float | None = None
    """Peak learning rate the schedule restarts from for the fine-tune epochs (cosine to 0 again);
    None: the training schedule simply runs on."""
    fine_tune_warmup_epochs: float = 0.0
    """Warm up linearly to ``fine_tune_lr`` over this many epochs after the restart."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.fine_tune_epochs >= 0 and math.isfinite(self.fine_tune_epochs)):
            raise ConfigError(f"PruneConfig: fine_tune_epochs must be >= 0, got "
                             f"{self.fine_tune_epochs!r}")
        if self.fine_tune_lr is not None and not (self.fine_tune_lr > 0
                                                  and math.isfinite(self.fine_tune_lr)):
            raise ConfigError(f"PruneConfig: fine_tune_lr must be a positive number or None, got "
                             f"{self.fine_tune_lr!r}")
        if not (self.fine_tune_warmup_epochs >= 0 and math.isfinite(self.fine_tune_warmup_epochs)):
            raise ConfigError(f"PruneConfig: fine_tune_warmup_epochs must be >= 0, got "
                             f"{self.fine_tune_warmup_epochs!r}")
        check_fine_tune_warmup("PruneConfig", self)

    def group_lasso(self) -> GroupLassoConfig:
        d = asdict(self)
        for k in ("fine_tune_epochs", "fine_tune_lr", "fine_tune_warmup_epochs"):
            d.pop(k)
        return GroupLassoConfig(**d)


def prune_stage(model_name: str, dataset: str, data_dir, train_cfg: TrainConfig,
                prune_cfg: PruneConfig, out: Path, checkpoint=None, resume: bool = False,
                force: bool = False, progress: bool = True, crossbar: str = "64x64",
                encoding: str = "differential", distill: DistillConfig | None = None
                ) -> TrainResult:
    """Load ``model_name`` (from ``checkpoint``, e.g. a clip stage's), train with the group
    Lasso for crossbar ``crossbar``/``encoding``, delete, fine-tune; write the artifacts above.
    ``distill``: also learn from a teacher's soft outputs (group_scissor.distill).
    ``result.extra['wires']`` holds wires.json."""
    from mapping.spec import CrossbarSpec

    spec = CrossbarSpec.parse(crossbar, encoding=encoding)
    check_fine_tune_epochs(prune_cfg.fine_tune_epochs, train_cfg.epochs,
                           "the group Lasso needs regularized epochs")
    teacher = [distillation(distill, model_name)] if distill else []  # a bad one fails first
    train_cfg = fine_tune_restart(train_cfg, prune_cfg.fine_tune_epochs, prune_cfg.fine_tune_lr,
                                  prune_cfg.fine_tune_warmup_epochs)
    with run_folder(out, resume, force) as out:
        # bad layer names or per-layer lambdas fail before the data is loaded
        model, data = prepare(model_name, dataset, data_dir, train_cfg.seed, checkpoint,
                              check=lambda m: grouped_matrices(m, spec.rows, spec.lcols, prune_cfg))
        input_shape = models.info(model_name).input_shape
        before = _totals(_map(model, spec, input_shape))
        gl = GroupLasso(prune_cfg.group_lasso(), spec.rows, spec.lcols, input_shape=input_shape)
        meta = {"model": model_name, "dataset": data.name, "stage": "prune"}
        callbacks = [gl] + teacher
        trainer = Trainer(model, data, train_cfg, out, callbacks=callbacks, meta=meta,
                          progress=progress,
                          run={**meta, "prune": prune_cfg, "crossbar": spec,
                               "distill": distill, "init_checkpoint": checkpoint})
        gl.delete_step = trainer.total_steps - round(prune_cfg.fine_tune_epochs
                                                     * trainer.steps_per_epoch)
        trainer.run["delete_step"] = gl.delete_step
        result = trainer.fit(resume=resume)
        result.is_main = trainer.is_main
        if trainer.is_main:
            from mapping.report import write_reports

            mapped = _map(result.model, spec, input_shape)
            wires = {**wire_report(mapped), "before": before, "deleted": gl.deleted}
            write_json(out / "wires.json", wires)
            plot_tiles(mapped, out / "tiles.png")
            write_reports(mapped, out, {"model": model_name, "stage": "prune",
                                        "checkpoint": str(out / "checkpoint.pt")})
            summary = {k: wires[k] for k in ("wire_ratio", "net_ratio", "crossbar_area_ratio",
                                             "cell_area_ratio")}
            write_json(out / "metrics.json", {**trainer.metrics(), **summary,
                                              "wires": wires["total"]["wires"],
                                              "dense_wires": wires["dense_baseline"]["wires"]})
            result.extra["wires"] = wires
            warn_if_nothing_deleted(gl.deleted, prune_cfg, gl.delete_step)
        return result


def warn_if_nothing_deleted(deleted: dict | None, cfg: PruneConfig, regularized_steps: int) -> None:
    """Warn when the deletion removed no group at all: the stage then only fine-tuned."""
    groups = (deleted or {}).get("groups", {})
    if sum(g["input"] + g["output"] for g in groups.values()):
        return
    lam = cfg.lambda_ if isinstance(cfg.lambda_, dict) else f"{cfg.lambda_:g}"
    warnings.warn(
        f"the group Lasso deleted no group: lambda {lam} over {regularized_steps} regularized "
        f"steps left no group's norm under the threshold ({cfg.threshold:g}, "
        f"{cfg.threshold_mode}), so no wire was removed. Raise --lambda (e.g. 10x; it shrinks a "
        "group by at most lr x lambda per step) or train longer (--epochs).",
        UserWarning, stacklevel=3)


def _map(model, spec, input_shape):
    from mapping.network import map_model

    return map_model(model, spec, input_shape)


def _net_sums(nets) -> dict[str, dict[str, int]]:
    """matrix name -> input_wires, output_wires, nets."""
    out: dict[str, dict[str, int]] = {}
    for n in nets:
        d = out.setdefault(n.matrix, {"input_wires": 0, "output_wires": 0, "nets": 0})
        d[f"{n.kind}_wires"] += n.width
        d["nets"] += 1
    return out


def _figures(sums: dict, crossbars: int) -> dict[str, int]:
    i, o = sums.get("input_wires", 0), sums.get("output_wires", 0)
    return {"input_wires": i, "output_wires": o, "wires": i + o, "nets": sums.get("nets", 0),
            "crossbars": crossbars}


def _totals(mapped) -> dict[str, int]:
    i = sum(n.width for n in mapped.nets if n.kind == "input")
    return {"input_wires": i, "output_wires": mapped.total_wires - i,
            "wires": mapped.total_wires, "nets": len(mapped.nets),
            "crossbars": mapped.n_crossbars, "cells": mapped.cells}


def wire_report(mapped) -> dict:
    """wires.json (module docstring) for a MappedNetwork."""
    dense = mapped.dense_baseline()
    sums, dsums = _net_sums(mapped.nets), _net_sums(dense.nets)
    layers = []
    for layer, dlayer in zip(mapped.layers, dense.layers, strict=True):
        mats = []
        for mm in layer.matrices:
            (na, nb), (n, m) = mm.grid, mm.shape
            mats.append({"name": mm.name, "shape": [n, m], "grid": [na, nb],
                         **_figures(sums.get(mm.name, {}), mm.n_crossbars),
                         "input_groups": n * nb, "output_groups": na * m,
                         "zero_input_groups": int(n * nb - mm.row_nonzero.sum()),
                         "zero_output_groups": int(na * m - mm.col_nonzero.sum())})
        tot = {k: sum(x[k] for x in mats) for k in ("input_wires", "output_wires", "nets")}
        dsum = {k: sum(dsums.get(dm.name, {}).get(k, 0) for dm in dlayer.matrices)
                for k in ("input_wires", "output_wires", "nets")}  # a grouped conv: g matrices
        d = _figures(dsum, dlayer.n_crossbars)
        layers.append({"name": layer.name, "shape": list(layer.shape), "rank": layer.rank,
                       **_figures(tot, layer.n_crossbars), "dense": d,
                       "wire_ratio": (tot["input_wires"] + tot["output_wires"]) / d["wires"],
                       "matrices": mats})
    total, base = _totals(mapped), _totals(dense)
    s = mapped.spec
    return {"crossbar": {"rows": s.rows, "cols": s.cols, "encoding": s.encoding,
                         "lcols": s.lcols},
            "layers": layers, "total": total, "dense_baseline": base,
            "wire_ratio": total["wires"] / base["wires"],
            "net_ratio": total["nets"] / base["nets"],
            "crossbar_area_ratio": mapped.crossbar_area_ratio,
            "cell_area_ratio": mapped.cell_area_ratio}


def tile_status(mm) -> np.ndarray:
    """(N, M) uint8 per weight of a MappedMatrix: 0 live, 1 zero inside live groups, 2 in a
    deleted input group only, 3 in a deleted output group only, 4 in both."""
    n, m = mm.shape
    dead_in = ~mm.row_nonzero[:, np.arange(m) // mm.tile_cols]  # (N, M)
    dead_out = ~mm.col_nonzero[np.arange(n) // mm.tile_rows, :]  # (N, M)
    status = np.where(mm.weights != 0, 0, 1).astype(np.uint8)
    status[dead_in] = 2
    status[dead_out] = 3
    status[dead_in & dead_out] = 4
    return status


MAX_GROUP_LINES = 64
"""A grouped layer's panel draws the boundaries between its group matrices up to this many groups."""


def tile_panels(mapped) -> list[tuple[str, np.ndarray, list[int], list[int]]]:
    """What ``plot_tiles`` draws: (title, tile_status (N, M), row lines, column lines) per
    matrix; a grouped conv's g matrices (MobileNetV2: up to 960 per layer) in one panel, side by
    side in filter order, (C/g*kh*kw) x F, with the boundaries between groups (up to
    MAX_GROUP_LINES groups) and between row blocks."""
    panels = []
    for layer in mapped.layers:
        if layer.groups == 1:
            for mm in layer.matrices:
                n, m = mm.shape
                panels.append((
                    f"{mm.name} {n}x{m}: {mm.n_tiles}/{mm.grid[0] * mm.grid[1]} tiles\n"
                    f"in {mm.input_wires}/{n * mm.grid[1]}, out {mm.output_wires}/"
                    f"{mm.grid[0] * m} wires", tile_status(mm),
                    [a * mm.tile_rows for a in range(1, mm.grid[0])],
                    [b * mm.tile_cols for b in range(1, mm.grid[1])]))
            continue
        mats = layer.matrices
        (na, nb), (n, m), g = mats[0].grid, mats[0].shape, len(mats)
        status = np.concatenate([tile_status(mm) for mm in mats], axis=1)  # (N, g*M)
        cols = [k * m + b * mats[0].tile_cols for k in range(g) for b in range(nb)
                if k * m + b * mats[0].tile_cols > 0] if g <= MAX_GROUP_LINES else []
        tiles = sum(mm.n_tiles for mm in mats)
        panels.append((
            f"{layer.name}: {g} groups of {n}x{m}: {tiles}/{g * na * nb} tiles\n"
            f"in {sum(mm.input_wires for mm in mats)}/{g * n * nb}, out "
            f"{sum(mm.output_wires for mm in mats)}/{g * na * m} wires", status,
            [a * mats[0].tile_rows for a in range(1, na)], cols))
    return panels


def plot_tiles(mapped, path: Path, max_pixels: int = 2_000_000) -> None:
    """One panel per matrix (a grouped conv: per layer, see ``tile_panels``): its weights on
    the tile grid, deleted groups coloured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    panels = tile_panels(mapped)
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.2 * ncol, 3.2 * nrow + 0.6), squeeze=False)
    colors = ["#1f4e79", "#d9d9d9", "#f28e2b", "#59a14f", "#e15759"]
    labels = ["live weight", "zero weight", "input wire deleted", "output wire deleted", "both"]
    for ax, (title, status, hlines, vlines) in zip(axes.flat, panels, strict=False):
        n, m = status.shape
        step = max(1, math.ceil(math.sqrt(n * m / max_pixels)))  # subsample huge matrices
        ax.imshow(status[::step, ::step], cmap=ListedColormap(colors), vmin=0, vmax=4,
                  interpolation="nearest", aspect="auto", extent=(0, m, n, 0))
        for y in hlines:
            ax.axhline(y, color="k", lw=0.6)
        for x in vlines:
            ax.axvline(x, color="k", lw=0.6)
        ax.set_title(title, fontsize=8)
        ax.set(xlabel="outputs (logical columns)", ylabel="inputs (rows)")
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.legend(handles=[Patch(color=c, label=lab) for c, lab in zip(colors, labels, strict=True)],
               loc="lower center", ncol=5, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path, dpi=110)
    plt.close(fig)


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
            raise ConfigError(f"per-matrix lambda: bad entry {item!r}; write NAME=VALUE pairs "
                             "separated by commas, e.g. 'fc1=1e-3,conv1.U=0'") from None
    return out
