"""Compression stages: rank clipping (and, later, group connection deletion) as functions from
a trained model to a compressed one, each writing its artifacts and metrics into ``out``."""

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import models
from common.errors import ConfigError
from common.io import save_torch, write_json
from group_scissor.distill import DistillConfig, distillation
from group_scissor.lowrank_reg import make_regularizer
from group_scissor.rank_clip import ClipConfig, RankClipping
from group_scissor.stages import (
    check_fine_tune_epochs,
    check_fine_tune_warmup,
    fine_tune_restart,
    prepare,
    run_folder,
)
from group_scissor.train import TrainConfig, Trainer, TrainResult
from models.lowrank import low_rank_layers, merge, ranks, to_low_rank


@dataclass(frozen=True)
class ClipStageConfig:
    """Rank clipping as a stage: what to factorize, how to clip, how to regularize."""

    tolerance: float = 0.01
    """Largest share of a pair's weight energy a clip may drop."""
    clip_interval: int = 500
    """Optimizer steps between clips."""
    fine_tune_epochs: float = 0.0
    """Train this many final epochs at fixed ranks (no clipping)."""
    fine_tune_lr: float | None = None
    """Peak learning rate the schedule restarts from for the fine-tune epochs (cosine to 0 again);
    None: the training schedule simply runs on."""
    fine_tune_warmup_epochs: float = 0.0
    """Warm up linearly to ``fine_tune_lr`` over this many epochs after the restart."""
    tolerance_ramp_epochs: float = 0.0
    """Raise the tolerance linearly from 0 over this many epochs."""
    layers: tuple[str, ...] | None = None
    """Layers to factorize and clip; None: the model's registered defaults (all but the last)."""
    regularizer: str = "none"
    """'none', 'nuclear' (Trained Rank Pruning) or 'force' (force regularization)."""
    reg_strength: float = 0.0
    """Strength of the regularizer."""

    def __post_init__(self) -> None:
        if not all(x >= 0 and math.isfinite(x) for x in (
                self.fine_tune_epochs, self.tolerance_ramp_epochs, self.fine_tune_warmup_epochs)):
            raise ConfigError("ClipStageConfig: fine_tune_epochs, fine_tune_warmup_epochs and "
                             "tolerance_ramp_epochs must be numbers >= 0")
        check_fine_tune_warmup("ClipStageConfig", self)
        if self.fine_tune_lr is not None and not (self.fine_tune_lr > 0
                                                  and math.isfinite(self.fine_tune_lr)):
            raise ConfigError(f"ClipStageConfig: fine_tune_lr must be > 0 or None, got "
                             f"{self.fine_tune_lr!r}")
        ClipConfig(tolerance=self.tolerance, clip_interval=self.clip_interval)  # validates
        make_regularizer(self.regularizer, self.reg_strength)  # validates the name


def layers_to_clip(clip_cfg: ClipStageConfig, model_name: str) -> tuple[str, ...] | None:
    """The layers rank clipping factorizes: ``clip_cfg.layers``, else the model's registered
    defaults; None (neither says): every Linear and Conv2d."""
    return clip_cfg.layers or models.info(model_name).low_rank_layers or None


