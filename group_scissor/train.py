"""The training engine every stage reuses: dense training, rank clipping and group deletion all
run this loop and plug in through ``Callback`` hooks.

    cfg = TrainConfig(epochs=10, lr=0.01)
    result = Trainer(model, data, cfg, out_dir="runs/lenet").fit()

Per epoch it writes, atomically, to ``out_dir``:
  checkpoint.pt  the model's state dict (``torch.load(p, weights_only=True)``)
  resume.pt      everything needed to continue bit-identically (model, optimizer, epoch, step,
                 history, callback state, config)
  metrics.json   {"model", "dataset", "epochs": [...], "test_accuracy"}
Determinism: the model init is the caller's (seed it); the batch order and augmentation of epoch
e come from a generator seeded with (seed, e), and the learning rate is a function of the step,
so a resumed run replays exactly what the uninterrupted one would have done.
Under ``torchrun`` (WORLD_SIZE > 1) it trains with DistributedDataParallel on gloo; each process
takes an equal shard of the epoch's permutation and a batch of batch_size / world_size.
"""

import contextlib
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError, UserError
from common.io import folder_lock, save_torch, write_json
from group_scissor.data import Dataset, augment_batch
from group_scissor.resume import SCHEMA_VERSION, explain, run_diff, run_json

SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Optimizer, schedule and loop settings (SGD with momentum)."""

    epochs: int = 10
    """Epochs to train (an epoch is one pass over the training split)."""
    batch_size: int = 64
    """Global mini-batch size (split across processes under torchrun)."""
    lr: float = 0.01
    """Peak learning rate."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 5e-4
    """L2 weight decay."""
    schedule: str = "cosine"
    """'constant', 'step' (multiply by gamma at each milestone) or 'cosine' (to 0 at the end)."""
    milestones: tuple[float, ...] = (0.5, 0.75)
    """For 'step': fractions of the run at which the learning rate is multiplied by gamma."""
    gamma: float = 0.1
    """For 'step': the factor applied at each milestone."""
    warmup_epochs: float = 0.0
    """Linear warm-up from 0 to lr over this many epochs."""
    restart_epoch: float = 0.0
    """If > 0: the schedule runs its course over [0, restart_epoch) and starts over from
    ``restart_lr`` over [restart_epoch, epochs), e.g. to fine-tune after a deletion (a warm
    restart, SGDR). 0: one schedule over the whole run."""
    restart_lr: float = 0.0
    """Peak learning rate after the restart (used when restart_epoch > 0)."""
    restart_warmup_epochs: float = 0.0
    """Linear warm-up from 0 to ``restart_lr`` over this many epochs after the restart (0: jump
    straight to it; a jump far above the first cycle's end can diverge)."""
    seed: int = 0
    """Seeds batch order and augmentation (the caller seeds the model init with it too); in
    [0, 2**63)."""
    eval_batch_size: int = 1000
    """Batch size for evaluation (no effect on results)."""

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.lr > 0 and math.isfinite(self.lr), f"lr must be a positive number, got {self.lr}"),
            (0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, got {self.schedule!r}"),
            (all(0 < m < 1 for m in self.milestones), f"milestones must be in (0, 1), got {self.milestones}"),
            (0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}"),
            (self.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (0 <= self.restart_epoch < self.epochs,
             f"restart_epoch must be in [0, epochs={self.epochs}), got {self.restart_epoch}"),
            (self.restart_epoch == 0 or (self.restart_lr > 0 and math.isfinite(self.restart_lr)),
             f"restart_lr must be a positive number when restart_epoch > 0, got {self.restart_lr}"),
            (self.restart_warmup_epochs == 0 or (
                self.restart_epoch > 0
                and 0 < self.restart_warmup_epochs < self.epochs - self.restart_epoch),
             "restart_warmup_epochs must be >= 0 and shorter than the restart cycle (epochs - "
             f"restart_epoch), with restart_epoch > 0; got {self.restart_warmup_epochs}"),
            (self.eval_batch_size >= 1, f"eval_batch_size must be >= 1, got {self.eval_batch_size}"),
            (0 <= self.seed < 2**63, f"seed must be a whole number in [0, 2**63) (what "
             f"torch.manual_seed takes), got {self.seed}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"TrainConfig: {msg}")
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))

    def lr_at(self, step: int, total_steps: int, steps_per_epoch: int) -> float:
        """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
        peak, warm = self.lr, self.warmup_epochs * steps_per_epoch
        if self.restart_epoch > 0:
            # counted from the end, as the stages count their fine-tune steps (same rounding)
            restart = total_steps - round((self.epochs - self.restart_epoch) * steps_per_epoch)
            if step >= restart:  # second cycle: [restart, total), its own warm-up
                peak, warm = self.restart_lr, self.restart_warmup_epochs * steps_per_epoch
                step, total_steps = step - restart, total_steps - restart
            else:
                total_steps = restart
        frac = step / max(total_steps, 1)
        if self.schedule == "cosine":
            lr = 0.5 * peak * (1 + math.cos(math.pi * frac))
        elif self.schedule == "step":
            lr = peak * self.gamma ** sum(frac >= m for m in self.milestones)
        else:
            lr = peak
        return lr * min(1.0, (step + 1) / warm) if warm > 0 else lr


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Callback:
    """Hooks into the loop. Override what you need; every hook gets the trainer.

    ``penalty`` returns a scalar tensor added to the loss (group Lasso, nuclear norm,
    distillation); ``trainer.batch`` (a ``Batch``) holds the step's inputs, logits and loss;
    ``after_step`` runs after ``optimizer.step()`` (rank clipping, proximal updates, masks).
    A callback that changes parameter shapes calls ``trainer.rebuild_optimizer(...)``.
    State returned by ``state_dict`` is saved in resume.pt and handed back on resume.
    """

    name = "callback"

    def on_train_begin(self, trainer: "Trainer") -> None: ...
    def on_epoch_begin(self, trainer: "Trainer") -> None: ...
    def penalty(self, trainer: "Trainer") -> torch.Tensor | None: ...
    def after_step(self, trainer: "Trainer") -> None: ...
    def on_epoch_end(self, trainer: "Trainer", metrics: dict) -> None: ...
    def on_train_end(self, trainer: "Trainer") -> None: ...
    def state_dict(self) -> dict: return {}
    def load_state_dict(self, state: dict) -> None: ...


class Batch(NamedTuple):
    """The current step's mini-batch as the callbacks' ``penalty`` sees it."""

    x: torch.Tensor  # (batch, *input_shape), after augmentation
    y: torch.Tensor  # (batch,) labels
    logits: torch.Tensor  # (batch, classes), with grad
    loss: torch.Tensor  # scalar mean cross-entropy, with grad


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict]
    test_accuracy: float
    out_dir: Path | None = None
    extra: dict = field(default_factory=dict)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000):
    """(mean cross-entropy loss, accuracy in [0, 1]) of ``model`` on (x, y)."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            out = model(x[i:i + batch_size])
            loss += F.cross_entropy(out, y[i:i + batch_size], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + batch_size]).sum().item()
    model.train(was_training)
    return loss / len(y), correct / len(y)


