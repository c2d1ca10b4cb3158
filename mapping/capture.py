"""Capture a model's dataflow with torch.fx: matrices, periphery operations, row sources.

    >>> cap = capture(model, input_shape=(3, 32, 32))
    >>> cap.layers          # weighted layers in execution order; each Matrix knows its row sources
    >>> cap.ops             # one WeightedOp per call of a Linear / Conv2d (one matrix, or one per group)
    >>> cap.operands        # extra buses between output units (a residual add's other operand)

How (hardware-model.md sections 1 and 3):

1. The model is traced with ``torch.fx`` (Linear, Conv2d, the periphery modules and the layers
   the mapper refuses are leaves). A trace that fails (Python control flow on tensor values)
   names the module being traced.
2. The graph then runs once on a batch of two zero samples. Beside every tensor runs its
   *provenance*: a float64 tensor of the same shape holding, per element, the id of the computed
   element it is a copy of (0 = a zero constant, e.g. padding). Computed values are the network
   input, every weighted op's output and every periphery op's output. Data movement (view,
   flatten, permute, cat, getitem, pad, channel shuffle, ...) is replayed on the provenance
   tensor itself, so no reshape can lose track of an element.
3. Every computed element has an *owner*: the global output column that computes it (column 0 is
   the input unit IN; then each weighted op's F columns in execution order). The owner of a
   matrix output is its column; an element-wise op's result is owned by the *latest* owner
   among its operands (a residual add is done in the output unit of its last weighted operand,
   which receives the other operand as an extra bus: ``operands``); pooling keeps its channel's
   owner (one channel, one output unit); a reduction (softmax, mean over channels, layer norm)
   is owned by the latest owner it reads, which receives the others as extra buses.
4. A weighted op's input row must read one owner (one producer column): for a conv, every
   element of channel c; for a linear, feature i at every evaluation. That owner is the row's
   source. A row that would read several producer columns (a view that moves features into
   the spatial axes, a Linear along a spatial axis) raises DataflowError naming the layer.

A batch norm right after a conv or linear (its only user, eval-mode running statistics) is
folded into the weights and bias (``WeightedOp.scale``, ``.bias``; the matrices' weights);
other batch norms are periphery operations. Weight sharing, layers applied to constants,
parameters of a weighted layer used outside it, and operations with no crossbar mapping raise
before anything is returned.
"""

import copy
import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.node import map_aggregate, map_arg

from common.errors import ConfigError, UserError
from mapping.extract import (
    PERIPHERY,
    UNMAPPABLE,
    DataflowError,
    Layer,
    Matrix,
    UnmappableLayerError,
    find_layers,
)

BATCH = 2
"""Samples in the dry run (two, so that an op mixing the samples of a batch shows)."""

# ---- what each operation does to the dataflow ----------------------------------------------------

WIRING = {"view", "reshape", "flatten", "unflatten", "permute", "transpose", "swapaxes", "swapdims",
          "movedim", "moveaxis", "squeeze", "unsqueeze", "cat", "concat", "concatenate", "stack",
          "hstack", "vstack", "chunk", "split", "tensor_split", "unbind", "narrow", "select", "flip",
          "fliplr", "flipud", "roll", "expand", "expand_as", "broadcast_to", "repeat", "tile",
          "view_as", "reshape_as", "t", "getitem", "channel_shuffle", "native_channel_shuffle",
          "pixel_shuffle", "pixel_unshuffle", "pad", "contiguous", "clone", "detach",
          "index_select", "repeat_interleave"}
"""Pure data movement: replayed on the provenance (no output unit computes anything)."""
DATA_LISTS = {"cat", "concat", "concatenate", "stack", "hstack", "vstack"}
SHAPE_ONLY_ARG = {"expand_as", "view_as", "reshape_as"}
IDENTITY = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
            "feature_alpha_dropout", "float", "double", "half", "to", "type_as", "type", "cpu",
            "requires_grad_"}
ELEMENTWISE = {
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "gelu", "silu", "silu_", "sigmoid",
    "sigmoid_", "tanh", "tanh_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_",
    "hardtanh", "hardtanh_", "elu", "elu_", "selu", "celu", "softplus", "mish", "logsigmoid",
    "softsign", "tanhshrink", "threshold", "hardshrink", "softshrink", "abs", "neg", "exp", "log",
    "log1p", "expm1", "sqrt", "rsqrt", "square", "clamp", "clamp_", "clip", "clamp_min",
    "clamp_max", "sign", "reciprocal", "erf", "pos", "batch_norm", "prelu", "add", "add_",
    "iadd", "sub", "sub_", "isub", "rsub", "mul", "mul_", "imul", "truediv", "div", "div_",
    "itruediv", "true_divide", "pow", "maximum", "minimum", "where", "addcmul", "lerp",
    "gt", "lt", "ge", "le", "eq", "ne", "logical_and", "logical_or", "logical_not", "masked_fill",
}
"""Element-wise (with broadcasting): done in the output unit of the latest operand."""
CHANNEL_LOCAL = {"max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
                 "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "lp_pool1d",
                 "lp_pool2d", "interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
                 "instance_norm"}
"""Spatial operations within one channel (N, C, ...): done by the unit computing the channel."""
REDUCE = {"mean", "sum", "amax", "amin", "logsumexp", "std", "var", "prod", "nansum", "nanmean"}
SAME_SHAPE_REDUCE = {"softmax", "log_softmax", "normalize", "layer_norm", "group_norm",
                     "local_response_norm"}
META = {"size", "dim", "numel", "getattr", "len", "ndimension", "nelement", "is_contiguous",
        "stride", "get_device", "is_floating_point"}
"""Questions about a tensor's shape or type: no data flows."""

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
               nn.Hardsigmoid, nn.Hardtanh, nn.ELU, nn.SELU, nn.CELU, nn.Softplus, nn.Mish,
               nn.LogSigmoid, nn.Softsign, nn.Tanhshrink, nn.Threshold, nn.Hardshrink, nn.Softshrink,
               nn.PReLU)
POOLS = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
         nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd,
         nn.modules.pooling._LPPoolNd, nn.Upsample, nn.modules.instancenorm._InstanceNorm)
