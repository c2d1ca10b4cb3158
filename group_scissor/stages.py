"""Stage functions shared by the CLI and the Python API: typed inputs in, artifacts out."""

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

import models
from common.errors import ConfigError
from common.io import folder_lock, make_dir
from group_scissor.data import Dataset, load_dataset
from group_scissor.train import TrainConfig, Trainer, TrainResult, process_rank


def prepare(model_name: str, dataset: str, data_dir, seed: int,
            checkpoint: str | os.PathLike | None = None,
            check: Callable[[nn.Module], object] | None = None) -> tuple[nn.Module, Dataset]:
    """Seeded model (optionally loaded from ``checkpoint``) and its data, checked to fit.
    ``check(model)`` runs before the data is loaded: settings that name parts of the model
    fail before that work. (The data sets draw no global random numbers, so loading them after
    the model leaves the seeded stream as it was.)"""
    from models.checkpoint import load_model

    info = models.info(model_name)  # unknown name -> clear error
    torch.manual_seed(seed)
    model = load_model(model_name, checkpoint)
    if check is not None:
        check(model)
    data = load_dataset(dataset, data_dir)
    if tuple(info.input_shape) != data.input_shape:
        raise ConfigError(
            f"model {model_name!r} takes inputs of shape {info.input_shape} but dataset "
            f"{dataset!r} has {data.input_shape}; use it with '--dataset "
            f"{info.default_dataset or '...'}' or register a model for this data set.")
    return model, data


def check_fine_tune_warmup(what: str, cfg) -> None:
    """A stage config's fine-tune warm-up needs a fine-tune lr and must end before the
    fine-tuning does (checked when the config is built, before any training)."""
    if cfg.fine_tune_warmup_epochs and cfg.fine_tune_lr is None:
        raise ConfigError(f"{what}: fine_tune_warmup_epochs needs fine_tune_lr (the rate to warm "
                         "up to); set --fine-tune-lr.")
    if cfg.fine_tune_warmup_epochs and cfg.fine_tune_warmup_epochs >= cfg.fine_tune_epochs:
        raise ConfigError(f"{what}: fine_tune_warmup_epochs ({cfg.fine_tune_warmup_epochs}) must be "
                         f"shorter than fine_tune_epochs ({cfg.fine_tune_epochs}).")


def check_fine_tune_epochs(fine_tune_epochs: float, epochs: int, needs: str) -> None:
    """Fine-tuning is the tail of the run: it must leave epochs for the stage's own work."""
    if fine_tune_epochs >= epochs:
        raise ConfigError(f"fine_tune_epochs ({fine_tune_epochs}) must be smaller than epochs "
                         f"({epochs}): {needs}; lower --fine-tune-epochs or raise --epochs")


def fine_tune_restart(cfg: TrainConfig, fine_tune_epochs: float, fine_tune_lr: float | None,
                      fine_tune_warmup_epochs: float = 0.0) -> TrainConfig:
    """``cfg`` whose schedule starts over from ``fine_tune_lr`` for the last ``fine_tune_epochs``
    (a warm restart for fine-tuning after the last clip or the deletion), warming up over
    ``fine_tune_warmup_epochs``; None: ``cfg``."""
    if fine_tune_lr is None:
        if fine_tune_warmup_epochs:
            raise ConfigError("a fine-tune warm-up needs a fine-tune learning rate to warm up to; "
                             "set --fine-tune-lr.")
        return cfg
    if not 0 < fine_tune_epochs < cfg.epochs:
        raise ConfigError(f"a fine-tune learning rate needs 0 < fine-tune epochs < epochs "
                         f"({cfg.epochs}), got {fine_tune_epochs}; set --fine-tune-epochs.")
    if not 0 <= fine_tune_warmup_epochs < fine_tune_epochs:
        raise ConfigError(f"the fine-tune warm-up ({fine_tune_warmup_epochs} epochs) must be >= 0 "
                         f"and shorter than the fine-tuning ({fine_tune_epochs} epochs).")
    return replace(cfg, restart_epoch=cfg.epochs - fine_tune_epochs, restart_lr=fine_tune_lr,
                   restart_warmup_epochs=fine_tune_warmup_epochs)


def check_out_dir(out: Path, resume: bool, force: bool, main: bool = True) -> None:
    """Refuse to overwrite a run unless asked: never lose work by accident. ``force`` deletes the
    run's resume state (on the ``main`` process only)."""
    check_resume_force(resume, force)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a directory.")
    has_run = (out / "resume.pt").is_file()
    if has_run and not (resume or force):
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, --force to "
                         "start over, or choose another --out.")
    if force and has_run and main:
        (out / "resume.pt").unlink(missing_ok=True)


def check_resume_force(resume: bool, force: bool) -> None:
    if resume and force:
        raise ConfigError("--resume continues the run in --out, --force starts over (deleting "
                         "its resume state); pick one.")


@contextlib.contextmanager
def run_folder(out: Path, resume: bool, force: bool) -> Iterator[Path]:
    """The stage's output folder for the block: created (a folder the user cannot write, or a
    name too long, fails here, before any data is loaded), locked against a second run writing
    into it (rank 0 only under torchrun: the other ranks write nothing), and checked not to
    hold a run unless ``resume`` or ``force`` (check_out_dir)."""
    out = Path(out)
    check_resume_force(resume, force)  # before anything is created or deleted
    main = process_rank() == 0
    with folder_lock(out, "--out") if main else contextlib.nullcontext(make_dir(out, "--out")):
        check_out_dir(out, resume, force, main)
        yield out


def train_stage(model_name: str, dataset: str, data_dir, cfg: TrainConfig, out: Path,
                checkpoint=None, resume: bool = False, force: bool = False,
                progress: bool = True, callbacks=()) -> TrainResult:
    with run_folder(out, resume, force) as out:
        model, data = prepare(model_name, dataset, data_dir, cfg.seed, checkpoint)
        meta = {"model": model_name, "dataset": data.name}
        trainer = Trainer(model, data, cfg, out, callbacks=callbacks, meta=meta,
                          progress=progress,
                          run={"stage": "train", **meta, "init_checkpoint": checkpoint})
        result = trainer.fit(resume=resume)
        result.is_main = trainer.is_main
        return result
