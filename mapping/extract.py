"""PyTorch model -> weight matrices and where their rows come from (hardware-model.md 1 and 3).

    >>> layers = extract(model, input_shape=(1, 28, 28))
    >>> [(m.name, m.weights.shape, m.inputs) for l in layers for m in l.matrices]
    [('conv1', (25, 20), (None,)), ('conv2', (500, 50), ('conv1',)), ...]

Weighted layers are ``Linear`` and ``Conv2d``; a grouped conv (``groups=g``, depthwise when
g = C) is g matrices ``"<layer>.g<i>"`` of (C/g*kh*kw) x (F/g); a module with attributes ``U`` and
``V`` (both Linear, or both Conv2d with V 1x1) is one low-rank layer of two matrices
``"<layer>.U"`` (N x K) and ``"<layer>.V"`` (K x M). ``find_layers`` is the static scan (which
modules are layers, which cannot be mapped); the dataflow (which output column computes each
row signal) comes from ``mapping.capture``, a torch.fx trace of the whole graph.
"""

from dataclasses import dataclass

import numpy as np
from torch import nn

from common.errors import UserError

# Modules allowed to hold parameters without being mapped: they live in the periphery.
PERIPHERY = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.PReLU)
UNMAPPABLE = (nn.Conv1d, nn.Conv3d, nn.modules.conv._ConvTransposeNd, nn.MultiheadAttention,
              nn.RNNBase, nn.RNNCellBase, nn.Embedding, nn.EmbeddingBag, nn.Bilinear,
              nn.Transformer, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
              nn.TransformerEncoder, nn.TransformerDecoder)


class UnmappableLayerError(UserError, TypeError):
    """A layer the crossbar mapper cannot place (its path and type are in the message)."""


class DataflowError(UserError, ValueError):
    """A dataflow the crossbar mapper cannot wire exactly (the message names where)."""


@dataclass(eq=False)
class Matrix:
    """One crossbar matrix and where its row signals come from."""

    name: str
    """Unit-name prefix: the module path ('conv1', 'fc1.U', 'dw.g3'); 'linear'/'conv2d' for a
    bare layer."""
    path: str
    """Module path inside the model ('' when the model itself is the layer)."""
    module: nn.Module | None
    weights: np.ndarray | None
    """(N, M) rows = inputs, cols = outputs (a copy; a batch norm that follows is folded in)."""
    inputs: tuple[str | None, ...] = (None,)
    """The matrices whose output columns feed the rows, in order of first row; None = the
    network input IN. One entry for a chain; several after a concatenation."""
    row_input: np.ndarray | None = None
    """(N,) int: index into ``inputs`` of the producer of each row signal."""
    row_source: np.ndarray | None = None
    """(N,) int: output column of that producer that computes each row signal (0 for IN)."""
    group: int | None = None
    """Group index i of a grouped conv's matrix (its filters i*F/g.. and channels i*C/g..)."""
    evaluations: int = 1
    """Evaluations per inference (hardware-model section 7): 1 for a linear layer on a vector,
    H_out x W_out for a conv (one per output pixel), from the dry run's output shape."""

    @property
    def producer(self) -> str | None:
        """The one producer of every row (None = IN); DataflowError when there are several."""
        if len(self.inputs) != 1:
            raise DataflowError(f"matrix {self.name!r} has several producers {list(self.inputs)}; "
                                "use .inputs and .row_input")
        return self.inputs[0]


@dataclass
class Layer:
    """A weighted layer of the model: one dense matrix, a low-rank pair (U, V), or the g
    matrices of a grouped conv."""

    name: str
    kind: str
    """'linear' or 'conv'."""
    shape: tuple[int, int]
    """(N, M) of the dense layer (a low-rank pair: U's rows x V's columns; a grouped conv:
    the rows of one group x all F filters, so N*M counts the layer's weights)."""
    rank: int | None
    matrices: list[Matrix]
    groups: int = 1


def matrix_of(module: nn.Module, group: int | None = None) -> np.ndarray:
    """Linear -> weight.T (in x out); Conv2d -> weight.reshape(F, -1).T ((C*kh*kw) x F); group
    i of a grouped conv: the filters of that group, (C/g*kh*kw) x (F/g).

    A copy (a snapshot of the weights), returned as a transposed, F-ordered view."""
    w = module.weight.detach().cpu().numpy()
    if group is not None:
        fg = w.shape[0] // module.groups
        w = w[group * fg:(group + 1) * fg]
    return w.reshape(w.shape[0], -1).copy().T


