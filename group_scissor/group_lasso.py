"""Group connection deletion (Group Scissor, step 2): a crossbar-aligned group Lasso whose zero
groups are wires that the chip no longer needs.

Groups (hardware-model.md section 4) of a mapped matrix W (N x M, rows = inputs), on the logical
tile grid of the CrossbarSpec in use (``rows`` x ``lcols``), for tile (a, b):
  input-wire group  (a, i, b): W[a*rows + i, b*lcols:(b+1)*lcols]  all zero -> input wire
                               a*rows + i into T(a, b) is removed;
  output-wire group (a, b, j): W[a*rows:(a+1)*rows, b*lcols + j]   all zero -> output wire
                               b*lcols + j out of T(a, b) is removed.
Vectorized: W is padded to (A*rows, B*lcols) and viewed as t (A, rows, B, lcols); input-group
norms are sqrt(sum of t^2 over the lcols axis) (A, rows, B), output-group norms sqrt(sum over
the rows axis) (A, B, lcols). Padding groups (beyond N or M) have weight 0; ``|g|`` counts real
elements only.

Penalty: lambda * sum_g c_g ||w_g||_2 with c_g = sqrt(|g|) (``sqrt_size_weighting``) or 1.
Two ways to minimize it:
- 'subgradient': the penalty is added to the loss. The norm has no gradient at 0; a zero group
  gets gradient 0 (masked form), so exact zeros are kept but rarely created; deletion then
  relies on the threshold.
- 'prox' (default): after every optimizer step, the group soft-threshold
  w_g <- w_g * max(0, 1 - lr * lambda * c_g / ||w_g||), which sets whole groups exactly to 0.
  Input and output groups overlap (each weight is in one of each), and the prox of the sum has
  no closed form, so the two are applied in sequence: input groups first, then output groups
  with norms recomputed after the first shrink (one step of a proximal splitting).
  With SGD momentum mu the gradient step is amplified ~1/(1 - mu) and the prox step is not, so
  prox needs ~1/(1 - mu) (10x at mu 0.9) the subgradient's lambda for a similar sparsity.
Choosing lambda: a group can shrink by at most lambda * c_g * sum(lr) over the regularized
steps, and stays at zero once its gradient (times 1/(1 - mu)) is below lambda * c_g; so the
same lambda prunes far less in a short run (digits, ~100 steps: ~0.1) than in a long one
(MNIST, ~7,500 steps: ~2e-3).
Deletion: a group is deleted when ||w_g|| <= threshold * rms(W) * sqrt(|g|) ('relative': the
group's RMS weight is at most ``threshold`` times the matrix's RMS weight) or ||w_g|| <=
threshold ('absolute'), in every selected matrix (also one whose lambda is 0). Deleted groups
are zeroed and masked (``weight_mask`` buffer, models.masks): they stay zero through
fine-tuning (masks re-applied after every step), checkpoint.pt / resume.pt (the mask is a
buffer; checkpoint.conform_model re-creates it on load) and export (the mapper reads the zeros).
Grouped convs (groups = g, depthwise when g = C): the mapper maps group i as its own matrix
``<layer>.g<i>`` (the filters weight[i*F/g:(i+1)*F/g], (C/g*kh*kw) x (F/g)), so each is its own
GroupedMatrix with its own tile grid, named and given a lambda as 'dw.g3' or, all of them, as the
layer 'dw'; its prox, penalty, deletion and mask act on that slice of the weight. The g matrices
of a layer share one TileGroups and run as one batched call on the (g, N, M) view of the weight
(MobileNetV2 has 7,136 depthwise group matrices: one call each costs ~50x the whole rest of a
prox step). A grouped matrix's relative deletion threshold is relative to its layer's RMS.
``lowrank.merge`` keeps zeros, not masks: U @ V has a zero row where a whole row of U is zero
(the input is deleted in every tile of U) and a zero column where a whole column of V is zero;
a group deleted in one tile of U or V is generally not a zero of the product, and the merged
layer has no weight_mask. Map the pair (U and V), not the merged product.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from common.errors import ConfigError
from group_scissor.train import Callback
from models.lowrank import balance, layer_matrix
from models.masks import apply_masks, masked_layers, restrict_mask

METHODS = ("prox", "subgradient")
THRESHOLD_MODES = ("relative", "absolute")


@dataclass(frozen=True)
class GroupLassoConfig:
    """How strongly to regularize which matrices, and when a group counts as deleted."""

    lambda_: float | Mapping[str, float] = 2e-3
    """Penalty strength: one float for every matrix, or a dict keyed by matrix name ('fc1.U'),
    layer name ('fc1': both factors) or '*' (every other matrix; absent: 0)."""
    sqrt_size_weighting: bool = False
    """Scale each group's norm by sqrt(|g|), its number of real weights."""
    method: str = "prox"
    """'prox' (group soft-threshold after each step) or 'subgradient' (penalty in the loss)."""
    threshold: float = 0.05
    """Deletion threshold on a group's norm (see threshold_mode); 0 deletes exactly-zero groups
    only. Prox-SGD leaves groups hovering near 0 (gradient noise kicks them out of 0 between
    prox steps); 0.05 relative (group RMS <= 5 % of the matrix RMS) catches them."""
    threshold_mode: str = "relative"
    """'relative': ||w_g|| <= threshold * rms(W) * sqrt(|g|); 'absolute': ||w_g|| <= threshold."""
    layers: tuple[str, ...] | None = None
    """Matrix or layer names to regularize; None: every matrix the mapper maps."""
    rebalance: bool = False
    """At deletion, rescale every low-rank pair so each rank component has equal norms in U and
    V (exact: the outputs do not change; lowrank.balance_pair). A penalty on one factor leaves
    it small and the other large, and fine-tuning at a restarted learning rate then diverges."""

    def __post_init__(self) -> None:
        lam = self.lambda_
        items = lam.items() if isinstance(lam, Mapping) else [("lambda", lam)]
        for key, v in items:
            if not isinstance(key, str):
                raise ConfigError(f"GroupLassoConfig: lambda_ keys must be names, got {key!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 \
                    or not math.isfinite(v):
                raise ConfigError(f"GroupLassoConfig: lambda for {key!r} must be a finite number "
                                 f">= 0, got {v!r}")
        if isinstance(lam, Mapping):
            object.__setattr__(self, "lambda_", {k: float(v) for k, v in lam.items()})
        if self.method not in METHODS:
            raise ConfigError(f"GroupLassoConfig: method must be one of {METHODS}, got "
                             f"{self.method!r}")
        if self.threshold_mode not in THRESHOLD_MODES:
            raise ConfigError(f"GroupLassoConfig: threshold_mode must be one of {THRESHOLD_MODES},"
                             f" got {self.threshold_mode!r}")
        if not (self.threshold >= 0 and math.isfinite(self.threshold)):
            raise ConfigError(f"GroupLassoConfig: threshold must be a finite number >= 0, got "
                             f"{self.threshold!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(self.layers))

    def lambda_for(self, matrix: str, layer: str) -> float:
        """Strength for matrix ``matrix`` of layer ``layer``."""
        lam = self.lambda_
        if not isinstance(lam, Mapping):
            return float(lam)
        for key in (matrix, layer, "*"):
            if key in lam:
                return lam[key]
        return 0.0


# ---- groups of one matrix ------------------------------------------------------------------------

def tile_grid(n: int, m: int, rows: int, lcols: int) -> tuple[int, int]:
    """(A, B) = (ceil(N / rows), ceil(M / lcols))."""
    return -(-n // rows), -(-m // lcols)


def tiled(w: torch.Tensor, rows: int, lcols: int) -> torch.Tensor:
    """w (..., N, M) -> zero-padded t (..., A, rows, B, lcols),
    t[..., a, i, b, j] = w[..., a*rows + i, b*lcols + j]."""
    na, nb = tile_grid(*w.shape[-2:], rows, lcols)
    w = F.pad(w, (0, nb * lcols - w.shape[-1], 0, na * rows - w.shape[-2]))
    return w.reshape(*w.shape[:-2], na, rows, nb, lcols)


def group_sizes(n: int, m: int, rows: int, lcols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real weights per group: input groups (A, rows, B), output groups (A, B, lcols); 0 marks a
    padding group (a row beyond N or a column beyond M)."""
    na, nb = tile_grid(n, m, rows, lcols)
    h = (n - rows * torch.arange(na)).clamp(max=rows)  # (A,) real rows per row block
    wd = (m - lcols * torch.arange(nb)).clamp(max=lcols)  # (B,) real cols per column block
    row_real = (torch.arange(na * rows) < n).reshape(na, rows, 1)
    col_real = (torch.arange(nb * lcols) < m).reshape(1, nb, lcols)
    return row_real * wd.reshape(1, 1, nb), col_real * h.reshape(na, 1, 1)


class TileGroups:
    """The input and output groups of one N x M matrix on a rows x lcols tile grid, or of a batch
    of G such matrices: every method takes w (N, M), or w (G, N, M) and answers with a leading G
    (the g group matrices of a grouped conv in one call: a depthwise layer has up to 960).

    Works on wt = w.T (G, M, N), the memory order of a Linear/Conv2d weight. Norms: its squares
    go into a zero-padded buffer viewed as (G, B, c, A, r), the (A, r, B, c) tiling of the module
    docstring transposed; input-group norms sum over axis 2, output-group norms over axis 4. The
    internal tile is r x c: r = rows when there are several row blocks, else N (one row block
    needs no padding rows: they are empty groups), c likewise lcols or M; so a 9 x 1 depthwise
    group matrix is not padded to a whole tile. The public layouts (``norms``, ``dead``,
    ``keep_mask``, ``c_in``/``c_out``, ``sizes``) keep the full rows x lcols tile. Per-group
    factors broadcast onto tile-aligned views of wt (``_views``: rows of wt by column blocks,
    (G, k, c, N) + the partial last block; columns by row blocks, (G, M, k, r) + the partial
    last one), never a padded copy. Buffers and views are cached per dtype, device, G and weight
    tensor: dispatch overhead and memory passes, not arithmetic, are what a small network
    pays."""

    def __init__(self, n: int, m: int, rows: int, lcols: int, sqrt_size: bool = False):
        self.n, self.m, self.rows, self.lcols = n, m, rows, lcols
        self.na, self.nb = tile_grid(n, m, rows, lcols)
        s_in, s_out = group_sizes(n, m, rows, lcols)
        self.sizes = s_in, s_out
        c = (lambda s: s.double().sqrt()) if sqrt_size else (lambda s: (s > 0).double())
        self.c_in, self.c_out = c(s_in), c(s_out)
        """c_g: (A, rows, B) and (A, B, lcols); 0 for padding groups."""
        self._r = rows if self.na > 1 else n
        self._c = lcols if self.nb > 1 else m
        self._c_in = self.c_in[:, : self._r].permute(2, 0, 1).contiguous()  # (B, A, r)
        self._c_out = self.c_out[:, :, : self._c].permute(1, 2, 0).contiguous()  # (B, c, A)
        self._cache: dict = {}

    @staticmethod
    def _t(w: torch.Tensor) -> torch.Tensor:
        """w (N, M) or (G, N, M) -> wt (G, M, N), a view."""
        wt = w.transpose(-1, -2)
        return wt if wt.dim() == 3 else wt.unsqueeze(0)

    def _state(self, wt: torch.Tensor) -> dict:
        """Per dtype, device and G: a zero-padded (G, B*c, A*r) buffer for the squares, c_g in the
        (B, A, r) / (B, c, A) layouts and ones of those shapes; per weight tensor: its
        tile-aligned views."""
        if wt.dim() != 3 or wt.shape[1:] != (self.m, self.n):
            raise ConfigError(f"matrix of shape {tuple(wt.transpose(-1, -2).shape)} given to the "
                             f"groups of a {self.n}x{self.m} matrix")
        g = wt.shape[0]
        st = self._cache.get((wt.dtype, wt.device, g))
        if st is None:
            c_in = self._c_in.to(wt.device, wt.dtype)
            c_out = self._c_out.to(wt.device, wt.dtype)
            buf = wt.new_zeros(g, self.nb * self._c, self.na * self._r)  # pad stays 0
            st = self._cache[(wt.dtype, wt.device, g)] = {
                "sq": buf[:, : self.m, : self.n],
                "sq4": buf.view(g, self.nb, self._c, self.na, self._r),
                "c_in": c_in, "c_out": c_out, "ones_in": torch.ones_like(c_in),
                "ones_out": torch.ones_like(c_out), "wt": None}
        key = (wt.data_ptr(), wt.stride())  # the cached views keep their tensor alive
        if st["wt"] is None or st["wt"][0] != key:
            st["wt"] = (key, self._views(wt.detach(), "in"), self._views(wt.detach(), "out"))
        return st

    def _views(self, x: torch.Tensor, kind: str) -> list[torch.Tensor]:
        """x (G, M, N) cut along tile boundaries: 'in' -> rows of x in whole column blocks
        (G, k, c, N) and the partial last block; 'out' -> columns in whole row blocks
        (G, M, k, r) and the partial last one."""
        g = x.shape[0]
        if kind == "in":
            k, c = self.m // self._c, self._c
            return ([x[:, : k * c].view(g, k, c, self.n)] if k else []) + (
                [x[:, k * c:]] if k < self.nb else [])
        k, r = self.n // self._r, self._r
        return ([x[:, :, : k * r].view(g, self.m, k, r)] if k else []) + (
            [x[:, :, k * r:]] if k < self.na else [])

    def _factors(self, f: torch.Tensor, kind: str) -> list[torch.Tensor]:
        """Per-group factors f_in (G, B, A, r) or f_out (G, B, c, A), viewed to broadcast
        against ``_views(x, kind)``."""
        g = f.shape[0]
        if kind == "in":
            f, k = f.reshape(g, self.nb, -1)[:, :, : self.n], self.m // self._c  # (G, B, N)
            return ([f[:, :k].unsqueeze(2)] if k else []) + (
                [f[:, k].unsqueeze(1)] if k < self.nb else [])
        f, k = f.reshape(g, -1, self.na)[:, : self.m], self.n // self._r  # (G, M, A)
        return ([f[:, :, :k].unsqueeze(3)] if k else []) + ([f[:, :, k:]] if k < self.na else [])

    def _norms_t(self, wt: torch.Tensor, which: str = "both"):
        """Input-group norms (G, B, A, r) and/or output-group norms (G, B, c, A) of wt
        (G, M, N); padding groups are 0."""
        st = self._state(wt)
        torch.mul(wt.detach(), wt.detach(), out=st["sq"])
        n_in = st["sq4"].sum(2).sqrt_() if which != "out" else None
        n_out = st["sq4"].sum(4).sqrt_() if which != "in" else None
        return n_in, n_out

    @torch.no_grad()
    def norms(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """w (N, M) -> input-group norms (A, rows, B), output-group norms (A, B, lcols); w
        (G, N, M) -> (G, A, rows, B), (G, A, B, lcols)."""
        n_in, n_out = self._norms_t(self._t(w))
        n_in = F.pad(n_in.permute(0, 2, 3, 1), (0, 0, 0, self.rows - self._r))
        n_out = F.pad(n_out.permute(0, 3, 1, 2), (0, self.lcols - self._c))
        return (n_in, n_out) if w.dim() == 3 else (n_in[0], n_out[0])

    def penalty(self, w: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """sum_g c_g ||w_g||_2 over input and output groups of w (N, M), or summed over the
        matrices of w (G, N, M), matrix k's terms times scale[k] when ``scale`` (G,) is given;
        differentiable, with gradient 0 on a zero group (the masked subgradient)."""
        return _GroupLassoFn.apply(self._t(w), self, scale)

    @torch.no_grad()
    def prox_(self, w: torch.Tensor, step: float | torch.Tensor) -> None:
        """In place on w (N, M) or (G, N, M), a view of the weight: input groups w_g *= max(0,
        1 - step*c_g/||w_g||), then output groups likewise, with their norms after the first
        shrink. ``step`` = lr * lambda: a float, or (G,) one per matrix (0 leaves it alone)."""
        per_matrix = isinstance(step, torch.Tensor)
        if not per_matrix and step <= 0:
            return
        wt = self._t(w)
        st = self._state(wt)
        s = step.to(wt.device, wt.dtype).view(-1, 1, 1, 1) if per_matrix else None
        for kind in ("in", "out"):
            n = self._norms_t(wt, kind)[kind == "out"]
            # 1 - step*c/n, clamped at 0 (a zero group: -inf -> 0; padding NaNs are never used)
            if per_matrix:  # a step of 0 on a zero group: 0/0 -> NaN -> 0 (its weights are 0)
                f = torch.addcdiv(st[f"ones_{kind}"], st[f"c_{kind}"] * s, n, value=-1.0)
                f = f.nan_to_num_(0.0).clamp_min_(0)
            else:
                f = torch.addcdiv(st[f"ones_{kind}"], st[f"c_{kind}"], n, value=-step).clamp_min_(0)
            for x, fx in zip(st["wt"][1 if kind == "in" else 2], self._factors(f, kind),
                             strict=True):
                x.mul_(fx)

    @torch.no_grad()
    def dead(self, w: torch.Tensor, threshold: float, mode: str = "relative",
             rms: float | None = None):
        """Bool (A, rows, B), (A, B, lcols) for w (N, M), with a leading G for w (G, N, M):
        groups at or under the threshold (padding: False). relative: ||w_g|| <= threshold * rms
        * sqrt(|g|), rms = ``rms`` if given (one for every matrix, e.g. the RMS of a grouped
        conv's whole weight), else rms(w) of each matrix; absolute: ||w_g|| <= threshold."""
        w3 = w.unsqueeze(0) if w.dim() == 2 else w
        r, c = self._r, self._c
        sq = tiled(w3.double().square(), r, c)  # (G, A, r, B, c)
        n_in, n_out = sq.sum(4).sqrt(), sq.sum(2).sqrt()  # (G, A, r, B), (G, A, B, c)
        s_in = self.sizes[0][:, :r].to(w.device)
        s_out = self.sizes[1][..., :c].to(w.device)
        if mode == "relative":
            if rms is None:
                rms = w3.double().square().mean((1, 2)).sqrt().view(-1, 1, 1, 1)
            t_in, t_out = threshold * rms * s_in.double().sqrt(), threshold * rms * s_out.double().sqrt()
        elif mode == "absolute":
            t_in = t_out = torch.tensor(float(threshold), dtype=torch.float64, device=w.device)
        else:
            raise ConfigError(f"threshold mode must be one of {THRESHOLD_MODES}, got {mode!r}")
        g = w3.shape[0]
        d_in = torch.zeros(g, self.na, self.rows, self.nb, dtype=torch.bool, device=w.device)
        d_out = torch.zeros(g, self.na, self.nb, self.lcols, dtype=torch.bool, device=w.device)
        d_in[:, :, :r] = (n_in <= t_in) & (s_in > 0)
        d_out[..., :c] = (n_out <= t_out) & (s_out > 0)
        return (d_in, d_out) if w.dim() == 3 else (d_in[0], d_out[0])

    def keep_mask(self, dead_in: torch.Tensor, dead_out: torch.Tensor) -> torch.Tensor:
        """(N, M) bool (with the leading G of the arguments, if any): the weights in no dead
        group."""
        dead = dead_in.unsqueeze(-1) | dead_out.unsqueeze(-3)  # (..., A, rows, B, lcols)
        lead = dead.shape[:-4]
        return ~dead.reshape(*lead, self.na * self.rows, self.nb * self.lcols)[..., : self.n,
                                                                              : self.m]


class _GroupLassoFn(torch.autograd.Function):
    """sum_g s_k c_g ||w_g|| of wt = w.T (G, M, N) (s_k = ``scale`` of matrix k, or 1);
    backward in two passes over the weights: grad * wt * s_k (c_in/||g_in|| + c_out/||g_out||),
    0 on zero groups."""

    @staticmethod
    def forward(ctx, wt, groups: TileGroups, scale: torch.Tensor | None):
        st = groups._state(wt)
        n_in, n_out = groups._norms_t(wt)
        c_in, c_out = st["c_in"], st["c_out"]
        if scale is not None:
            s = scale.to(wt.device, wt.dtype).view(-1, 1, 1, 1)
            c_in, c_out = c_in * s, c_out * s
        ctx.groups = groups
        ctx.save_for_backward(wt, torch.div(c_in, n_in).nan_to_num_(0, 0, 0),
                              torch.div(c_out, n_out).nan_to_num_(0, 0, 0))
        return (n_in * c_in).sum() + (n_out * c_out).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        wt, f_in, f_out = ctx.saved_tensors
        groups, st, out = ctx.groups, ctx.groups._state(wt), torch.empty_like(wt)
        for o, x, f in zip(groups._views(out, "in"), st["wt"][1],
                           groups._factors(f_in * grad, "in"), strict=True):
            torch.mul(x, f, out=o)
        for o, x, f in zip(groups._views(out, "out"), st["wt"][2],
                           groups._factors(f_out * grad, "out"), strict=True):
            o.addcmul_(x, f)
        return out, None, None


def group_lasso_penalty(w: torch.Tensor, rows: int, lcols: int, lam: float = 1.0,
                        sqrt_size: bool = False) -> torch.Tensor:
    """lam * sum over input and output groups of c_g ||w_g||_2 for w (N, M); a scalar."""
    return lam * TileGroups(*w.shape, rows, lcols, sqrt_size).penalty(w)


# ---- the matrices of a model --------------------------------------------------------------------

@dataclass(eq=False)
class GroupedMatrix:
    """One mapped matrix under the group Lasso."""

    name: str
    """Mapper's matrix name ('conv1', 'fc1.U', 'dw.g3')."""
    layer: str
    """Mapper's layer name ('fc1' for both factors of a pair, 'dw' for every group of a grouped
    conv)."""
    module: nn.Module
    """The Linear/Conv2d holding the weight; its matrix is layer_matrix(module, group), a view."""
    lam: float
    groups: TileGroups
    """The groups of this matrix's shape; the g matrices of a grouped conv share one."""
    group: int | None = None
    """Group i of a grouped conv: the matrix is the filters weight[i*F/g:(i+1)*F/g]."""

    @property
    def matrix(self) -> torch.Tensor:
        return layer_matrix(self.module, self.group)  # (N, M), a view of module.weight


def group_stack(module: nn.Module) -> torch.Tensor:
    """The g group matrices of a grouped conv as one (g, C/g*kh*kw, F/g) view of its (contiguous)
    weight: [i] = layer_matrix(module, i)."""
    w, g = module.weight, module.groups
    return w.view(g, w.shape[0] // g, -1).transpose(1, 2)


@dataclass(eq=False)
class _Batch:
    """The selected matrices of one module, handled in one call: a plain matrix alone (G = 1),
    the group matrices of a grouped conv all together (G = g; a group that is not selected has
    lambda 0 and is never deleted)."""

    groups: TileGroups
    module: nn.Module
    mats: list[GroupedMatrix]
    lam: torch.Tensor
    """(G,) float64, 0 for a group that is not selected."""
    selected: torch.Tensor
    """(G,) bool."""
    uniform: float | None
    """The one lambda of a batch whose G matrices are all selected with the same lambda."""

    def __post_init__(self) -> None:
        self.active = bool(self.lam.any())
        """Some lambda is > 0."""

    @property
    def stack(self) -> torch.Tensor:
        """(G, N, M), a view of the module's weight."""
        g = self.mats[0]
        return g.matrix.unsqueeze(0) if g.group is None else group_stack(self.module)

    def step(self, lr: float) -> float | torch.Tensor:
        return lr * self.uniform if self.uniform is not None else lr * self.lam

    def penalty(self) -> torch.Tensor:
        if self.uniform is not None:
            return self.uniform * self.groups.penalty(self.stack)
        return self.groups.penalty(self.stack, self.lam)


def _batches(mats: list[GroupedMatrix]) -> list[_Batch]:
    """One batch per module, in the order of ``mats``: the plain matrices one by one, a grouped
    conv's matrices together."""
    parts: dict[int, list[GroupedMatrix]] = {}
    for g in mats:
        parts.setdefault(id(g) if g.group is None else id(g.module), []).append(g)
    out = []
    for members in parts.values():
        g = members[0]
        if g.group is None:
            out.append(_Batch(g.groups, g.module, [g], torch.tensor([g.lam], dtype=torch.float64),
                              torch.ones(1, dtype=torch.bool), g.lam))
            continue
        module = g.module
        idx = torch.tensor([g.group for g in members])
        lam = torch.zeros(module.groups, dtype=torch.float64)
        lam[idx] = torch.tensor([g.lam for g in members], dtype=torch.float64)
        selected = torch.zeros(module.groups, dtype=torch.bool)
        selected[idx] = True
        uniform = float(lam[0]) if selected.all() and bool((lam == lam[0]).all()) else None
        out.append(_Batch(members[0].groups, module, members, lam, selected, uniform))
    return out


def _names(found: list[tuple]) -> str:
    """The matrix names of ``found`` for a message; a grouped conv's as 'dw.g0 .. dw.g31'."""
    out, seen = [], set()
    for name, layer, _, group in found:
        if group is None:
            out.append(name)
        elif layer not in seen:
            seen.add(layer)
            gs = [n for n, lay, _, g in found if lay == layer and g is not None]
            out.append(gs[0] if len(gs) == 1 else f"{gs[0]} .. {gs[-1]}")
    return ", ".join(out)


def grouped_matrices(model: nn.Module, rows: int, lcols: int,
                     config: GroupLassoConfig) -> list[GroupedMatrix]:
    """The matrices the mapper would map (mapping.extract.find_layers), restricted to
    ``config.layers``: a grouped conv's g group matrices 'dw.g0' .. are one GroupedMatrix each
    (selected or given a lambda by that name, or all of them by the layer name 'dw'). Raises
    ConfigError naming the valid names for an unknown one in ``config.layers`` or among the
    keys of a per-layer ``config.lambda_`` (a typo there would otherwise leave that matrix at
    the '*' strength, silently)."""
    from mapping.extract import find_layers

    found = [(m.name, lay.name, m.module, m.group) for lay in find_layers(model)
             for m in lay.matrices]
    names = {x for n, lay, _, _ in found for x in (n, lay)}
    if isinstance(config.lambda_, Mapping):
        unknown = [k for k in config.lambda_ if k != "*" and k not in names]
        if unknown:
            layers = sorted({lay for n, lay, _, _ in found if n != lay})
            raise ConfigError(
                f"group Lasso: a lambda is given for {unknown}, but the model has no matrix or "
                f"layer of that name; its matrices are: {_names(found)}"
                + (f" (layer names {', '.join(layers)} set every matrix of a low-rank pair or "
                   "grouped conv)" if layers else "") + "; '*' sets every other matrix. Check "
                "the spelling (--lambda '*=X,NAME=Y').")
    if config.layers is not None:
        unknown = [x for x in config.layers if x not in names]
        if unknown:
            raise ConfigError(f"group Lasso: no matrix or layer named {unknown}; the model's are: "
                             f"{_names(found)}")
        found = [f for f in found if f[0] in config.layers or f[1] in config.layers]
        if isinstance(config.lambda_, Mapping):  # a lambda for a matrix left out would be ignored
            kept = {x for n, lay, _, _ in found for x in (n, lay)}
            outside = [k for k in config.lambda_ if k != "*" and k not in kept]
            if outside:
                raise ConfigError(
                    f"group Lasso: a lambda is given for {outside}, but --layers "
                    f"({', '.join(config.layers)}) leaves them out, so it would be ignored; add "
                    "them to --layers or drop their lambda")
    shared: dict[int, TileGroups] = {}  # a grouped conv's matrices share one TileGroups
    out = []
    for name, layer, module, group in found:
        if id(module) not in shared:
            if not module.weight.is_contiguous():  # prox_ works in place on a view of the weight
                raise ConfigError(f"group Lasso: the weight of {name!r} is not contiguous (e.g. "
                                 "channels_last); call "
                                 "model.to(memory_format=torch.contiguous_format)")
            shared[id(module)] = TileGroups(*layer_matrix(module, group).shape, rows, lcols,
                                            config.sqrt_size_weighting)
        out.append(GroupedMatrix(name, layer, module, config.lambda_for(name, layer),
                                 shared[id(module)], group))
    return out


@torch.no_grad()
def group_stats(mats: list[GroupedMatrix]) -> dict:
    """Counts of real and exactly-zero input/output groups, and the penalty lam * sum c_g ||w_g||."""
    d = {"input_groups": 0, "zero_input_groups": 0, "output_groups": 0, "zero_output_groups": 0,
         "penalty": 0.0}
    for b in _batches(mats):
        tg = b.groups
        n_in, n_out = tg.norms(b.stack)  # (G, A, rows, B), (G, A, B, lcols)
        real_in, real_out = tg.sizes[0] > 0, tg.sizes[1] > 0
        sel = b.selected
        d["input_groups"] += int(real_in.sum()) * len(b.mats)
        d["output_groups"] += int(real_out.sum()) * len(b.mats)
        d["zero_input_groups"] += int(((n_in == 0) & real_in)[sel].sum())
        d["zero_output_groups"] += int(((n_out == 0) & real_out)[sel].sum())
        pen = (n_in.double() * tg.c_in).flatten(1).sum(1) + (n_out.double() * tg.c_out).flatten(
            1).sum(1)
        d["penalty"] += float((b.lam * pen).sum())
    return d


@torch.no_grad()
def delete_groups(mats: list[GroupedMatrix], threshold: float,
                  mode: str = "relative") -> dict[str, dict[str, int]]:
    """Zero and mask (``weight_mask``, combined with any existing mask) every group at or under
    the threshold. The relative threshold of a grouped conv's matrix is relative to the RMS of
    the whole layer (all its groups): a depthwise group matrix is one column, which its own RMS
    would never let go below the threshold. Returns {matrix: {'input': deleted input groups,
    'output': ...}}."""
    report = {}
    for b in _batches(mats):
        w = b.stack  # (G, N, M)
        rms = None if b.mats[0].group is None else float(w.double().square().mean().sqrt())
        d_in, d_out = b.groups.dead(w, threshold, mode, rms)
        d_in &= b.selected.view(-1, 1, 1, 1)
        d_out &= b.selected.view(-1, 1, 1, 1)
        restrict_mask(b.module, b.groups.keep_mask(d_in, d_out).transpose(1, 2))  # (G, M, N)
        n_in, n_out = d_in.flatten(1).sum(1).tolist(), d_out.flatten(1).sum(1).tolist()
        for g in b.mats:
            i = g.group or 0
            report[g.name] = {"input": int(n_in[i]), "output": int(n_out[i])}
    return report


# ---- trainer callbacks --------------------------------------------------------------------------

class GroupLasso(Callback):
    """Regularize (prox or subgradient) until optimizer step ``delete_step``, then delete the
    groups under the threshold and keep them at 0 (masks re-applied after every step) while
    the remaining steps fine-tune. ``delete_step`` None: delete when training ends."""

    name = "group_lasso"

    def __init__(self, config: GroupLassoConfig, rows: int, lcols: int,
                 delete_step: int | None = None, input_shape: tuple[int, ...] | None = None):
        self.config, self.rows, self.lcols, self.delete_step = config, rows, lcols, delete_step
        self.input_shape = input_shape
        """With it, deletion also removes the wires left dead across matrices
        (group_scissor.dead.delete_dead_signals)."""
        self.mats: list[GroupedMatrix] = []
        self.batches: list[_Batch] = []  # the prox/penalty calls: a grouped conv's in one
        self.deleted: dict | None = None  # {"step": s, "groups": {matrix: {...}}} once deleted
        self._masked = False

    def on_train_begin(self, trainer) -> None:
        self.mats = grouped_matrices(trainer.module, self.rows, self.lcols, self.config)
        self.batches = _batches(self.mats)
        self._masked = bool(masked_layers(trainer.module))
        if self.deleted is None and self.delete_step is not None and trainer.step >= self.delete_step:
            self._delete(trainer)  # e.g. no regularized steps at all

    def penalty(self, trainer):
        if self.config.method != "subgradient" or self.deleted is not None:
            return None
        terms = [b.penalty() for b in self.batches if b.active]
        return torch.stack(terms).sum() if terms else None

    def after_step(self, trainer) -> None:
        if self.deleted is None:
            if self.config.method == "prox":
                lr = trainer.optimizer.param_groups[0]["lr"]
                for b in self.batches:
                    if b.active:
                        b.groups.prox_(b.stack, b.step(lr))
            if self.delete_step is not None and trainer.step >= self.delete_step:
                self._delete(trainer)
        if self._masked:
            apply_masks(trainer.module)

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        metrics["group_lasso"] = {**group_stats(self.mats),
                                  "deleted": self.deleted is not None}

    def on_train_end(self, trainer) -> None:
        if self.deleted is None:
            self._delete(trainer)

    def _delete(self, trainer) -> None:
        groups = delete_groups(self.mats, self.config.threshold, self.config.threshold_mode)
        self.deleted = {"step": trainer.step, "groups": groups}
        if self.input_shape is not None:
            from group_scissor.dead import delete_dead_signals

            self.deleted["dead_signals"] = delete_dead_signals(trainer.module, self.input_shape)
        if self.config.rebalance:
            self.deleted["rebalanced_from"] = balance(trainer.module, trainer.optimizer)
        self._masked = True

    def state_dict(self) -> dict:
        return {"deleted": self.deleted}

    def load_state_dict(self, state: dict) -> None:
        self.deleted = state.get("deleted")


class KeepMasks(Callback):
    """Fine-tuning with fixed masks: re-zero the masked weights after every optimizer step."""

    name = "keep_masks"

    def after_step(self, trainer) -> None:
        apply_masks(trainer.module)