def clip_stage(model_name: str, dataset: str, data_dir, train_cfg: TrainConfig,
               clip_cfg: ClipStageConfig, out: Path, checkpoint=None, resume: bool = False,
               force: bool = False, progress: bool = True, crossbar: str = "64x64",
               encoding: str = "differential", distill: DistillConfig | None = None
               ) -> TrainResult:
    """Factorize ``model_name`` (from ``checkpoint``), train with rank clipping, write
    checkpoint.pt, metrics.json, ranks.json, ranks.png and the mapper's report. ``distill``:
    also learn from a teacher's soft outputs (group_scissor.distill)."""
    from mapping.spec import CrossbarSpec

    CrossbarSpec.parse(crossbar, encoding=encoding)  # the report's crossbar: fail before training
    check_fine_tune_epochs(clip_cfg.fine_tune_epochs, train_cfg.epochs,
                           "rank clipping needs epochs that clip")
    teacher = distillation(distill, model_name) if distill else None  # a bad one fails first
    train_cfg = fine_tune_restart(train_cfg, clip_cfg.fine_tune_epochs, clip_cfg.fine_tune_lr,
                                  clip_cfg.fine_tune_warmup_epochs)
    with run_folder(out, resume, force) as out:
        model, data = prepare(model_name, dataset, data_dir, train_cfg.seed, checkpoint)
        layers = layers_to_clip(clip_cfg, model_name)
        if not low_rank_layers(model):  # a dense checkpoint: factorize at full rank (same function)
            to_low_rank(model, layers)
        meta = {"model": model_name, "dataset": data.name, "stage": "clip"}
        trainer = Trainer(model, data, train_cfg, out, meta=meta, progress=progress,
                          run={**meta, "clip": clip_cfg, "distill": distill,
                               "init_checkpoint": checkpoint})
        per_epoch = trainer.steps_per_epoch  # the trainer's own count (per process under torchrun)
        last = trainer.total_steps - round(clip_cfg.fine_tune_epochs * per_epoch)
        clip = RankClipping(ClipConfig(
            tolerance=clip_cfg.tolerance, clip_interval=clip_cfg.clip_interval,
            layers=tuple(low_rank_layers(model)), last_clip_step=max(last, 0),
            tolerance_ramp_steps=round(clip_cfg.tolerance_ramp_epochs * per_epoch)))
        if trainer.is_main:
            warn_if_never_clips(clip_cfg, train_cfg.epochs, per_epoch, clip.config.last_clip_step)
        trainer.callbacks.append(clip)
        reg = make_regularizer(clip_cfg.regularizer, clip_cfg.reg_strength)
        if reg is not None:
            trainer.callbacks.append(ClipLimited(reg, clip.config.last_clip_step))
        if teacher is not None:
            trainer.callbacks.append(teacher)
        trainer.run["last_clip_step"] = clip.config.last_clip_step  # moves with --epochs
        result = trainer.fit(resume=resume)
        result.is_main = trainer.is_main
        if trainer.is_main:
            clipped = ranks(result.model)
            merged = merge_unprofitable(result.model)
            if merged:  # the final weights, with those layers dense again
                save_torch(out / "checkpoint.pt", result.model.state_dict())
            write_json(out / "ranks.json", {"ranks": clipped, "history": clip.history,
                                            "full_ranks": _full_ranks(model_name, layers),
                                            "merged_back_to_dense": merged})
            plot_ranks(clip.history, out / "ranks.png")
            result.extra["mapping"] = map_report(result.model, model_name, out, crossbar,
                                                 encoding)
        return result


def warn_if_never_clips(cfg: ClipStageConfig, epochs: int, per_epoch: int, last: int) -> None:
    """Warn when no optimizer step of the run is a clip step (clips come every
    ``clip_interval`` steps up to ``last``): the stage would merely train low-rank pairs."""
    if cfg.clip_interval <= last:
        return
    clipping = epochs - cfg.fine_tune_epochs
    warnings.warn(
        f"rank clipping will never clip: --clip-interval ({cfg.clip_interval}) is longer than the "
        f"{last} optimizer steps that may clip ({clipping:g} x {per_epoch} steps per epoch"
        + (f", before {cfg.fine_tune_epochs:g} fine-tune epochs" if cfg.fine_tune_epochs else "")
        + f"), so the ranks stay as loaded. Lower --clip-interval to at most {max(last, 1)} "
        f"(e.g. {max(last // 5, 1)}), or raise --epochs.", UserWarning, stacklevel=3)


def merge_unprofitable(model) -> list[str]:
    """Merge back every pair whose rank K does not pay: K * (N + M) >= N * M cells."""
    names = [name for name, pair in low_rank_layers(model).items()
             if pair.rank * (pair.u_matrix().shape[0] + pair.v_matrix().shape[1])
             >= pair.u_matrix().shape[0] * pair.v_matrix().shape[1]]
    merge(model, names)
    return names


class ClipLimited:
    """Runs a regularizer's penalty only while clipping is still on (not during fine-tuning)."""

    def __init__(self, inner, last_step):
        self.inner, self.last_step, self.name = inner, last_step, inner.name

    def penalty(self, trainer):
        return None if trainer.step > self.last_step else self.inner.penalty(trainer)

    def __getattr__(self, item):
        return getattr(self.inner, item)


def _full_ranks(model_name: str, layers) -> dict[str, int]:
    from models.lowrank import layer_matrix

    dense = models.get(model_name)
    return {n: min(layer_matrix(dense.get_submodule(n)).shape) for n in (layers or [])}


def plot_ranks(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.io import save_figure

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in history[0]["ranks"] if history else []:
        ax.step([h["step"] for h in history], [h["ranks"][name] for h in history], where="post",
                label=name)
    ax.set(xlabel="iteration", ylabel="rank", yscale="log", title="rank clipping")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def map_report(model, model_name: str, out: Path, crossbar: str, encoding: str) -> dict:
    """Map the compressed model and write the mapper's reports into ``out``."""
    from mapping.network import map_model
    from mapping.report import write_reports
    from mapping.spec import CrossbarSpec

    spec = CrossbarSpec.parse(crossbar, encoding=encoding)
    mapped = map_model(model, spec, models.info(model_name).input_shape)
    write_reports(mapped, out)
    return {"cell_area_ratio": mapped.cell_area_ratio,
            "crossbar_area_ratio": mapped.crossbar_area_ratio, "n_crossbars": mapped.n_crossbars}
