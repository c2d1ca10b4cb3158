"""Low-rank layers: a weighted layer W (N x M) replaced by U (N x K) followed by V (K x M).

Both factors are ordinary modules (hardware-model.md section 1), so the mapper, the group Lasso
and the exporters see plain layers named ``<layer>.U`` and ``<layer>.V``:
  LowRankLinear:  U = Linear(N, K, bias=False), V = Linear(K, M) with the bias.
  LowRankConv2d:  U = Conv2d(C, K, kh x kw, stride, padding, dilation, bias=False),
                  V = Conv2d(K, F, 1x1) with the bias.
Matrix views (rows = inputs): ``u_matrix`` (N x K) = U.weight.reshape(K, -1).T,
``v_matrix`` (K x M) = V.weight.reshape(M, K).T, and W ~ u_matrix @ v_matrix.
"""

import torch
from torch import nn

from common.errors import ConfigError


def layer_matrix(layer: nn.Module, group: int | None = None) -> torch.Tensor:
    """The (rows=inputs, cols=outputs) matrix of a Linear or Conv2d: weight.reshape(out, -1).T;
    with ``group`` i, that of group i of a grouped conv (groups = g), the filters
    weight[i*F/g:(i+1)*F/g], (C/g*kh*kw) x (F/g) as mapping.extract.matrix_of. A view of the
    weight when it is contiguous."""
    w = layer.weight
    if group is not None:
        fg = w.shape[0] // layer.groups
        w = w[group * fg:(group + 1) * fg]
    return w.reshape(w.shape[0], -1).T


class _LowRank(nn.Module):
    U: nn.Module
    V: nn.Module

    @property
    def rank(self) -> int:
        return self.U.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.V(self.U(x))

    def u_matrix(self) -> torch.Tensor:
        return layer_matrix(self.U)  # (N, K)

    def v_matrix(self) -> torch.Tensor:
        return layer_matrix(self.V)  # (K, M)

    def product(self) -> torch.Tensor:
        """U @ V, the dense (N x M) matrix this pair computes."""
        return self.u_matrix() @ self.v_matrix()

    def set_factors(self, u: torch.Tensor, v: torch.Tensor) -> None:
        """Replace the factors by matrices u (N x K') and v (K' x M); the rank becomes K'."""
        k = u.shape[1]
        self.U = self._make_u(k).to(u.dtype)
        self.V = self._make_v(k, self.V.bias).to(u.dtype)
        with torch.no_grad():
            self.U.weight.copy_(u.T.reshape(self.U.weight.shape))
            self.V.weight.copy_(v.T.reshape(self.V.weight.shape))


class LowRankLinear(_LowRank):
    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.U = nn.Linear(in_features, rank, bias=False)
        self.V = nn.Linear(rank, out_features, bias=bias)

    def _make_u(self, k: int) -> nn.Module:
        return nn.Linear(self.in_features, k, bias=False)

    def _make_v(self, k: int, bias) -> nn.Module:
        v = nn.Linear(k, self.out_features, bias=bias is not None)
        if bias is not None:
            v.bias = bias
        return v


class LowRankConv2d(_LowRank):
    def __init__(self, conv: nn.Conv2d, rank: int):
        super().__init__()
        if conv.groups != 1:
            raise ConfigError(f"low-rank conv needs groups=1, got groups={conv.groups}")
        self.spec = dict(in_channels=conv.in_channels, kernel_size=conv.kernel_size,
                         stride=conv.stride, padding=conv.padding, dilation=conv.dilation,
                         padding_mode=conv.padding_mode)
        self.out_channels = conv.out_channels
        self.U = self._make_u(rank)
        self.V = nn.Conv2d(rank, conv.out_channels, 1, bias=conv.bias is not None)

    def _make_u(self, k: int) -> nn.Module:
        return nn.Conv2d(out_channels=k, bias=False, **self.spec)

    def _make_v(self, k: int, bias) -> nn.Module:
        v = nn.Conv2d(k, self.out_channels, 1, bias=bias is not None)
        if bias is not None:
            v.bias = bias
        return v


