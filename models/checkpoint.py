"""Reading checkpoints back: clear errors for bad files, and models rebuilt in the structure
(low-rank pairs, their ranks) that the checkpoint was saved in."""

import os
from pathlib import Path

import torch
from torch import nn

from common.errors import UserError


class CheckpointError(UserError, ValueError):
    """A checkpoint is missing, corrupt or does not fit the model."""


class NonFiniteCheckpoint(CheckpointError):
    """A checkpoint holds NaN or infinite weights (from a run that diverged, or a damaged file)."""


def load_checkpoint(path: str | os.PathLike) -> dict:
    """``torch.load(path, weights_only=True)`` with a readable error for bad files; its model
    state (state_dict_of) must hold finite floating-point tensors only. ``path`` may name a
    shipped checkpoint (``lenet:group-scissor``, models/pretrained.py), verified by sha256."""
    from models import pretrained

    path = pretrained.resolve(str(path)) if pretrained.is_name(str(path)) else Path(path)
    if path.is_dir():
        inside = " (the one in it?)" if (path / "checkpoint.pt").is_file() else ""
        raise CheckpointError(f"checkpoint {path} is a directory; pass the checkpoint.pt file "
                              f"written by 'group-scissor train' (or clip/prune){inside}, e.g. "
                              f"{path / 'checkpoint.pt'}.")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the checkpoint.pt written "
                              "by 'group-scissor train' (or clip/prune).")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to unpickle means a bad file
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch checkpoint "
                              f"({first}). Re-create it with 'group-scissor train', or resume "
                              "from an intact copy.") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict.")
    check_finite(state_dict_of(obj), f"checkpoint {path}")
    return obj


def check_finite(state: dict, what: str) -> None:
    """NonFiniteCheckpoint naming every floating-point tensor of ``state`` that holds a NaN or
    an infinity (one reduction per tensor)."""
    floats = {k: v for k, v in state.items()
              if isinstance(v, torch.Tensor) and (v.is_floating_point() or v.is_complex())}
    if not floats:
        return
    finite = torch.stack([torch.isfinite(v).all() for v in floats.values()])  # (tensors,)
    bad = [k for k, ok in zip(floats, finite.tolist(), strict=True) if not ok]
    if bad:
        names = ", ".join(bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
        raise NonFiniteCheckpoint(
            f"{what} holds NaN or infinite weights in {names}: it comes from a run that "
            "diverged or is damaged, and nothing can be trained or mapped from it. Use an "
            "earlier checkpoint of that run, or train it again (with a lower learning rate if "
            "it diverged).")


def state_dict_of(obj: dict) -> dict:
    """The model state dict inside a checkpoint.pt (itself) or a resume.pt (its 'model')."""
    return obj["model"] if "model" in obj and isinstance(obj["model"], dict) else obj


def conform_model(model: nn.Module, state: dict) -> nn.Module:
    """Make ``model``'s structure match ``state``: layers saved as low-rank pairs
    (``<layer>.U.weight``) become pairs of the saved rank. In place; returns the model."""
    from models.lowrank import low_rank_layers, to_low_rank

    existing = low_rank_layers(model)
    for key, w in state.items():
        if not key.endswith(".U.weight"):
            continue
        name = key[: -len(".U.weight")]
        k = w.shape[0]
        if name in existing:
            if existing[name].rank != k:
                existing[name].set_factors(torch.zeros(existing[name].u_matrix().shape[0], k),
                                           torch.zeros(k, existing[name].v_matrix().shape[1]))
        else:
            try:
                to_low_rank(model, [name], rank=k)
            except ValueError as e:
                raise CheckpointError(f"the checkpoint has a low-rank layer {name!r} that does "
                                      f"not fit the model: {e}") from None
    from models.masks import conform_masks

    conform_masks(model, state)
    return model


def load_model(model_name: str, path: str | os.PathLike | None = None) -> nn.Module:
    """Build registered model ``model_name`` and, if given, load the checkpoint at ``path``
    (state dict or resume.pt), in the structure it was saved in."""
    import models

    model = models.get(model_name)
    if path is None:
        return model
    from models import pretrained

    if pretrained.is_name(str(path)) and pretrained.entry(str(path))["model"] != model_name.lower():
        raise CheckpointError(f"shipped checkpoint {path} is of model "
                              f"{pretrained.entry(str(path))['model']!r}, not {model_name!r}; pass "
                              f"--model {pretrained.entry(str(path))['model']}")
    state = state_dict_of(load_checkpoint(path))
    conform_model(model, state)
    load_state(model, state, f"checkpoint {path} does not fit model {model_name!r}",
               "Pass the --model it was trained with.")
    return model


def load_state(model: nn.Module, state: dict, problem: str, fix: str) -> None:
    """model.load_state_dict(state), a mismatch reported as CheckpointError(problem: ... fix)."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        raise CheckpointError(f"{problem}: {' '.join(lines[1:3])[:300]}. {fix}") from None
