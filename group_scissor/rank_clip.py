"""Rank clipping (Group Scissor, step 1): shrink the rank of every low-rank pair during training.

Every ``clip_interval`` optimizer steps each pair's product P = U @ V (N x M) is decomposed,
P = Q S R^T, and its rank cut to the smallest k whose *relative approximation error*

    err(k) = sum_{i>k} s_i^2 / sum_i s_i^2        (the share of P's energy dropped)

is at most the tolerance (tolerance 0.01 keeps 99 % of the energy). The new factors are the
balanced truncated SVD, U' = Q_k S_k^1/2 and V' = S_k^1/2 R_k^T, so U' @ V' is the best rank-k
approximation of P. Ranks only shrink: a pair whose rank would not fall is left untouched.
SGD momentum is carried across a clip by the same linear change of variables as the weights
(U' = U A, V' = B V, so the velocity of U becomes velocity @ A and that of V, B @ velocity).
"""

import math
from dataclasses import dataclass

import torch

from common.errors import ConfigError
from group_scissor.train import Callback
from models.lowrank import _LowRank, low_rank_layers


@dataclass(frozen=True)
class ClipConfig:
    """When and how hard to clip."""

    tolerance: float = 0.01
    """Largest relative approximation error err(k) allowed at a clip (share of energy dropped)."""
    clip_interval: int = 500
    """Optimizer steps between clips."""
    layers: tuple[str, ...] | None = None
    """Pairs to clip (names); None: every low-rank pair in the model."""
    last_clip_step: int | None = None
    """No clipping after this step (fine-tuning at fixed ranks); None: clip until the end."""
    tolerance_ramp_steps: int = 0
    """Raise the tolerance linearly from 0 to ``tolerance`` over this many steps (0: at once)."""

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < 1:
            raise ConfigError(f"ClipConfig: tolerance must be in [0, 1), got {self.tolerance}")
        if self.clip_interval < 1:
            raise ConfigError(f"ClipConfig: clip_interval must be >= 1, got {self.clip_interval}")
        if self.last_clip_step is not None and self.last_clip_step < 0:
            raise ConfigError(f"ClipConfig: last_clip_step must be >= 0, got {self.last_clip_step}")
        if self.tolerance_ramp_steps < 0:
            raise ConfigError("ClipConfig: tolerance_ramp_steps must be >= 0")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))

    def tolerance_at(self, step: int) -> float:
        if self.tolerance_ramp_steps <= 0:
            return self.tolerance
        return self.tolerance * min(1.0, step / self.tolerance_ramp_steps)


def rank_for_tolerance(s: torch.Tensor, tolerance: float) -> int:
    """Smallest k >= 1 with sum_{i>k} s_i^2 <= tolerance * sum s_i^2 (s sorted descending)."""
    energy = s.double() ** 2
    total = energy.sum()
    if total <= 0:
        return 1
    dropped = (total - torch.cumsum(energy, 0)).clamp_min(0)  # dropped[k-1]: energy beyond k
    dropped[-1] = 0  # exact at full rank, whatever the rounding
    ok = dropped <= tolerance * total * (1 + 1e-12)
    return int(torch.nonzero(ok)[0].item()) + 1


@torch.no_grad()
def clip_pair(pair: _LowRank, tolerance: float, optimizer=None) -> tuple[int, int]:
    """Clip one pair in place; returns (old rank, new rank). Moves momentum if ``optimizer``."""
    u, v = pair.u_matrix().double(), pair.v_matrix().double()  # (N,K), (K,M)
    old = u.shape[1]
    q, s, rh = torch.linalg.svd(u @ v, full_matrices=False)
    k = min(rank_for_tolerance(s, tolerance), old)
    if k >= old:
        return old, old
    root = s[:k].clamp_min(1e-30).sqrt()
    a = (v @ rh[:k].T) / root  # (K,k): U' = U @ a
    b = (q[:, :k].T @ u) / root[:, None]  # (k,K): V' = b @ V
    bufs = _momentum(optimizer, pair) if optimizer is not None else None
    dtype = pair.U.weight.dtype
    pair.set_factors((q[:, :k] * root).to(dtype), (root[:, None] * rh[:k]).to(dtype))
    if bufs is not None:
        bu, bv = bufs  # velocities as matrices (N,K), (K,M)
        _set_momentum(optimizer, pair, (bu.double() @ a).to(dtype), (b @ bv.double()).to(dtype))
    return old, k


def _momentum(optimizer, pair):
    su = optimizer.state.get(pair.U.weight, {}).get("momentum_buffer")
    sv = optimizer.state.get(pair.V.weight, {}).get("momentum_buffer")
    if su is None or sv is None:
        return None
    return su.reshape(su.shape[0], -1).T, sv.reshape(sv.shape[0], -1).T


def _set_momentum(optimizer, pair, bu, bv):
    optimizer.state[pair.U.weight]["momentum_buffer"] = bu.T.reshape(pair.U.weight.shape).clone()
    optimizer.state[pair.V.weight]["momentum_buffer"] = bv.T.reshape(pair.V.weight.shape).clone()


class RankClipping(Callback):
    """Trainer callback: clip ranks every ``clip_interval`` steps; records the rank history."""

    name = "rank_clipping"

    def __init__(self, config: ClipConfig):
        self.config = config
        self.history: list[dict] = []  # [{"step", "epoch", "tolerance", "ranks": {name: k}}]

    def _pairs(self, trainer) -> dict[str, _LowRank]:
        pairs = low_rank_layers(trainer.module)
        if self.config.layers is None:
            return pairs
        missing = [n for n in self.config.layers if n not in pairs]
        if missing:
            raise ConfigError(f"rank clipping: {missing} are not low-rank layers of the model; "
                             f"its low-rank layers are {sorted(pairs)}")
        return {n: pairs[n] for n in self.config.layers}

    def on_train_begin(self, trainer) -> None:
        if not self.history:
            self._record(trainer, 0.0)

    def after_step(self, trainer) -> None:
        c = self.config
        if trainer.step % c.clip_interval or (c.last_clip_step is not None
                                              and trainer.step > c.last_clip_step):
            return
        tol = c.tolerance_at(trainer.step)
        opt = trainer.optimizer
        changed = False
        for name, pair in self._pairs(trainer).items():
            try:
                old, new = clip_pair(pair, tol, opt)
            except torch.linalg.LinAlgError:  # the SVD of a non-finite product
                trainer._diverged(what=f"the weights of low-rank layer {name!r} became NaN or "
                                       "infinite (the step before the clip)")
            changed |= new != old
        if changed:
            _rebuild_keep_state(trainer)
        self._record(trainer, tol)

    def _record(self, trainer, tol: float) -> None:
        self.history.append({"step": trainer.step, "epoch": trainer.step / trainer.steps_per_epoch,
                             "tolerance": tol,
                             "ranks": {n: p.rank for n, p in self._pairs(trainer).items()}})

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state.get("history", []))


def _rebuild_keep_state(trainer) -> None:
    """New optimizer over the new parameters, carrying every parameter's state by identity."""
    def transfer(old, new):
        for p in (q for g in new.param_groups for q in g["params"]):
            if p in old.state:
                new.state[p] = old.state[p]

    trainer.rebuild_optimizer(transfer)


def cells_of(model) -> int:
    """Logical weights held by the model's weighted layers (hardware-model 'cells')."""
    return sum(math.prod(m.weight.shape) for m in model.modules()
               if isinstance(m, torch.nn.Linear | torch.nn.Conv2d))