def factorize(w: torch.Tensor, rank: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SVD factors of w (N x M): u = U_k sqrt(S_k) (N x k), v = sqrt(S_k) V_k^T (k x M)."""
    uu, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    k = len(s) if rank is None else min(rank, len(s))
    root = s[:k].sqrt()
    return (uu[:, :k] * root).to(w.dtype), (root[:, None] * vh[:k]).to(w.dtype)


def low_rank_from(layer: nn.Module, rank: int | None = None) -> _LowRank:
    """A low-rank pair that computes ``layer`` (exactly when rank is full: min(N, M))."""
    w = layer_matrix(layer)
    full = min(w.shape)
    rank = full if rank is None else rank
    if not 1 <= rank <= full:
        raise ConfigError(f"rank must be in [1, {full}] for a {tuple(w.shape)} matrix, got {rank}")
    if isinstance(layer, nn.Linear):
        pair: _LowRank = LowRankLinear(layer.in_features, layer.out_features, rank,
                                       bias=layer.bias is not None)
    elif isinstance(layer, nn.Conv2d):
        pair = LowRankConv2d(layer, rank)
    else:
        raise TypeError(f"only Linear and Conv2d layers can be made low-rank, got "
                        f"{type(layer).__name__}")
    pair = pair.to(layer.weight.dtype)
    u, v = factorize(w, rank)
    with torch.no_grad():
        pair.U.weight.copy_(u.T.reshape(pair.U.weight.shape))
        pair.V.weight.copy_(v.T.reshape(pair.V.weight.shape))
        if layer.bias is not None:
            pair.V.bias.copy_(layer.bias)
    return pair


def merge_pair(pair: _LowRank) -> nn.Module:
    """The dense layer computing U @ V (inverse of ``low_rank_from``)."""
    w = pair.product()  # (N, M)
    if isinstance(pair, LowRankLinear):
        layer: nn.Module = nn.Linear(pair.in_features, pair.out_features,
                                     bias=pair.V.bias is not None)
    else:
        layer = nn.Conv2d(out_channels=pair.out_channels, bias=pair.V.bias is not None,
                          **pair.spec)
    layer = layer.to(w.dtype)
    with torch.no_grad():
        layer.weight.copy_(w.T.reshape(layer.weight.shape))
        if pair.V.bias is not None:
            layer.bias.copy_(pair.V.bias)
    return layer


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def to_low_rank(model: nn.Module, layers=None, rank: int | dict[str, int] | None = None) -> nn.Module:
    """Replace ``layers`` (names; default: every Linear/Conv2d) by low-rank pairs, in place.

    ``rank``: None (full rank: the network computes the same), one int for all, or per layer.
    Returns the model.
    """
    names = list(layers) if layers is not None else [
        n for n, m in model.named_modules() if type(m) in (nn.Linear, nn.Conv2d)]
    modules = dict(model.named_modules())
    for name in names:
        if name not in modules:
            weighted = [n for n, m in modules.items() if type(m) in (nn.Linear, nn.Conv2d)]
            raise ConfigError(f"no layer named {name!r} in the model; its weighted layers are: "
                             f"{', '.join(weighted)}")
        r = rank.get(name) if isinstance(rank, dict) else rank
        _set(model, name, low_rank_from(modules[name], r))
    return model


def merge(model: nn.Module, names=None) -> nn.Module:
    """Replace the low-rank pairs ``names`` (default: all) by their dense products, in place.
    Returns the model."""
    for name, m in list(model.named_modules()):
        if isinstance(m, _LowRank) and (names is None or name in names):
            _set(model, name, merge_pair(m))
    return model


def low_rank_layers(model: nn.Module) -> dict[str, _LowRank]:
    return {n: m for n, m in model.named_modules() if isinstance(m, _LowRank)}


def ranks(model: nn.Module) -> dict[str, int]:
    return {n: m.rank for n, m in low_rank_layers(model).items()}


@torch.no_grad()
def balance_pair(pair: _LowRank, optimizer=None) -> torch.Tensor:
    """Rescale each rank component k so that ||U[:, k]|| = ||V[k, :]||: U' = U S, V' = S^-1 V with
    S = diag(s), s_k = sqrt(||V[k, :]|| / ||U[:, k]||). The product, hence the outputs, is
    unchanged and zeros stay zero (masks hold). Why: a penalty on one factor (group Lasso on U)
    shrinks it while the other grows to compensate; SGD then takes steps far larger relative to
    the small factor, and a learning-rate restart blows the net up. Momentum buffers of
    ``optimizer`` move with the weights (U's velocity / s, V's * s). Returns s, shape (K,)."""
    nu, nv = pair.u_matrix().norm(dim=0), pair.v_matrix().norm(dim=1)  # (K,), (K,)
    s = torch.where((nu > 0) & (nv > 0), (nv / nu.clamp_min(1e-30)).sqrt(), torch.ones_like(nu))
    u_w, v_w = pair.U.weight, pair.V.weight  # (K, ...) and (M, K, ...)
    s_u, s_v = s.view(-1, *[1] * (u_w.dim() - 1)), s.view(1, -1, *[1] * (v_w.dim() - 2))
    u_w.mul_(s_u)
    v_w.div_(s_v)
    if optimizer is not None:
        for w, scale in ((u_w, 1 / s_u), (v_w, s_v)):
            buf = optimizer.state.get(w, {}).get("momentum_buffer")
            if buf is not None:
                buf.mul_(scale)
    return s


def balance(model: nn.Module, optimizer=None) -> dict[str, float]:
    """``balance_pair`` on every low-rank pair; returns, per pair, the largest imbalance it had:
    max over k of the larger of ||V_k|| / ||U_k|| and its inverse (1.0: already balanced)."""
    out = {}
    for name, pair in low_rank_layers(model).items():
        s = balance_pair(pair, optimizer)
        out[name] = float(torch.maximum(s, 1 / s).max() ** 2)
    return out