WIRING_MODULES = (nn.Flatten, nn.Unflatten, nn.ChannelShuffle, nn.PixelShuffle, nn.PixelUnshuffle,
                  nn.modules.padding._ConstantPadNd, nn.modules.padding._ReflectionPadNd,
                  nn.modules.padding._ReplicationPadNd, nn.modules.padding._CircularPadNd)
IDENTITY_MODULES = (nn.Identity, nn.modules.dropout._DropoutNd)
REDUCE_MODULES = (nn.Softmax, nn.LogSoftmax, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


# ---- data structures -----------------------------------------------------------------------------

@dataclass(eq=False)
class Value:
    """A computed value (network input, weighted op output, periphery op output), one sample."""

    node: str
    """fx node that computes it."""
    shape: tuple[int, ...]
    owner: np.ndarray | None
    """(numel,) int32: global column computing each element (-1: a constant); None once no
    weighted op reads the value (dropped after the capture)."""
    base: int
    """First provenance id of the value (ids base .. base + BATCH*numel - 1)."""

    @functools.cached_property
    def _sorted(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.owner, kind="stable").astype(np.int32)
        return order, self.owner[order]

    @functools.cached_property
    def _rank(self) -> np.ndarray:
        order, srt = self._sorted
        rank = np.empty(len(order), dtype=np.int32)
        rank[order] = np.arange(len(order)) - np.searchsorted(srt, srt, side="left")
        return rank

    def rank(self, elem: np.ndarray) -> np.ndarray:
        """Position of each element among the elements of its owner, in flat order: where it
        sits in that output column's stream (the unit's output memory)."""
        return self._rank[elem]

    def locate(self, col: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Flat element of the value held by column ``col`` at stream position ``pos``; raises
        when that column's stream holds no such position (a wrong row source)."""
        order, srt = self._sorted
        lo, hi = np.searchsorted(srt, col, side="left"), np.searchsorted(srt, col, side="right")
        idx = lo + pos
        if np.any(idx >= hi):
            raise DataflowError(f"a row source names column(s) {np.unique(col[idx >= hi])[:5]} "
                                f"that do not hold the value of node {self.node!r}")
        return order[idx]


@dataclass(eq=False)
class Gather:
    """Where each element of a weighted op's input (one sample, flat) is read from: value
    ``value`` (an index into Capture.values; -1 = a zero constant), at position ``pos`` of the
    stream of the column that owns the element. Which column that is comes from the matrix's
    row sources, not from here: the simulator reads what the wires say."""

    shape: tuple[int, ...]
    value: np.ndarray
    pos: np.ndarray


@dataclass(eq=False)
class WeightedOp:
    """One call of a weighted layer: one matrix, or one per group of a grouped conv."""

    node: str
    layer: str
    path: str
    module: nn.Module
    kind: str
    """'linear' or 'conv'."""
    matrices: list[str]
    n_out: int
    """Outputs (M of a Linear, F of a Conv2d, all groups)."""
    scale: np.ndarray | None
    """float64 (M,): the folded batch norm's per-output scale of the weights (None: none
    folded). The weights themselves are the matrices' snapshot (Matrix.weights), not copied."""
    bias: np.ndarray | None
    """float64 (M,), with a folded batch norm; added in the output units."""
    dtype: torch.dtype
    col0: int
    """Global column of output 0 (outputs are col0 .. col0 + M - 1)."""
    gather: Gather
    row_owner: np.ndarray
    """(C,) for a conv (per input channel) or (N,) for a linear: the global column read."""
    groups: int = 1
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    """(left, right, top, bottom)."""
    padding_mode: str = "constant"
    folded: str | None = None
    """Path of the batch norm folded into this op."""


@dataclass(eq=False)
class Operands:
    """Extra buses of the periphery: signal (``tap`` value, ``src_mat``/``src_col``) is sent to
    the output unit computing column ``dst_col`` of ``dst_mat`` (indices into ``names``; -1 =
    IN), e.g. a residual add's other operand. One entry per (signal, destination column)."""

    names: list[str]
    tap: np.ndarray
    src_mat: np.ndarray
    src_col: np.ndarray
    dst_mat: np.ndarray
    dst_col: np.ndarray

    def renamed(self, rename: dict[str, str]) -> "Operands":
        names = [rename.get(n, n) for n in self.names]
        return Operands(names, self.tap, self.src_mat, self.src_col, self.dst_mat, self.dst_col)


@dataclass(eq=False)
class Capture:
    """A model's dataflow: what ``map_model`` maps and ``CrossbarSimulator`` runs."""

    layers: list[Layer]
    ops: list[WeightedOp]
    values: list[Value]
    graph: fx.Graph = field(repr=False)
    root: nn.Module = field(repr=False)
    """float64 CPU copy of the model (weighted layers' parameters left out), for the periphery."""
    folded: set[str]
    """Nodes of batch norms folded into the op before them (identity in the simulation)."""
    operands: Operands
    outputs: dict[str, np.ndarray]
    """Matrix -> its columns that compute elements of the network's output."""
    col0: dict[str, int]
    """Matrix -> global column of its column 0."""
    input_shape: tuple[int, ...]

    @property
    def op_of(self) -> dict[str, WeightedOp]:
        return {op.node: op for op in self.ops}


# ---- the trace -----------------------------------------------------------------------------------

class _Root(nn.Module):
    """The model as child 'net', so that a model that is itself a layer is a module call."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def _strip(target: str) -> str:
    """'net.fc1' -> 'fc1'; 'net' -> '' (the model itself)."""
    return target[4:] if target.startswith("net.") else ("" if target == "net" else target)


class _Tracer(fx.Tracer):
    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str]] = []
        self.failed_at: tuple[str, str] | None = None

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (nn.Linear, nn.Conv2d, *UNMAPPABLE, *PERIPHERY)):
            return True
        return super().is_leaf_module(m, qualname)

    def call_module(self, m, forward, args, kwargs):
        self.stack.append((_strip(self.path_of_module(m)) or "<root>", type(m).__name__))
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_at is None:
                self.failed_at = self.stack[-1]
            raise
        finally:
            self.stack.pop()


def _where(node: fx.Node, root: nn.Module) -> str:
    """"'path' (Type)" of the module a node belongs to."""
    if node.op == "call_module":
        return f"{_strip(node.target) or '<root>'!r} ({type(root.get_submodule(node.target)).__name__})"
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        name = cls if isinstance(cls, str) else getattr(cls, "__name__", str(cls))
        return f"{_strip(path) or '<root>'!r} ({name.rsplit('.', 1)[-1]})"
    return f"'<root>' ({type(root.net).__name__})"


def _op_name(node: fx.Node) -> str:
    if node.op == "call_method":
        return node.target
    if node.op == "call_module":
        return _strip(node.target) or "<root>"
    return getattr(node.target, "__name__", str(node.target))


def _fetch(root: nn.Module, target: str):
    obj = root
    for atom in target.split("."):
        obj = getattr(obj, atom)
    return obj


def execute(root: nn.Module, node: fx.Node, args, kwargs):
    """Run one fx node with concrete arguments (``root``: the traced wrapper or its copy)."""
    if node.op == "get_attr":
        return _fetch(root, node.target)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        return getattr(args[0], node.target)(*args[1:], **kwargs)
    if node.op == "call_module":
        return root.get_submodule(node.target)(*args, **kwargs)
    raise AssertionError(node.op)


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


def capture(model: nn.Module, input_shape: tuple[int, ...]) -> Capture:
    """Trace ``model`` and capture its dataflow (see the module docstring)."""
    shape = _check_shape(input_shape)
    layers = find_layers(model)
    root = _Root(model)
    modes = [(m, m.training) for m in model.modules()]
    tracer = _Tracer()
    try:
        model.eval()
        try:
            graph = tracer.trace(root)
        except UserError:
            raise
        except Exception as e:
            path, typ = tracer.failed_at or ("<root>", type(model).__name__)
            raise DataflowError(
                f"cannot capture the dataflow of {path!r} ({typ}) with torch.fx: "
                f"{type(e).__name__}: {e}. The mapper needs a forward() without Python control "
                "flow on tensor values (data-dependent branches and loops cannot be mapped onto "
                "a fixed chip)") from e
        p = next(model.parameters())
        x = torch.zeros((BATCH, *shape), dtype=p.dtype, device=p.device)
        run = _Pass(root, graph, layers)
        with torch.no_grad():
            run.run(x)
    finally:
        for m, mode in modes:  # as they were, submodule by submodule
            m.training = mode
    return run.finish(shape)


class _Sig:
    """Abstract value of a signal tensor: its provenance (float64 ids, same shape)."""

    __slots__ = ("prov",)

    def __init__(self, prov: torch.Tensor):
        self.prov = prov


CONST = "const"
"""Abstract value of a tensor that carries no signal (a parameter, a buffer, arange, ...)."""


def _has_sig(a) -> bool:
    if isinstance(a, _Sig):
        return True
    if isinstance(a, (tuple, list)):
        return any(_has_sig(x) for x in a)
    return False


def _is_tensorish(x) -> bool:
    if isinstance(x, torch.Tensor):
        return True
    if isinstance(x, (tuple, list)):
        return any(_is_tensorish(y) for y in x)
    return False


class _Pass:
    """The dry run with provenance (step 2 and 3 of the module docstring)."""

    def __init__(self, root: nn.Module, graph: fx.Graph, layers: list[Layer]):
        self.root, self.graph, self.layers = root, graph, layers
        self.layer_of: dict[int, tuple[Layer, list[Matrix]]] = {}
        for layer in layers:
            for m in layer.matrices:
                ent = self.layer_of.setdefault(id(m.module), (layer, []))
                ent[1].append(m)
        self.values: list[Value] = []
        self.bases: list[int] = []
        self.next_id = 1  # id 0 = a zero constant
        self.ops: list[WeightedOp] = []
        self.op_of: dict[str, WeightedOp] = {}
        self.called: dict[int, str] = {}
        self.mat_names: list[str] = []
        self.col_mat: list[np.ndarray] = [np.array([-1])]  # column 0 = IN
        self.col_idx: list[np.ndarray] = [np.array([0])]
        self.next_col = 1
        self.pairs: list[np.ndarray] = []  # (K, 3) tap value, src col, dst col
        self.folded: dict[str, str] = {}
        self.out_cols = np.zeros(0, dtype=np.int64)
        self.module_calls: dict[str, int] = {}
        self.index = {n: i for i, n in enumerate(graph.nodes)}
        for n in graph.nodes:
            if n.op == "call_module":
                self.module_calls[n.target] = self.module_calls.get(n.target, 0) + 1

    # -- values and provenance --

    def new_value(self, node: fx.Node, owner: np.ndarray) -> _Sig:
        """Register node's output as a computed value; owner: (BATCH, *shape) int64."""
        one = np.ascontiguousarray(owner[0]).reshape(-1).astype(np.int32, copy=True)
        base = self.next_id
        self.values.append(Value(node.name, tuple(owner.shape[1:]), one, base))
        self.bases.append(base)
        self.next_id += BATCH * one.size
        prov = torch.arange(base, base + BATCH * one.size, dtype=torch.float64)
        return _Sig(prov.reshape(owner.shape))

    def lookup(self, prov: torch.Tensor, node: fx.Node):
        """(value index, element, owner) per element of ``prov`` (shape kept; -1 = constant)."""
        ids = np.asarray(prov.detach().cpu().numpy(), dtype=np.float64).astype(np.int64)
        if ids.ndim == 0 or ids.shape[0] != BATCH:
            raise DataflowError(f"{_where(node, self.root)}: '{_op_name(node)}' reads a tensor whose "
                                "first dimension is no longer the batch (a view or permute that "
                                "moves the batch dimension cannot be mapped)")
        flat = ids.reshape(-1)
        bases = np.asarray(self.bases, dtype=np.int64)
        v = np.searchsorted(bases, flat, side="right") - 1
        v[flat == 0] = -1
        own = np.full(flat.shape, -1, dtype=np.int64)
        elem = np.zeros(flat.shape, dtype=np.int64)
        sample = np.zeros(flat.shape, dtype=np.int64)
        for vv in np.unique(v[v >= 0]):  # per value read (a handful), not per element
            sel = v == vv
            val = self.values[vv]
            k = flat[sel] - val.base
            sample[sel], elem[sel] = np.divmod(k, val.owner.size)
            own[sel] = val.owner[elem[sel]]
        batch = np.repeat(np.arange(BATCH), flat.size // BATCH)
        if np.any((v >= 0) & (sample != batch)):
            raise DataflowError(f"{_where(node, self.root)}: '{_op_name(node)}' mixes the samples "
                                "of a batch (a view or permute across the batch dimension); "
                                "that cannot be mapped")
        return v.reshape(ids.shape), elem.reshape(ids.shape), own.reshape(ids.shape)

    def add_pairs(self, v: np.ndarray, src: np.ndarray, dst: np.ndarray) -> None:
        """Record operand buses: element (tap v, owner src) is needed by the unit of dst."""
        v, src, dst = (np.asarray(a).reshape(-1) for a in (v, src, dst))
        sel = (src >= 0) & (dst >= 0) & (src != dst)
        if sel.any():
            self.pairs.append(np.unique(np.stack([v[sel], src[sel], dst[sel]], axis=1), axis=0))

    # -- the run --

    def run(self, x: torch.Tensor) -> None:
        nodes = list(self.graph.nodes)
        last = {}
        for i, n in enumerate(nodes):
            for a in n.all_input_nodes:
                last[a] = i
        real, ab = {}, {}
        for i, node in enumerate(nodes):
            args = map_arg(node.args, lambda n: real[n])
            kwargs = map_arg(node.kwargs, lambda n: real[n])
            if node.op == "placeholder":
                out = x
            elif node.op == "output":
                out = None
            else:
                try:
                    out = execute(self.root, node, args, kwargs)
                except UserError:
                    raise
                except Exception as e:
                    raise DataflowError(
                        f"dry run of the model on a zero input of shape {tuple(x.shape)} failed in "
                        f"{_where(node, self.root)} at '{_op_name(node)}' ({type(e).__name__}: {e});"
                        " check input_shape") from e
            real[node] = out
            ab[node] = self.abstract(node, out, ab, real)
            for a in node.all_input_nodes:
                if last.get(a) == i:
                    real.pop(a, None)
                    ab.pop(a, None)

    def abstract(self, node: fx.Node, out, ab: dict, real: dict):
        if node.op == "placeholder":
            return self.new_value(node, np.zeros(tuple(out.shape), dtype=np.int64))
        if node.op == "get_attr":
            self.check_param_use(node)
            return CONST if _is_tensorish(out) else None
        if node.op == "output":
            self.outputs(node, ab)
            return None
        if not any(_has_sig(ab.get(a)) for a in node.all_input_nodes):
            if self.weighted_module(node) is not None:
                raise DataflowError(f"layer {_where(node, self.root)} is applied to a constant, "
                                    "not to a signal of the network input; it cannot be mapped")
            return CONST if _is_tensorish(out) else None
        return self.classify(node, out, ab, real)

    def weighted_module(self, node: fx.Node) -> nn.Module | None:
        if node.op == "call_module":
            m = self.root.get_submodule(node.target)
            return m if isinstance(m, (nn.Linear, nn.Conv2d)) else None
        if node.op == "call_function" and node.target is F.linear:
            return self.linear_of_weight(node)[0]
        return None

    def linear_of_weight(self, node: fx.Node) -> tuple[nn.Module, str]:
        w = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
        if isinstance(w, fx.Node) and w.op == "get_attr" and w.target.endswith(".weight"):
            mod = self.root.get_submodule(w.target[: -len(".weight")])
            if isinstance(mod, nn.Linear):
                return mod, _strip(w.target[: -len(".weight")])
        raise UnmappableLayerError(
            f"{_where(node, self.root)}: F.linear with a weight that is not a Linear module's "
            "weight parameter cannot be mapped onto crossbars; call an nn.Linear instead")

    def check_param_use(self, node: fx.Node) -> None:
        """A weighted layer's parameter read outside its module call must go to F.linear."""
        owner_path, _, pname = node.target.rpartition(".")
        if not owner_path:
            return
        mod = self.root.get_submodule(owner_path)
        if not isinstance(mod, (nn.Linear, nn.Conv2d)) or pname not in ("weight", "bias"):
            return
        for user in node.users:
            ok = (user.op == "call_function" and user.target is F.linear and isinstance(mod, nn.Linear)
                  and (pname == "weight" and (user.args[1:2] == (node,)
                                              or user.kwargs.get("weight") is node)
                       or pname == "bias" and (user.args[2:3] == (node,)
                                               or user.kwargs.get("bias") is node)))
            if not ok:
                raise UnmappableLayerError(
                    f"the {pname} of layer {_strip(owner_path) or '<root>'!r} "
                    f"({type(mod).__name__}) is used by '{_op_name(user)}' in "
                    f"{_where(user, self.root)}; a weighted layer is mapped when it is called as a "
                    "module (or a Linear's weight passed to F.linear(x, weight, bias)), so this "
                    "use would be dropped")

    def outputs(self, node: fx.Node, ab: dict) -> None:
        cols = []

        def visit(n):
            a = ab.get(n)
            for s in (a if isinstance(a, (tuple, list)) else [a]):
                if isinstance(s, _Sig):
                    own = self.lookup(s.prov, node)[2][0]
                    cols.append(np.unique(own[own > 0]))
            return n

        map_arg(node.args[0], visit)
        self.out_cols = np.unique(np.concatenate(cols)) if cols else self.out_cols

    # -- classification --

    def classify(self, node: fx.Node, out, ab: dict, real: dict):
        name = _op_name(node)
        where = _where(node, self.root)
        if node.op == "call_module":
            mod = self.root.get_submodule(node.target)
            if isinstance(mod, (nn.Linear, nn.Conv2d)):
                return self.weighted(node, mod, _strip(node.target), out, ab, real)
            if isinstance(mod, UNMAPPABLE):
                raise UnmappableLayerError(f"layer {where} cannot be mapped onto crossbars")
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                return self.batch_norm(node, mod, out, ab)
            if isinstance(mod, IDENTITY_MODULES):
                return self.identity(node, out, ab)
            if isinstance(mod, WIRING_MODULES):
                if isinstance(mod, nn.modules.padding._ConstantPadNd) and mod.value != 0:
                    raise DataflowError(f"{where} pads with the constant {mod.value}; only zero "
                                        "padding can be wired (an unused row)")
                return self.wiring(node, out, ab, real)
            if isinstance(mod, ACTIVATIONS):
                return self.elementwise(node, out, ab)
            if isinstance(mod, POOLS):
                if getattr(mod, "return_indices", False):
                    raise UnmappableLayerError(f"{where} returns indices; cannot be mapped")
                return self.channel_local(node, out, ab)
            if isinstance(mod, REDUCE_MODULES):
                return self.reduce_module(node, mod, out, ab)
            raise UnmappableLayerError(
                f"layer {where} has no crossbar or periphery mapping (known: Linear, Conv2d, "
                "batch/layer/group norm, activations, pooling, dropout, flatten, padding, shuffles)")
        if node.op == "call_function" and node.target is F.linear:
            mod, path = self.linear_of_weight(node)
            return self.weighted(node, mod, path, out, ab, real)
        if name in ("conv2d", "conv1d", "conv3d", "conv_transpose2d", "bilinear", "embedding",
                    "scaled_dot_product_attention", "multi_head_attention_forward"):
            raise UnmappableLayerError(
                f"{where}: functional '{name}' cannot be mapped onto crossbars; use the nn module "
                "(nn.Conv2d) so the mapper can place its weights")
        if name in ("max", "min") and node.op in ("call_function", "call_method"):
            if len(node.args) > 1 and isinstance(node.args[1], fx.Node):
                return self.elementwise(node, out, ab)
            raise UnmappableLayerError(f"{where}: '{name}' with a dim returns indices; use amax")
        if name in META:
            if _is_tensorish(out):
                raise UnmappableLayerError(f"{where}: '{name}' on a signal cannot be mapped")
            return None
        if not _is_tensorish(out):
            raise DataflowError(f"{where}: '{name}' turns a signal into a Python value "
                                "(data-dependent); that cannot be mapped")
        if name in IDENTITY:
            return self.identity(node, out, ab)
        if name in WIRING:
            if name == "pad":
                value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else None)
                if value not in (None, 0, 0.0):
                    raise DataflowError(f"{where} pads with the constant {value}; only zero "
                                        "padding can be wired (an unused row)")
            return self.wiring(node, out, ab, real)
        if name in ELEMENTWISE:
            self.check_in_place(node, name, ab)
            return self.elementwise(node, out, ab)
        if name in CHANNEL_LOCAL:
            if node.kwargs.get("return_indices"):
                raise UnmappableLayerError(f"{where}: '{name}' returns indices; cannot be mapped")
            return self.channel_local(node, out, ab)
        if name in REDUCE or name in SAME_SHAPE_REDUCE:
            return self.reduce_function(node, name, out, ab)
        raise UnmappableLayerError(
            f"{where}: operation '{name}' on a signal has no crossbar or periphery mapping "
            "(a product of two signals, as in attention, or an unknown operation)")

    def check_in_place(self, node: fx.Node, name: str, ab: dict) -> None:
        """``x.add_(y)`` changes x for its later readers too, which the capture would not see."""
        in_place = name in ("iadd", "isub", "imul", "itruediv") or (
            node.op == "call_method" and name.endswith("_"))
        x = node.args[0] if node.args else None
        if not in_place or not isinstance(x, fx.Node):
            return
        if sum(_has_sig(ab.get(a)) for a in node.all_input_nodes) < 2:
            return  # x.relu_(): the owner does not change
        if any(self.index[u] > self.index[node] for u in x.users if u is not node):
            raise DataflowError(f"{_where(node, self.root)}: in-place '{name}' changes a value "
                                "that is read again later; write it out of place (y = x + z)")

    def sig_arg(self, node: fx.Node, ab: dict) -> tuple[fx.Node, _Sig]:
        """The first argument that carries a signal (the data input of a unary operation)."""
        for a in node.all_input_nodes:
            if isinstance(ab.get(a), _Sig):
                return a, ab[a]
        raise DataflowError(f"{_where(node, self.root)}: '{_op_name(node)}' reads a tuple of signals; "
                            "that cannot be mapped")

    def identity(self, node: fx.Node, out, ab: dict):
        _, s = self.sig_arg(node, ab)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != tuple(s.prov.shape):
            raise UnmappableLayerError(f"{_where(node, self.root)}: '{_op_name(node)}' changes the "
                                       "shape; cannot be mapped")
        return s

    def wiring(self, node: fx.Node, out, ab: dict, real: dict):
        name = _op_name(node)
        data = node.args[0] if node.args else next(iter(node.kwargs.values()))
        where = _where(node, self.root)

        def sub_data(n):
            a = ab.get(n)
            if isinstance(a, _Sig):
                return a.prov
            if isinstance(a, tuple):
                if not all(isinstance(y, _Sig) for y in a):
                    raise DataflowError(f"{where}: '{name}' mixes signals and constants")
                return tuple(y.prov for y in a)
            if a == CONST and name in DATA_LISTS:
                t = real[n]
                if torch.count_nonzero(t):
                    raise DataflowError(f"{where}: '{name}' joins a signal with a nonzero constant "
                                        "tensor; only zeros can be wired (as unused rows)")
                return torch.zeros(t.shape, dtype=torch.float64)
            return _cpu(real[n])

        def sub_other(n):
            a = ab.get(n)
            if _has_sig(a):
                if name in SHAPE_ONLY_ARG:
                    return real[n]
                raise DataflowError(f"{where}: '{name}' indexes a signal with another signal "
                                    "(data-dependent wiring); that cannot be mapped")
            return _cpu(real[n])

        if isinstance(data, fx.Node) and not _has_sig(ab.get(data)):
            return CONST if _is_tensorish(out) else None  # a constant shaped like a signal
        args = (map_arg(node.args[0], sub_data),) + tuple(map_arg(a, sub_other)
                                                          for a in node.args[1:])
        kwargs = {k: map_arg(v, sub_other) for k, v in node.kwargs.items()}
        if not node.args:
            k0 = next(iter(node.kwargs))
            kwargs[k0] = map_arg(node.kwargs[k0], sub_data)
        res = execute(self.root, node, args, kwargs)

        def wrap(t):
            return _Sig(t) if isinstance(t, torch.Tensor) else t

        res = map_aggregate(res, wrap)
        if _shapes(out) != _shapes(res):
            raise DataflowError(f"{where}: replaying '{name}' on the provenance gave another shape")
        return tuple(res) if isinstance(res, list) else res

    def elementwise(self, node: fx.Node, out, ab: dict):
        """Owner of each result element: the latest owner among its operands."""
        where = _where(node, self.root)
        if not isinstance(out, torch.Tensor):
            raise UnmappableLayerError(f"{where}: '{_op_name(node)}' returns no tensor")
        shape = tuple(out.shape)
        ops = []
        for a in node.all_input_nodes:
            s = ab.get(a)
            if isinstance(s, _Sig):
                v, _, own = self.lookup(s.prov, node)
                try:
                    ops.append((np.broadcast_to(v, shape), np.broadcast_to(own, shape)))
                except ValueError:
                    raise UnmappableLayerError(f"{where}: '{_op_name(node)}' does not act element "
                                               "by element; cannot be mapped") from None
            elif _has_sig(s):
                raise DataflowError(f"{where}: '{_op_name(node)}' reads a tuple of signals")
        res = ops[0][1]
        for _, own in ops[1:]:
            res = np.maximum(res, own)
        if len(ops) > 1:
            for v, own in ops:
                self.add_pairs(v[0], own[0], res[0])
        return self.new_value(node, res)

    def channel_local(self, node: fx.Node, out, ab: dict):
        """Pooling and friends: within one channel, done by the unit computing the channel."""
        where = _where(node, self.root)
        a, s = self.sig_arg(node, ab)
        _, _, own = self.lookup(s.prov, node)
        shape = tuple(out.shape)
        if own.ndim < 3 or len(shape) != own.ndim or shape[:2] != own.shape[:2]:
            raise UnmappableLayerError(f"{where}: '{_op_name(node)}' on a tensor of shape "
                                       f"{tuple(own.shape[1:])} is not a per-channel spatial op")
        chan = _row_owner(own[0].reshape(own.shape[1], -1), allow_empty=True)
        if chan is None:
            raise DataflowError(f"{where}: '{_op_name(node)}' pools over elements of one channel "
                                "that different output units compute (e.g. after a cat along a "
                                "spatial axis); that cannot be mapped")
        res = np.broadcast_to(chan.reshape((1, -1) + (1,) * (len(shape) - 2)), shape)
        return self.new_value(node, res)

    def reduce_function(self, node: fx.Node, name: str, out, ab: dict):
        a, s = self.sig_arg(node, ab)
        nd = s.prov.ndim
        args, kw = node.args, node.kwargs
        if name in ("softmax", "log_softmax"):
            dim = kw.get("dim", args[1] if len(args) > 1 else None)
            if dim is None:
                dim = 0 if nd in (0, 1, 3) else 1  # torch's legacy implicit dim
            return self.reduce(node, out, ab, (dim,))
        if name == "normalize":
            return self.reduce(node, out, ab, (kw.get("dim", args[2] if len(args) > 2 else 1),))
        if name == "layer_norm":
            ns = kw.get("normalized_shape", args[1] if len(args) > 1 else None)
            k = len(ns) if isinstance(ns, (tuple, list)) else 1
            return self.reduce(node, out, ab, tuple(range(nd - k, nd)))
        if name == "group_norm":
            return self.reduce(node, out, ab, None,
                               groups=kw.get("num_groups", args[1] if len(args) > 1 else None))
        if name == "local_response_norm":
            return self.reduce(node, out, ab, None,
                               window=kw.get("size", args[1] if len(args) > 1 else None))
        dim = kw.get("dim", args[1] if len(args) > 1 and not isinstance(args[1], bool) else None)
        if name in ("amax", "amin") and dim in ((), []):
            dim = None
        return self.reduce(node, out, ab, None if dim is None else
                           (tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)))

    def reduce_module(self, node: fx.Node, mod: nn.Module, out, ab: dict):
        _, s = self.sig_arg(node, ab)
        nd = s.prov.ndim
        if isinstance(mod, (nn.Softmax, nn.LogSoftmax)):
            dim = mod.dim if mod.dim is not None else (0 if nd in (0, 1, 3) else 1)
            return self.reduce(node, out, ab, (dim,))
        if isinstance(mod, nn.LayerNorm):
            return self.reduce(node, out, ab, tuple(range(nd - len(mod.normalized_shape), nd)))
        if isinstance(mod, nn.GroupNorm):
            return self.reduce(node, out, ab, None, groups=mod.num_groups)
        return self.reduce(node, out, ab, None, window=mod.size)

    def reduce(self, node: fx.Node, out, ab: dict, dims, groups=None, window=None):
        """A result element reads many elements: owned by the latest owner among them, which
        receives the others as operand buses."""
        where = _where(node, self.root)
        a, s = self.sig_arg(node, ab)
        v, _, own = self.lookup(s.prov, node)
        shape, nd = tuple(out.shape), own.ndim
        if groups is not None:  # group norm: over (channels of the group, spatial)
            g = own.reshape(BATCH, groups, -1)
            red = np.broadcast_to(g.max(axis=2, keepdims=True), g.shape).reshape(own.shape)
            res = red
        elif window is not None:  # cross-channel LRN: channels c - size//2 .. c + (size-1)//2
            pad = [(0, 0)] * nd
            pad[1] = (window // 2, (window - 1) // 2)
            po, pv = np.pad(own, pad, constant_values=-1), np.pad(v, pad, constant_values=-1)
            idx = np.arange(own.shape[1])
            res = np.max([np.take(po, idx + d, axis=1) for d in range(window)], axis=0)
            for d in range(window):  # the window's members, each to the window's owner
                self.add_pairs(np.take(pv, idx + d, axis=1)[0], np.take(po, idx + d, axis=1)[0],
                               res[0])
            return self.new_value(node, res)
        else:
            if dims is None:
                raise DataflowError(f"{where}: '{_op_name(node)}' reduces over every dimension, "
                                    "the batch too; that cannot be mapped")
            dims = tuple(sorted({int(d) % nd for d in dims}))
            if 0 in dims:
                raise DataflowError(f"{where}: '{_op_name(node)}' reduces over the batch "
                                    "dimension; that cannot be mapped")
            red = own.max(axis=dims, keepdims=True)
            res = red.reshape(shape) if red.size == int(np.prod(shape)) else None
            if res is None:
                try:
                    res = np.broadcast_to(red, shape)
                except ValueError:
                    raise UnmappableLayerError(f"{where}: '{_op_name(node)}' has an output shape "
                                               "the mapper does not understand") from None
            red = np.broadcast_to(red, own.shape)
        self.add_pairs(v[0], own[0], red[0])
        return self.new_value(node, res)

    def batch_norm(self, node: fx.Node, bn: nn.Module, out, ab: dict):
        where = _where(node, self.root)
        if bn.running_mean is None or bn.running_var is None:
            raise UnmappableLayerError(f"batch norm {where} has no running statistics "
                                       "(track_running_stats=False): in eval mode it normalizes "
                                       "with the batch's own statistics, which a chip cannot do")
        src = node.args[0]
        op = self.op_of.get(src.name) if isinstance(src, fx.Node) else None
        foldable = (op is not None and len(src.users) == 1 and op.folded is None
                    and self.module_calls.get(node.target, 0) == 1 and out.ndim >= 2
                    and out.shape[1] == op.n_out and (op.kind == "conv" or out.ndim == 2))
        if not foldable:
            return self.elementwise(node, out, ab)  # periphery: per-channel affine
        var = bn.running_var.detach().cpu().double().numpy()
        mean = bn.running_mean.detach().cpu().double().numpy()
        scale = 1.0 / np.sqrt(var + bn.eps)
        shift = -mean * scale
        if bn.affine:
            gamma = bn.weight.detach().cpu().double().numpy()
            shift = shift * gamma + bn.bias.detach().cpu().double().numpy()
            scale = scale * gamma
        op.scale = scale
        op.bias = (0.0 if op.bias is None else op.bias) * scale + shift
        op.folded = _strip(node.target)
        self.folded[node.name] = op.node
        return ab[src]

    def weighted(self, node: fx.Node, mod: nn.Module, path: str, out, ab: dict, real: dict):
        where = f"{path or '<root>'!r} ({type(mod).__name__})"
        if id(mod) in self.called:
            raise DataflowError(f"layer {path or '<root>'!r} ({type(mod).__name__}) is called more "
                                "than once in forward(); weight sharing cannot be mapped onto "
                                "crossbars")
        self.called[id(mod)] = node.name
        layer, mats = self.layer_of[id(mod)]
        mats = sorted(mats, key=lambda m: m.group or 0)
        x = node.args[0] if node.args else node.kwargs.get("input")
        s = ab.get(x)
        if not isinstance(s, _Sig):
            raise DataflowError(f"layer {where} reads a tuple or constant, not a signal")
        v, elem, own = self.lookup(s.prov, node)
        shape = tuple(s.prov.shape[1:])
        is_conv = isinstance(mod, nn.Conv2d)
        if is_conv and len(shape) != 3:
            raise DataflowError(f"layer {where} reads a tensor of shape {shape}; the mapper "
                                "needs batched (N, C, H, W) input for a Conv2d")
        o = own[0].reshape(shape[0], -1) if is_conv else own[0].reshape(-1, shape[-1]).T
        rows = _row_owner(o)
        if rows is None:
            self.refuse_rows(where, o, is_conv)
        v0, e0 = v[0].reshape(-1), elem[0].reshape(-1)
        pos = np.zeros(v0.size, dtype=np.int32)
        for vv in np.unique(v0[v0 >= 0]):
            sel = v0 == vv
            pos[sel] = self.values[vv].rank(e0[sel])
        if node.op == "call_module":
            bias = mod.bias
        else:
            b = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
            if isinstance(b, fx.Node) and _has_sig(ab.get(b)):
                raise DataflowError(f"{where}: F.linear with a signal as bias cannot be mapped")
            bias = real[b] if isinstance(b, fx.Node) else b
        op = WeightedOp(
            node.name, layer.name, path, mod, "conv" if is_conv else "linear",
            [m.name for m in mats], mod.weight.shape[0], None,
            None if bias is None else torch.as_tensor(bias).detach().cpu().double().numpy().copy(),
            mod.weight.dtype, self.next_col, Gather(shape, v0.astype(np.int32), pos), rows)
        if is_conv:
            op.groups, op.kernel = mod.groups, tuple(mod.kernel_size)
            op.stride, op.dilation = tuple(mod.stride), tuple(mod.dilation)
            op.pad = tuple(mod._reversed_padding_repeated_twice)
            op.padding_mode = "constant" if mod.padding_mode == "zeros" else mod.padding_mode
        n_out = op.n_out
        fg = n_out // op.groups
        for m in mats:
            self.mat_names.append(m.name)
            self.col_mat.append(np.full(fg, len(self.mat_names) - 1))
            self.col_idx.append(np.arange(fg))
        self.next_col += n_out
        self.ops.append(op)
        self.op_of[node.name] = op
        cols = op.col0 + np.arange(n_out)
        oshape = tuple(out.shape)
        lead = oshape[2:] if is_conv else oshape[1:-1]  # output vectors per sample
        for m in mats:
            m.evaluations = int(np.prod(lead, dtype=np.int64)) if lead else 1
        res = np.broadcast_to(cols.reshape((-1, 1, 1)) if is_conv else cols, oshape)
        return self.new_value(node, res)

    def refuse_rows(self, where: str, o: np.ndarray, is_conv: bool) -> None:
        valid = o >= 0
        for r in range(o.shape[0]):
            cols = np.unique(o[r][valid[r]])
            if len(cols) != 1:
                what = (f"input channel {r}" if is_conv else f"input feature {r}")
                read = ("only zero padding" if not len(cols) else
                        "signals of " + ", ".join(self.describe(c) for c in cols[:4])
                        + (", ..." if len(cols) > 4 else ""))
                raise DataflowError(
                    f"cannot wire layer {where}: its {what} reads {read}, but one row of a "
                    "crossbar is one wire from one producer column (hardware-model section 3). A "
                    "reshape that moves features of different output columns into one channel or "
                    "feature (e.g. a .view() of a Linear's output into (C, H, W), or a Linear "
                    "applied along a spatial axis) cannot be mapped; flatten the channels last "
                    "or use a conv")

    def describe(self, col: int) -> str:
        if col == 0:
            return "the input IN"
        mat = int(np.concatenate(self.col_mat)[col])
        return f"{self.mat_names[mat]!r} column {int(np.concatenate(self.col_idx)[col])}"

    # -- the result --

    def finish(self, shape: tuple[int, ...]) -> Capture:
        used = {id(m) for m in (op.module for op in self.ops)}
        unused = [lay.name for lay in self.layers
                  if any(id(m.module) not in used for m in lay.matrices)]
        if unused:
            warnings.warn(f"layers {unused} are not used in forward() on input {shape}; "
                          "they are left out of the mapping", stacklevel=3)
        if not self.ops:
            raise DataflowError("no Linear or Conv2d layer of the model is used in forward()")
        col_mat, col_idx = np.concatenate(self.col_mat), np.concatenate(self.col_idx)
        order = {op.node: k for k, op in enumerate(self.ops)}
        first = {}
        for op in self.ops:
            first.setdefault(op.layer, order[op.node])
        layers = sorted((lay for lay in self.layers if lay.name not in unused),
                        key=lambda lay: first[lay.name])
        by_name = {m.name: m for lay in layers for m in lay.matrices}
        col0 = {}
        for op in self.ops:
            fg = op.n_out // op.groups
            for i, name in enumerate(op.matrices):
                col0[name] = op.col0 + i * fg
                self.fill_matrix(by_name[name], op, i, col_mat, col_idx)
        for lay in layers:
            lay.matrices.sort(key=lambda m: (order[self.called[id(m.module)]], m.group or 0))
        keep = {int(v) for op in self.ops for v in np.unique(op.gather.value) if v >= 0}
        for i, val in enumerate(self.values):
            val.__dict__.pop("_rank", None)  # the gathers hold the positions now
            if i not in keep:
                val.owner = None
                val.__dict__.pop("_sorted", None)
        pairs = np.concatenate(self.pairs) if self.pairs else np.zeros((0, 3), dtype=np.int64)
        pairs = np.unique(pairs, axis=0)
        operands = Operands(list(self.mat_names), pairs[:, 0], col_mat[pairs[:, 1]],
                            col_idx[pairs[:, 1]], col_mat[pairs[:, 2]], col_idx[pairs[:, 2]])
        outputs: dict[str, np.ndarray] = {}
        om, oc = col_mat[self.out_cols], col_idx[self.out_cols]
        for k in np.unique(om[om >= 0]):
            outputs[self.mat_names[k]] = oc[om == k]
        return Capture(layers, list(self.ops), self.values, self.graph, self._sim_root(),
                       set(self.folded), operands, outputs, col0, shape)

    def fill_matrix(self, m: Matrix, op: WeightedOp, i: int, col_mat, col_idx) -> None:
        """Row producers and sources of matrix i of ``op`` (and its folded weights)."""
        if op.kind == "conv":
            cg = op.gather.shape[0] // op.groups
            k = op.kernel[0] * op.kernel[1]
            rows = np.repeat(op.row_owner[i * cg:(i + 1) * cg], k)  # row (c, ky, kx) <- channel c
        else:
            rows = op.row_owner
        mats = col_mat[rows]
        uniq, first = np.unique(mats, return_index=True)
        uniq = uniq[np.argsort(first)]
        lut = np.empty(int(uniq.max()) + 2, dtype=np.int64)
        lut[uniq + 1] = np.arange(len(uniq))
        m.inputs = tuple(None if u < 0 else self.mat_names[u] for u in uniq)
        m.row_input = lut[mats + 1]
        m.row_source = col_idx[rows].astype(np.int64)
        if op.scale is not None:  # column j of the matrix is output i * fg + j of the op
            fg = op.n_out // op.groups
            scale = op.scale[i * fg:(i + 1) * fg]
            m.weights = np.ascontiguousarray(
                (m.weights.astype(np.float64) * scale).astype(m.weights.dtype))

    def _sim_root(self) -> nn.Module:
        """float64 CPU copy of the model for the periphery, without the weighted layers'
        parameters (their snapshot is in the matrices)."""
        memo = {}
        for op in self.ops:
            for p in (op.module.weight, op.module.bias):
                if p is not None:
                    memo[id(p)] = nn.Parameter(torch.empty(0), requires_grad=False)
        sim = copy.deepcopy(self.root, memo)
        return sim.to("cpu", torch.float64).eval()


def _cpu(x):
    """A constant argument of a replay, beside the CPU provenance."""
    return x.cpu() if isinstance(x, torch.Tensor) else x


def _shapes(x):
    """Nested tuples of shapes of a (nested) result, for comparing a replay with the real run."""
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, _Sig):
        return tuple(x.prov.shape)
    if isinstance(x, (tuple, list)):
        return tuple(_shapes(y) for y in x)
    return x


def _row_owner(o: np.ndarray, allow_empty: bool = False) -> np.ndarray | None:
    """o: (R, E) owners of the elements each row reads (-1 = constant). (R,) the one owner per
    row, or None when a row reads several owners (or only constants, unless allow_empty)."""
    valid = o >= 0
    hi = np.where(valid, o, -1).max(axis=1, initial=-1)
    lo = np.where(valid, o, np.iinfo(np.int64).max).min(axis=1, initial=np.iinfo(np.int64).max)
    has = valid.any(axis=1)
    if np.any(has & (lo != hi)) or (not allow_empty and not has.all()):
        return None
    return hi


__all__ = ["Capture", "Gather", "Operands", "Value", "WeightedOp", "capture", "execute"]