def find_layers(model: nn.Module) -> list[Layer]:
    """Weighted layers in registration order; raises UnmappableLayerError for others."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers, claimed = [], set()
    for path, mod in model.named_modules():
        if path in claimed:
            continue
        u, v = getattr(mod, "U", None), getattr(mod, "V", None)
        if _is_pair(u, v):
            layers.append(_low_rank(path, mod, u, v))
            claimed.update({f"{path}.U" if path else "U", f"{path}.V" if path else "V"})
        elif isinstance(mod, (nn.Linear, nn.Conv2d)):
            _check_weighted(path, mod)
            name = path or type(mod).__name__.lower()
            kind = "linear" if isinstance(mod, nn.Linear) else "conv"
            g = getattr(mod, "groups", 1)
            if g == 1:
                w = matrix_of(mod)
                layers.append(Layer(name, kind, w.shape, None, [Matrix(name, path, mod, w)]))
            else:
                mats = [Matrix(f"{name}.g{i}", path, mod, matrix_of(mod, i), group=i)
                        for i in range(g)]
                shape = (mats[0].weights.shape[0], mod.out_channels)
                layers.append(Layer(name, kind, shape, None, mats, g))
        else:
            _check_other(path, mod)
    if not layers:
        raise UnmappableLayerError("the model has no Linear or Conv2d layer to map onto crossbars")
    return layers


def _is_pair(u, v) -> bool:
    return (isinstance(u, nn.Linear) and isinstance(v, nn.Linear)) or (
        isinstance(u, nn.Conv2d) and isinstance(v, nn.Conv2d))


def _low_rank(path: str, mod: nn.Module, u: nn.Module, v: nn.Module) -> Layer:
    name = path or "<root>"
    up, vp = (f"{path}.U", f"{path}.V") if path else ("U", "V")
    _check_weighted(up, u)
    _check_weighted(vp, v)
    if isinstance(u, nn.Conv2d) and (u.groups != 1 or v.groups != 1):
        raise UnmappableLayerError(f"low-rank layer {name!r}: U and V must be convs with groups=1")
    wu, wv = matrix_of(u), matrix_of(v)
    if isinstance(v, nn.Conv2d) and tuple(v.kernel_size) != (1, 1):
        raise UnmappableLayerError(f"low-rank layer {name!r}: V must be a 1x1 Conv2d, "
                                   f"got kernel {tuple(v.kernel_size)}")
    if wu.shape[1] != wv.shape[0]:
        raise UnmappableLayerError(f"low-rank layer {name!r}: U has {wu.shape[1]} outputs but V "
                                   f"has {wv.shape[0]} inputs; they must agree (the rank K)")
    kind = "linear" if isinstance(u, nn.Linear) else "conv"
    return Layer(path or "lowrank", kind, (wu.shape[0], wv.shape[1]), wu.shape[1],
                 [Matrix(up, up, u, wu), Matrix(vp, vp, v, wv)])


def _check_weighted(path: str, mod: nn.Module) -> None:
    if isinstance(mod.weight, nn.parameter.UninitializedParameter):
        raise UnmappableLayerError(f"layer {path!r} ({type(mod).__name__}) is not initialized; "
                                   "run one forward pass before mapping")
    if isinstance(mod, nn.Conv2d) and mod.padding_mode not in ("zeros", "reflect", "replicate",
                                                                "circular"):
        raise UnmappableLayerError(f"layer {path!r} (Conv2d) has padding_mode "
                                   f"{mod.padding_mode!r}, which the mapper does not know")


def _check_other(path: str, mod: nn.Module) -> None:
    name = path or "<root>"
    if isinstance(mod, UNMAPPABLE):
        raise UnmappableLayerError(
            f"layer {name!r} ({type(mod).__name__}) cannot be mapped onto crossbars; only "
            "Linear and Conv2d layers (grouped convs as one matrix per group, low-rank U/V "
            "pairs as two) are supported")
    own = [n for n, _ in mod.named_parameters(recurse=False)]
    if own and not isinstance(mod, PERIPHERY):
        raise UnmappableLayerError(
            f"module {name!r} ({type(mod).__name__}) holds parameters {own} outside any Linear "
            "or Conv2d layer; the mapper cannot place them on crossbars")


def extract(model: nn.Module, input_shape: tuple[int, ...]) -> list[Layer]:
    """Weighted layers in execution order, each matrix with its producers and row sources
    (``mapping.capture.capture(model, input_shape).layers``)."""
    from mapping.capture import capture

    return capture(model, input_shape).layers
