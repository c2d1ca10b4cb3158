"""PyTorch model -> weight matrices + dataflow (hardware-model.md sections 1 and 3).

    >>> layers = extract(model, input_shape=(1, 28, 28))
    >>> [(m.name, m.weights.shape, m.producer) for l in layers for m in l.matrices]
    [('conv1', (25, 20), None), ('conv2', (500, 50), 'conv1'), ...]

Weighted layers are ``Linear`` and ``Conv2d`` (groups=1); a module with attributes ``U`` and
``V`` (both Linear, or both Conv2d with V 1x1) is one low-rank layer of two matrices
``"<layer>.U"`` (N x K) and ``"<layer>.V"`` (K x M). A dry run on a zero input records, with
forward hooks, which matrix produces each matrix's input (walking the autograd graph between
them), so a network that is not a chain fails loudly instead of being mapped wrongly.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from common.errors import ConfigError, UserError

# Modules allowed to hold parameters without being mapped: they live in the periphery.
PERIPHERY = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.PReLU)
UNMAPPABLE = (nn.Conv1d, nn.Conv3d, nn.modules.conv._ConvTransposeNd, nn.MultiheadAttention,
              nn.RNNBase, nn.RNNCellBase, nn.Embedding, nn.EmbeddingBag, nn.Bilinear)


class UnmappableLayerError(UserError, TypeError):
    """A layer the crossbar mapper cannot place (its path and type are in the message)."""


class DataflowError(UserError, ValueError):
    """The model is not a chain of weighted layers the mapper can resolve."""


@dataclass
class Matrix:
    """One crossbar matrix and where its row signals come from."""

    name: str
    """Unit-name prefix: the module path ('conv1', 'fc1.U'); 'linear'/'conv2d' for a bare layer."""
    path: str
    """Module path inside the model ('' when the model itself is the layer)."""
    module: nn.Module
    weights: np.ndarray
    """(N, M) rows = inputs, cols = outputs (a copy of the module's weights)."""
    producer: str | None = None
    """Matrix whose outputs feed the rows; None = the network input IN."""
    row_source: np.ndarray | None = None
    """(N,) int: output column of ``producer`` that computes each row signal (0 for IN)."""
    evaluations: int = 1
    """Evaluations per inference (hardware-model section 7): 1 for a linear layer on a vector,
    H_out x W_out for a conv (one per output pixel), from the dry run's output shape."""


@dataclass
class Layer:
    """A weighted layer of the model: one dense matrix or a low-rank pair (U, V)."""

    name: str
    kind: str
    """'linear' or 'conv'."""
    shape: tuple[int, int]
    """(N, M) of the dense layer (for a low-rank pair: U's rows x V's columns)."""
    rank: int | None
    matrices: list[Matrix]


def matrix_of(module: nn.Module) -> np.ndarray:
    """Linear -> weight.T (in x out); Conv2d -> weight.reshape(F, -1).T ((C*kh*kw) x F).

    A copy (a snapshot of the weights), returned as a transposed, F-ordered view."""
    w = module.weight.detach().cpu().numpy()
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
            w, name = matrix_of(mod), path or type(mod).__name__.lower()
            kind = "linear" if isinstance(mod, nn.Linear) else "conv"
            layers.append(Layer(name, kind, w.shape, None, [Matrix(name, path, mod, w)]))
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
    if isinstance(mod, nn.Conv2d) and mod.groups != 1:
        raise UnmappableLayerError(
            f"layer {path!r} (Conv2d, groups={mod.groups}) cannot be mapped: grouped/depthwise "
            "convolutions are not supported; use groups=1")


def _check_other(path: str, mod: nn.Module) -> None:
    name = path or "<root>"
    if isinstance(mod, UNMAPPABLE):
        raise UnmappableLayerError(
            f"layer {name!r} ({type(mod).__name__}) cannot be mapped onto crossbars; only "
            "Linear and Conv2d (groups=1) layers, optionally as low-rank U/V pairs, are supported")
    own = [n for n, _ in mod.named_parameters(recurse=False)]
    if own and not isinstance(mod, PERIPHERY):
        raise UnmappableLayerError(
            f"module {name!r} ({type(mod).__name__}) holds parameters {own} outside any Linear "
            "or Conv2d layer; the mapper cannot place them on crossbars")


def extract(model: nn.Module, input_shape: tuple[int, ...]) -> list[Layer]:
    """Weighted layers in execution order, each matrix with its producer and row sources."""
    shape = _check_shape(input_shape)
    layers = find_layers(model)
    mats = {m.name: m for layer in layers for m in layer.matrices}
    rec = _trace(model, mats, shape)
    unused = [lay.name for lay in layers if any(m.name not in rec for m in lay.matrices)]
    if unused:
        warnings.warn(f"layers {unused} are not used in forward() on input {shape}; "
                      "they are left out of the mapping", stacklevel=2)
    layers = [lay for lay in layers if lay.name not in unused]
    layers.sort(key=lambda lay: min(rec[m.name]["order"] for m in lay.matrices))
    for layer in layers:
        layer.matrices.sort(key=lambda m: rec[m.name]["order"])
        for m in layer.matrices:
            _resolve(m, rec, mats)
            m.evaluations = _evaluations(m.module, rec[m.name]["out"])
    return layers


def _evaluations(module: nn.Module, out: tuple[int, ...]) -> int:
    """Output vectors one sample makes: a conv's H_out x W_out pixels, a linear layer's
    positions other than its feature axis (1 for a plain vector)."""
    lead = out[1:] if isinstance(module, nn.Conv2d) else out[:-1]
    return int(np.prod(lead, dtype=np.int64)) if lead else 1


def _check_shape(input_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise TypeError(f"input_shape must be a tuple of ints (one sample, no batch), "
                        f"got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"input_shape must be non-empty positive sizes without the batch "
                         f"dimension, e.g. (1, 28, 28); got {input_shape!r}")
    return shape


def _trace(model: nn.Module, mats: dict[str, Matrix], shape: tuple[int, ...]) -> dict[str, dict]:
    """Dry run: per matrix its call order, input/output shapes and autograd producers."""
    p = next(model.parameters())
    x = torch.zeros((1, *shape), dtype=p.dtype, device=p.device, requires_grad=True)
    rec: dict[str, dict] = {}
    out_fns: dict[int, str] = {}

    def hook(name):
        def fn(module, args, out):
            if name in rec:
                raise DataflowError(f"layer {name!r} is called more than once in forward(); "
                                    "weight sharing cannot be mapped onto crossbars")
            inp = args[0]
            rec[name] = {"order": len(rec), "in": tuple(inp.shape[1:]), "out": tuple(out.shape[1:]),
                         "in_fn": inp.grad_fn, "is_x": inp is x, "out_fn": out.grad_fn}
            out_fns[id(out.grad_fn)] = name
        return fn

    handles = [m.module.register_forward_hook(hook(n)) for n, m in mats.items()]
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad():
            model(x)
    except DataflowError:
        raise
    except Exception as e:
        raise DataflowError(f"dry run of the model on a zero input of shape {(1, *shape)} failed "
                            f"({type(e).__name__}: {e}); check input_shape") from e
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for r in rec.values():
        r["producers"] = {"IN"} if r["is_x"] else _producers(r["in_fn"], out_fns, x)
    return rec


def _producers(fn, out_fns: dict[int, str], x: torch.Tensor) -> set[str]:
    """Matrices (or 'IN') whose outputs reach autograd node ``fn`` without passing another."""
    found, seen, stack = set(), set(), [fn] if fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if id(node) in out_fns:
            found.add(out_fns[id(node)])
            continue
        var = getattr(node, "variable", None)
        if var is not None:  # AccumulateGrad: a leaf; parameters are not signals
            if var is x:
                found.add("IN")
            continue
        stack.extend(nxt for nxt, _ in node.next_functions if nxt is not None)
    return found


def _resolve(m: Matrix, rec: dict[str, dict], mats: dict[str, Matrix]) -> None:
    """Set m.producer and m.row_source (hardware-model section 3)."""
    r, n = rec[m.name], m.weights.shape[0]
    prods = r["producers"]
    if len(prods) != 1:
        what = "does not depend on the network input" if not prods else f"mixes {sorted(prods)}"
        raise DataflowError(f"the input of layer {m.name!r} {what}; only chains of weighted "
                            "layers (each fed by exactly one producer) can be mapped")
    (p,) = prods
    if p == "IN":
        m.producer, m.row_source = None, np.zeros(n, dtype=np.int64)
        return
    pm, is_conv = mats[p].weights.shape[1], isinstance(m.module, nn.Conv2d)
    p_conv = isinstance(mats[p].module, nn.Conv2d)
    feats = r["in"][0] if is_conv else r["in"][-1]  # channels C, or features N
    per_row = n // feats if is_conv else 1  # kh*kw rows per input channel
    if feats == pm:  # channel/feature c <- producer column c
        chan = np.arange(feats)
    elif not is_conv and p_conv and len(r["in"]) == 1 and feats % pm == 0:
        chan = np.arange(feats) // (feats // pm)  # through Flatten: r <- r // (H*W)
    else:
        raise DataflowError(
            f"cannot resolve the dataflow {p!r} -> {m.name!r}: {p!r} computes {pm} output "
            f"channels/features (output shape {rec[p]['out']}) but {m.name!r} takes input of shape "
            f"{r['in']}; only chain networks (Flatten, pooling, element-wise ops between "
            "weighted layers) are supported")
    m.producer, m.row_source = p, np.repeat(chan, per_row)