class _Progress:
    """A one-line progress bar on stderr, silent when stderr is not a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and sys.stderr.isatty()

    def update(self, epoch: int, epochs: int, i: int, n: int, loss: float) -> None:
        if self.enabled and (i % 20 == 0 or i == n):
            bar = "#" * int(30 * i / n)
            sys.stderr.write(f"\repoch {epoch}/{epochs} [{bar:<30}] {i}/{n} loss {loss:.4f}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


class Trainer:
    """Runs ``config.epochs`` of SGD on ``data`` with the hooks of ``callbacks``."""

    def __init__(self, model: nn.Module, data: Dataset, config: TrainConfig,
                 out_dir: str | os.PathLike | None = None, callbacks=(),
                 meta: dict[str, Any] | None = None, progress: bool = True,
                 run: dict[str, Any] | None = None):
        """``run``: what else defines the run (stage, model, dataset, stage configs, crossbar,
        teacher, derived steps; see group_scissor.resume). It is saved in resume.pt, a resume
        under a different one is refused, and once that check passed ``fit`` writes it with
        the train settings to ``out_dir/config.json``. Callers may add to it before ``fit``."""
        self.module = model  # the plain model (never the DDP wrapper)
        self.run = dict(run) if run is not None else None
        self.data, self.config = data, config
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.callbacks = list(callbacks)
        self.meta = dict(meta or {})
        self.progress = _Progress(progress)
        self.world, self.rank = _init_distributed()
        self.history: list[dict] = []
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        n = len(data.train) // self.world
        self.local_batch = max(1, config.batch_size // self.world)
        self.steps_per_epoch = math.ceil(n / self.local_batch)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.rebuild_optimizer()

    # -- model / optimizer plumbing used by callbacks --------------------------------------
    def rebuild_optimizer(self, transfer=None) -> None:
        """(Re)create the DDP wrapper and the optimizer for the current parameters.

        ``transfer(old_optimizer, new_optimizer)`` may carry state (momentum) across a change of
        parameter shapes; without it the new optimizer starts empty.
        """
        old = getattr(self, "optimizer", None)
        self.model = (nn.parallel.DistributedDataParallel(self.module) if self.world > 1
                      else self.module)
        c = self.config
        self.optimizer = torch.optim.SGD(self.module.parameters(), lr=c.lr, momentum=c.momentum,
                                         weight_decay=c.weight_decay)
        if old is not None and transfer is not None:
            transfer(old, self.optimizer)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- the loop ------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train (or, with ``resume``, continue the run in ``out_dir``) to ``config.epochs``.
        ``out_dir`` is locked for the whole run (common.io.folder_lock): a second run into it
        fails at once instead of interleaving its files with this one's."""
        lock = (folder_lock(self.out_dir) if self.out_dir is not None and self.is_main
                else contextlib.nullcontext())
        with lock:
            return self._fit(resume)

    def _fit(self, resume: bool) -> TrainResult:
        if resume:
            self._load_resume()
        if self.run is not None and self.out_dir is not None and self.is_main:
            write_json(self.out_dir / "config.json",
                       {**run_json(self.run), "train": asdict(self.config)})
        for cb in self.callbacks:
            cb.on_train_begin(self)
        c, train = self.config, self.data.train
        self.module.train()
        while self.epoch < c.epochs:
            start = time.perf_counter()
            gen = torch.Generator().manual_seed((c.seed * 1_000_003 + self.epoch) % 2**64)
            perm = torch.randperm(len(train), generator=gen)
            perm = perm[: len(perm) // self.world * self.world][self.rank::self.world]
            for cb in self.callbacks:
                cb.on_epoch_begin(self)
            loss_sum, n_seen = 0.0, 0
            for i in range(self.steps_per_epoch):
                idx = perm[i * self.local_batch:(i + 1) * self.local_batch]
                x, y = train.x[idx], train.y[idx]
                if train.augment:
                    x = augment_batch(x, gen)
                lr = c.lr_at(self.step, self.total_steps, self.steps_per_epoch)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                logits = self.model(x)  # (batch, classes)
                loss = F.cross_entropy(logits, y)
                self.batch = Batch(x, y, logits, loss)  # what penalties may look at
                total = loss
                for cb in self.callbacks:
                    p = cb.penalty(self)
                    if p is not None:
                        total = total + p
                self.optimizer.zero_grad(set_to_none=True)
                total.backward()
                self.optimizer.step()
                value = loss.item()
                if not math.isfinite(value) or not math.isfinite(total.item()):
                    self._diverged(value)
                self.step += 1
                loss_sum, n_seen = loss_sum + value * len(y), n_seen + len(y)
                for cb in self.callbacks:
                    cb.after_step(self)
                self.progress.update(self.epoch + 1, c.epochs, i + 1, self.steps_per_epoch, value)
            self.progress.close()
            train_loss = _mean_across(loss_sum, n_seen, self.world)
            eval_start = time.perf_counter()
            test_loss, acc = evaluate(self.module, self.data.test.x, self.data.test.y,
                                      c.eval_batch_size)
            self.epoch += 1
            metrics = {"epoch": self.epoch, "train_loss": train_loss, "test_loss": test_loss,
                       "test_accuracy": acc, "lr": lr,
                       "seconds": round(time.perf_counter() - start, 3),
                       "eval_seconds": round(time.perf_counter() - eval_start, 3)}
            for cb in self.callbacks:
                cb.on_epoch_end(self, metrics)
            self.history.append(metrics)
            self._save()
        for cb in self.callbacks:
            cb.on_train_end(self)
        if self.callbacks:  # callbacks may change the model at the end (final clip, masks)
            self._save()
        acc = self.history[-1]["test_accuracy"] if self.history else float("nan")
        return TrainResult(self.module, self.history, acc, self.out_dir)

    def _diverged(self, value: float | None = None, what: str | None = None) -> None:
        """Raise TrainingDiverged: the loss became ``value`` at the current step (not yet
        counted), or ``what`` happened at the step just taken."""
        where = (f"kept at {self.out_dir / 'checkpoint.pt'}" if self.out_dir and self.epoch
                 else "none was written yet")
        what = what or f"the loss became {value}"
        step = self.step + 1 if value is not None else self.step
        raise TrainingDiverged(
            f"training diverged: {what} at epoch {self.epoch + 1}, step "
            f"{step}. The last good checkpoint (epoch {self.epoch}) is {where}. Lower the "
            f"learning rate (it was {self.optimizer.param_groups[0]['lr']:.4g} at that step; peak "
            f"{self.config.lr}"
            + (f", {self.config.restart_lr} after the restart" if self.config.restart_epoch else "")
            + ") or the regularization strength and run again."
            + (" A restart that jumps high can also warm up (--fine-tune-warmup-epochs)."
               if self.config.restart_epoch and not self.config.restart_warmup_epochs
               and self.epoch >= self.config.restart_epoch else "")
        )

    # -- checkpoints ------------------------------------------------------------------------
    def metrics(self) -> dict:
        return {**self.meta, "epochs": self.history,
                "test_accuracy": self.history[-1]["test_accuracy"] if self.history else None}

    def _save(self) -> None:
        if self.out_dir is None or not self.is_main:
            return
        state = self.module.state_dict()
        save_torch(self.out_dir / "resume.pt", {
            "model": state, "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
            "step": self.step, "history": self.history, "config": asdict(self.config),
            "meta": self.meta, "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks},
            "run": run_json(self.run) if self.run is not None else None,
            "schema_version": SCHEMA_VERSION,
        })
        save_torch(self.out_dir / "checkpoint.pt", state)
        write_json(self.out_dir / "metrics.json", self.metrics())

    def _load_resume(self) -> None:
        from models.checkpoint import CheckpointError, conform_model, load_checkpoint, load_state

        path = self.out_dir / "resume.pt" if self.out_dir else None
        if path is None or not path.is_file():
            raise CheckpointError(f"cannot resume: {path} does not exist. Run without --resume "
                                  "to start a new run in this directory.")
        ckpt = load_checkpoint(path)
        _check_resume_state(path, ckpt)
        if ckpt.get("schema_version") != SCHEMA_VERSION:
            raise CheckpointError(
                f"cannot resume {path}: it was written under settings schema "
                f"{ckpt.get('schema_version', 1)}, this group-scissor uses schema {SCHEMA_VERSION}. "
                "Start the run over with --force (or choose another --out).")
        saved = {k: v for k, v in ckpt["config"].items() if k not in ("epochs", "eval_batch_size")}
        now = {k: v for k, v in asdict(self.config).items() if k not in ("epochs", "eval_batch_size")}
        saved["milestones"] = tuple(saved.get("milestones", ()))
        if saved != now:
            diff = {k: (saved.get(k), now.get(k)) for k in saved.keys() | now.keys()
                    if saved.get(k) != now.get(k)}
            raise CheckpointError(f"cannot resume {path}: the settings differ from the run that "
                                  f"wrote it (saved, now): {diff}. Use the same settings.")
        self._check_run(path, ckpt)
        conform_model(self.module, ckpt["model"])
        load_state(self.module, ckpt["model"], f"cannot resume {path}: its model does not fit "
                   f"this one (model {self.meta.get('model', '?')!r})",
                   "Resume with the --model, --layers and --checkpoint it was started with, or "
                   "pass --force to start over.")
        states = ckpt.get("callbacks", {})
        for cb in self.callbacks:
            cb.load_state_dict(states.get(cb.name, {}))
        self.rebuild_optimizer()
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            raise CheckpointError(f"cannot resume {path}: its optimizer state does not fit the "
                                  f"model ({type(e).__name__}: {str(e)[:200]}). Pass --force to "
                                  "start over, or choose another --out.") from None
        self.epoch, self.step, self.history = ckpt["epoch"], ckpt["step"], list(ckpt["history"])

    def _check_run(self, path: Path, ckpt: dict) -> None:
        """Refuse a resume under another run (stage settings, model, teacher...)."""
        from models.checkpoint import CheckpointError

        if self.run is None:
            return
        saved, run = ckpt.get("run") or {}, self.run
        diff = run_diff(saved, run)
        if diff:
            raise CheckpointError(
                f"cannot resume {path}: it was started with other settings ({explain(diff)}). "
                "Resume with the settings it was started with, pass --force to start over, or "
                "choose another --out.")


RESUME_KEYS = {"model": dict, "optimizer": dict, "epoch": int, "step": int, "history": list,
               "config": dict}
"""What every resume.pt holds (Trainer._save), with its type."""


def _check_resume_state(path: Path, ckpt: dict) -> None:
    """``ckpt`` (loaded from ``path``) has the structure Trainer._save writes, else a
    CheckpointError saying what is wrong (a KeyError or TypeError deep in a resume otherwise)."""
    from models.checkpoint import CheckpointError

    missing = [k for k in RESUME_KEYS if k not in ckpt]
    wrong = [f"{k!r} is a {type(ckpt[k]).__name__}, not a {t.__name__}"
             for k, t in RESUME_KEYS.items() if k in ckpt and not isinstance(ckpt[k], t)]
    if not (missing or wrong):
        wrong += [f"'{k}' is a {type(ckpt[k]).__name__}, not a dict" for k in ("callbacks", "run")
                  if ckpt.get(k) is not None and not isinstance(ckpt[k], dict)]
        if not all(isinstance(h, dict) for h in ckpt["history"]):
            wrong.append("'history' holds entries that are not dicts")
    if not (missing or wrong):
        return
    if missing and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        what = "holds model weights only (a checkpoint.pt?), not the state of a run"
    else:
        what = "is not the resume state of a run: " + "; ".join(
            ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + wrong)
    raise CheckpointError(f"cannot resume {path}: it {what}. It was damaged or replaced; pass "
                          "--force to start over, or choose another --out.")


def process_rank() -> int:
    """This process's rank under torchrun (0 when not distributed), known before the process
    group is set up: from the environment torchrun sets, as _init_distributed reads it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    return int(os.environ.get("RANK", "0"))


def _init_distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_world_size(), dist.get_rank()


def _mean_across(total: float, count: int, world: int) -> float:
    if world > 1:
        import torch.distributed as dist

        t = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(t)
        total, count = t.tolist()
    return total / max(count, 1)
