"""Knowledge distillation (Hinton et al., "Distilling the Knowledge in a Neural Network", 2015)
from the dense baseline into the compressed network while it is clipped or pruned.

A compressed network trained on hard labels alone loses accuracy its dense teacher still has;
matching the teacher's softened outputs recovers part of it. The objective becomes

    (1 - weight) * CE(student, labels) + weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

with T the temperature (the T^2 keeps the soft term's gradients on the scale of the hard one).
The teacher runs in eval mode under no_grad on the same (augmented) batch as the student.

    cb = distillation(DistillConfig(teacher="runs/bench/convnet/checkpoint.pt"), "convnet")
    Trainer(model, data, cfg, callbacks=[cb]).fit()
"""

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError
from group_scissor.train import Callback


@dataclass(frozen=True)
class DistillConfig:
    """Distillation from a trained teacher checkpoint of a registered model."""

    teacher: str
    """Path of the teacher's checkpoint.pt (usually the dense baseline the run started from)."""
    temperature: float = 4.0
    """Softmax temperature T of both teacher and student logits (1: plain probabilities)."""
    weight: float = 0.9
    """Share of the objective given to the soft term, in [0, 1] (0: plain cross-entropy)."""

    def __post_init__(self) -> None:
        for name in ("temperature", "weight"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise ConfigError(f"DistillConfig: {name} must be a number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ConfigError(f"DistillConfig: temperature must be > 0, got {self.temperature!r}")
        if not 0 <= self.weight <= 1:
            raise ConfigError(f"DistillConfig: weight must lie in [0, 1], got {self.weight!r}")
        object.__setattr__(self, "teacher", str(self.teacher))


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), mean over the batch.

    Both logits (batch, classes); returns a scalar tensor differentiable in the student."""
    t = temperature
    log_p_s = F.log_softmax(student_logits / t, dim=1)  # (batch, classes)
    log_p_t = F.log_softmax(teacher_logits / t, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * t * t


class Distillation(Callback):
    """Trainer callback: turns the loss into the distillation objective above.

    The trainer's loss is CE; ``penalty`` adds weight * (soft - CE), so the total is the blend.
    The logged train loss stays the plain cross-entropy (comparable across runs)."""

    name = "distillation"

    def __init__(self, teacher: nn.Module, temperature: float = 4.0, weight: float = 0.9):
        DistillConfig("-", temperature, weight)  # validates
        self.teacher = teacher.eval().requires_grad_(False)
        self.temperature, self.weight = temperature, weight

    def penalty(self, trainer) -> torch.Tensor | None:
        if self.weight == 0:
            return None
        b = trainer.batch
        with torch.no_grad():
            teacher_logits = self.teacher(b.x)  # (batch, classes)
        soft = soft_loss(b.logits, teacher_logits, self.temperature)
        return self.weight * (soft - b.loss)


def from_options(teacher, temperature: float, weight: float) -> DistillConfig | None:
    """The DistillConfig of the CLI's --teacher options, or None without a teacher."""
    return DistillConfig(str(teacher), temperature, weight) if teacher else None


def distillation(cfg: DistillConfig, model_name: str) -> Distillation:
    """The callback for ``cfg``, its teacher loaded as registered model ``model_name``."""
    from models.checkpoint import CheckpointError, NonFiniteCheckpoint, load_model

    if Path(cfg.teacher).is_dir():
        raise ConfigError(f"distillation teacher {cfg.teacher} is a directory; pass the "
                         "checkpoint.pt of a trained run (e.g. the dense baseline) as --teacher, "
                         f"e.g. {Path(cfg.teacher) / 'checkpoint.pt'}.")
    from models import pretrained

    if not Path(cfg.teacher).is_file() and not pretrained.is_name(cfg.teacher):
        raise ConfigError(f"distillation teacher {cfg.teacher} does not exist; pass the "
                         "checkpoint.pt of a trained run (e.g. the dense baseline) as --teacher.")
    try:
        teacher = load_model(model_name, cfg.teacher)
    except NonFiniteCheckpoint as e:
        raise ConfigError(f"--teacher: {e}") from None
    except CheckpointError as e:
        raise ConfigError(f"--teacher {cfg.teacher} is not a usable checkpoint of model "
                         f"{model_name!r}, the model being trained: the teacher must be the same "
                         f"registered model (dense or compressed). ({e})") from None
    return Distillation(teacher, cfg.temperature, cfg.weight)
