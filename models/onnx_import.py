"""Read an ONNX file into a torch module that the mapper captures like any PyTorch model.

    >>> net = load_onnx("resnet20.onnx")     # OnnxModel: .module, .input_shape, .num_classes
    >>> map_model(net.module, spec, net.input_shape)

Why not onnx2torch: it imports torchvision, which does not import beside the pinned CPU torch.
The ``onnx`` package parses the file (protobuf: reading it runs no code); this module then walks
the graph once, in its (topological) order, and builds a ``torch.fx.GraphModule`` of the same
vocabulary a hand-written model uses: ``nn.Conv2d`` and ``nn.Linear`` modules for Conv, Gemm and
MatMul with a constant weight, ``nn.BatchNorm*d`` for BatchNormalization (the capture folds it into
the conv before it, as for a PyTorch model), and ``torch`` functions for everything else (relu,
add, cat, flatten, reshape, pooling, ...). So an ONNX export of a network maps to the same
matrices, row sources and nets as the module it was exported from.

How the walk works: every ONNX value is either a *constant* (an initializer, a Constant node, or
computed only from constants, such as a Shape -> Gather -> Concat chain that builds a Reshape's
target) or a *signal* (computed from the network input). Each value carries a concrete example
tensor (the network run on one zero sample, batch size from the file or 1). Nodes whose inputs are
all constant are evaluated here, with the same torch functions; nodes that read a signal become
nodes of the fx graph. Shapes are static except the batch: a Reshape keeps the batch dimension
(``-1``) and takes the rest from the example.

Module names follow the exporter's scopes (``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``,
or an initializer ``fc1.weight`` -> ``fc1``), so layers keep their PyTorch names; other names
are sanitized node names. Operations with no crossbar or periphery mapping (Resize, LSTM,
attention's MatMul of two signals, ...) raise OnnxImportError naming the node and its type.
"""

import keyword
import operator
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from common.errors import UserError


class OnnxImportError(UserError, ValueError):
    """An ONNX file that cannot be read, or a node that cannot be converted."""


@dataclass
class OnnxModel:
    module: fx.GraphModule
    input_shape: tuple[int, ...]
    """One sample's shape, without the batch."""
    num_classes: int
    """Size of the output's last dimension."""
    weighted: list[str]
    """Linear/Conv2d module paths in execution order."""
    externals: list[Path]
    """Files the model's external data was read from (part of its identity)."""


@dataclass
class _Val:
    """An ONNX value: an example tensor and, for a signal, the fx node computing it."""

    example: torch.Tensor | tuple | None
    node: fx.Node | None = None

    @property
    def is_signal(self) -> bool:
        return self.node is not None


def load_onnx(path: str | Path) -> OnnxModel:
    """Parse ``path`` and convert its graph (see the module docstring)."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    if not path.is_file():
        raise OnnxImportError(f"ONNX file {path} does not exist; pass the .onnx file written by "
                              "torch.onnx.export (or another exporter)")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        externals = _external_files(proto, path)
        if externals:  # onnx refuses locations outside the model's folder (and symlinks)
            onnx.load_external_data_for_model(proto, str(path.parent))
    except Exception as e:  # noqa: BLE001 - any parse failure means a bad file
        raise OnnxImportError(f"{path} is not a readable ONNX model ({type(e).__name__}: "
                              f"{str(e)[:200]}); export it again with torch.onnx.export") from None
    g = proto.graph
    if not g.node:
        raise OnnxImportError(f"{path} holds an empty graph")
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    consts = {}
    for t in g.initializer:
        try:
            consts[t.name] = _tensor(numpy_helper.to_array(t))
        except Exception as e:  # noqa: BLE001 - a type torch has no tensor for, bad raw data
            raise OnnxImportError(f"{path}: initializer {t.name!r} cannot be read as a tensor "
                                  f"({type(e).__name__}: {str(e)[:120]})") from None
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise OnnxImportError(f"{path} has {len(inputs)} graph inputs "
                              f"({', '.join(i.name for i in inputs)}); the mapper takes networks "
                              "with one input tensor")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(shape) < 2 or any(s is None or s < 1 for s in shape[1:]):
        raise OnnxImportError(
            f"input {inputs[0].name!r} of {path} has shape {shape}; the mapper needs a batch "
            "dimension and fixed sizes for the others (export with a fixed input shape; only "
            "the batch may be dynamic)")
    batch = shape[0] or 1
    conv = _Converter(path, opset, consts)
    x = torch.zeros((batch, *shape[1:]))
    conv.vals[inputs[0].name] = _Val(x, conv.graph.placeholder("x"))
    for k, node in enumerate(g.node):
        conv.convert(node, k)
    outs = []
    for o in g.output:
        v = conv.get(o.name, "the graph output")
        if not v.is_signal:
            raise OnnxImportError(f"output {o.name!r} of {path} does not depend on the input")
        outs.append(v)
    conv.graph.output(outs[0].node if len(outs) == 1 else tuple(v.node for v in outs))
    module = fx.GraphModule(conv.root, conv.graph, class_name="OnnxNet")
    module.eval()
    out0 = outs[0].example
    if not isinstance(out0, torch.Tensor) or out0.ndim < 2:
        raise OnnxImportError(f"{path}: the output has shape {tuple(getattr(out0, 'shape', ()))};"
                              " the mapper needs a batch of vectors or maps")
    return OnnxModel(module, tuple(shape[1:]), int(out0.shape[-1]), conv.weighted, externals)


def _tensor(a) -> torch.Tensor:
    """A numpy array or scalar from the file as a torch tensor: floats as float32 (the weights of
    every module are float32), integers and booleans as they are."""
    a = np.asarray(a)
    if a.dtype.kind == "f":
        return torch.from_numpy(a.astype(np.float32))
    if a.dtype.kind in "iub":
        return torch.from_numpy(a.copy())
    raise TypeError(f"no tensor type for {a.dtype}")


def _external_files(proto, path: Path) -> list[Path]:
    """The files the model's external data lives in (onnx.load read them already)."""
    from onnx import external_data_helper

    files = set()
    for t in external_data_helper._get_all_tensors(proto):
        if external_data_helper.uses_external_data(t):
            info = {e.key: e.value for e in t.external_data}
            if "location" in info:
                files.add(path.parent / info["location"])
    return sorted(files)


# ---- the converter --------------------------------------------------------------------------------

_TAKEN = set(dir(nn.Module())) | set(dir(fx.GraphModule))
"""Attribute names of a module: no layer may be called 'training' or 'forward'."""
_SCOPE = re.compile(r"^/(.+)/[A-Za-z]+(?:_\d+)?$")


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class _Converter:
    def __init__(self, path: Path, opset: int, consts: dict[str, torch.Tensor]):
        self.path, self.opset = path, opset
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.vals: dict[str, _Val] = {n: _Val(t.float() if t.is_floating_point() else t)
                                      for n, t in consts.items()}
        self.names: set[str] = set()
        self.buffers: dict[int, tuple[torch.Tensor, fx.Node]] = {}  # the tensor kept: ids stay unique
        self.weights_used: dict[str, str] = {}  # initializer -> the weighted node reading it
        self.weighted: list[str] = []

    # -- values --

    def get(self, name: str, where: str) -> _Val:
        if name not in self.vals:
            raise OnnxImportError(f"{self.path}: {where} reads {name!r}, which no node before it "
                                  "computes (the graph is not in topological order)")
        return self.vals[name]

    def const(self, v: _Val, what: str) -> torch.Tensor:
        if v.is_signal:
            raise OnnxImportError(f"{self.where}: its {what} depends on the network input; the "
                                  "mapper needs it constant")
        return v.example

    def ints(self, v: _Val, what: str) -> list[int]:
        return [int(i) for i in self.const(v, what).reshape(-1).tolist()]

    def arg(self, v):
        """An fx argument for a value: its node, or a buffer holding the constant."""
        if not isinstance(v, _Val):
            return v
        if v.is_signal:
            return v.node
        t = v.example
        if t.ndim == 0 and t.is_floating_point():
            return float(t)
        key = id(t)
        if key not in self.buffers:
            name = f"_onnx_const{len(self.buffers)}"
            self.root.register_buffer(name, t.clone())
            self.buffers[key] = (t, self.graph.get_attr(name))
        return self.buffers[key][1]

    def call(self, fn, *args, **kwargs) -> _Val:
        """fn on the arguments: evaluated now when no argument is a signal, else a graph node."""
        def ex(a):
            if isinstance(a, _Val):
                return a.example
            if isinstance(a, (list, tuple)):
                return type(a)(ex(b) for b in a)
            return a

        def nd(a):
            if isinstance(a, (list, tuple)):
                return type(a)(nd(b) for b in a)
            return self.arg(a)

        def signal(a):
            return (isinstance(a, _Val) and a.is_signal) or (
                isinstance(a, (list, tuple)) and any(signal(b) for b in a))

        try:
            out = fn(*ex(args), **{k: ex(v) for k, v in kwargs.items()})
        except Exception as e:  # noqa: BLE001
            raise OnnxImportError(f"{self.where}: evaluating it failed ({type(e).__name__}: "
                                  f"{str(e)[:200]})") from None
        if not any(signal(a) for a in (*args, *kwargs.values())):
            return _Val(out)
        node = self.graph.call_function(fn, nd(args), {k: nd(v) for k, v in kwargs.items()})
        return _Val(out, node)

    def module(self, name: str, mod: nn.Module, x: _Val) -> _Val:
        self.add_module(name, mod)
        node = self.graph.call_module(name, (x.node,))
        with torch.no_grad():
            out = mod.eval()(x.example)
        return _Val(out, node)

    def add_module(self, name: str, mod: nn.Module) -> None:
        parent = self.root
        *path, leaf = name.split(".")
        for atom in path:
            if not hasattr(parent, atom):
                parent.add_module(atom, nn.Module())
            parent = getattr(parent, atom)
        parent.add_module(leaf, mod)
        self.names.add(name)

    def module_name(self, node, weight: str | None) -> str:
        """A free module path for node: its weight's name, its scope, or its node name."""
        cands = []
        if weight and weight.endswith(".weight"):
            cands.append(weight[: -len(".weight")])
        m = _SCOPE.match(node.name)
        if m:
            path, prev = [], ""
            for comp in m.group(1).split("/"):
                if prev and comp.startswith(prev + "."):
                    path.append(comp[len(prev) + 1:])
                elif path and comp.startswith(".".join(path) + "."):
                    path = [comp]
                else:
                    path.append(comp)
                prev = comp
            cands.append(".".join(path))
        cands.append(re.sub(r"\W", "_", node.name).strip("_") or node.op_type.lower())
        for c in cands:
            if self.free(c):
                return c
        base = re.sub(r"\W", "_", cands[-1])
        if not base.isidentifier() or keyword.iskeyword(base):
            base = "n_" + base
        k = 1
        while not self.free(f"{base}_{k}"):
            k += 1
        return f"{base}_{k}"

    def free(self, name: str) -> bool:
        atoms = name.split(".")
        if name in self.names or name.startswith("_onnx_"):
            return False
        for i, a in enumerate(atoms):  # identifiers (digits inside a path), not taken by torch
            if not (a.isidentifier() or (i and a.isdigit())) or keyword.iskeyword(a) or a in _TAKEN:
                return False
        prefixes = {".".join(atoms[:i]) for i in range(1, len(atoms))}
        return not (prefixes & self.names) and not any(n.startswith(name + ".") for n in self.names)

    # -- nodes --

    def convert(self, node, k: int) -> None:
        self.where = f"{self.path}: node {k} {node.name or '(unnamed)'!r} ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            raise OnnxImportError(f"{self.where} is from operator domain {node.domain!r}; only "
                                  "standard ONNX operators can be converted")
        handler = getattr(self, "op_" + node.op_type, None)
        if handler is None:
            raise OnnxImportError(
                f"{self.where}: operator {node.op_type} has no crossbar or periphery mapping "
                f"(supported: {', '.join(sorted(n[3:] for n in dir(self) if n.startswith('op_')))})")
        ins = [self.get(n, self.where) if n else None for n in node.input]
        try:
            out = handler(node, _attrs(node), ins)
        except UserError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
            raise OnnxImportError(f"{self.where}: cannot be converted ({type(e).__name__}: "
                                  f"{str(e)[:200]})") from None
        outs = out if isinstance(out, list) else [out]
        for name, v in zip(node.output, outs, strict=False):
            if name:
                self.vals[name] = v

    def signal(self, ins, what="its input", rank: int | None = None) -> _Val:
        v = ins[0]
        if v is None or not v.is_signal:
            raise OnnxImportError(f"{self.where}: {what} must come from the network input")
        if rank is not None and v.example.ndim != rank:
            raise OnnxImportError(f"{self.where}: {what} has {v.example.ndim} dimensions; only "
                                  f"{rank}-D (N, C, H, W) inputs are supported")
        return v

    # weighted layers

    def claim(self, node, weight: str) -> None:
        """A weight initializer read by two weighted nodes is weight sharing: refused, as the
        capture refuses a module called twice (and training would untie the copies)."""
        if weight in self.weights_used:
            raise OnnxImportError(f"{self.where}: its weight {weight!r} is also the weight of node "
                                  f"{self.weights_used[weight]!r}; weight sharing cannot be mapped "
                                  "onto crossbars")
        self.weights_used[weight] = node.name or node.op_type

    def op_Conv(self, node, a, ins):
        x = self.signal(ins)
        w = self.const(ins[1], "weight")
        self.claim(node, node.input[1])
        if w.ndim != 4 or x.example.ndim != 4:
            raise OnnxImportError(f"{self.where}: a {w.ndim - 2}-D convolution; only 2-D convs "
                                  "(N, C, H, W) map onto crossbars")
        kh, kw = w.shape[2:]
        stride = tuple(a.get("strides", (1, 1)))
        dil = tuple(a.get("dilations", (1, 1)))
        pads = self.pads(a, x.example.shape[2:], (kh, kw), stride, dil)
        top, left, bottom, right = pads
        if (top, left) != (bottom, right):  # asymmetric: pad first (zero rows), then conv
            x = self.call(F.pad, x, (left, right, top, bottom))
            top = left = 0
        f, cg = w.shape[:2]
        groups = int(a.get("group", 1))
        bias = ins[2] if len(ins) > 2 and ins[2] is not None else None
        mod = nn.Conv2d(cg * groups, f, (kh, kw), stride, (top, left), dil, groups, bias is not None)
        with torch.no_grad():
            mod.weight.copy_(w)
            if bias is not None:
                mod.bias.copy_(self.const(bias, "bias"))
        name = self.module_name(node, node.input[1])
        self.weighted.append(name)
        return self.module(name, mod, x)

    def pads(self, a, size, kernel, stride, dil) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of a Conv or pooling node."""
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("NOTSET", "VALID"):
            p = list(a.get("pads", (0, 0, 0, 0))) if auto == "NOTSET" else [0, 0, 0, 0]
            if len(p) != 4:
                raise OnnxImportError(f"{self.where}: pads {p}; only 2-D layers are supported")
            return tuple(int(v) for v in p)
        out = [-(-int(s) // st) for s, st in zip(size, stride, strict=True)]
        total = [max(0, (o - 1) * st + (k - 1) * d + 1 - s)
                 for o, st, k, d, s in zip(out, stride, kernel, dil, size, strict=True)]
        lo = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        return (lo[0], lo[1], total[0] - lo[0], total[1] - lo[1])

    def linear(self, node, x: _Val, w: torch.Tensor, b: torch.Tensor | None, weight_name: str):
        self.claim(node, weight_name)
        mod = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            mod.weight.copy_(w)
            if b is not None:
                mod.bias.copy_(b.reshape(-1).expand(w.shape[0]))
        name = self.module_name(node, weight_name)
        self.weighted.append(name)
        return self.module(name, mod, x)

    def op_Gemm(self, node, a, ins):
        x = self.signal(ins)
        if a.get("transA", 0):
            raise OnnxImportError(f"{self.where}: transA=1 (the input transposed) cannot be mapped")
        w = self.const(ins[1], "weight B")
        w = w if a.get("transB", 0) else w.t()
        w = w * float(a.get("alpha", 1.0))
        b = ins[2] if len(ins) > 2 and ins[2] is not None else None
        if b is not None:
            b = self.const(b, "bias C") * float(a.get("beta", 1.0))
            if b.numel() not in (1, w.shape[0]):
                raise OnnxImportError(f"{self.where}: bias C of shape {tuple(b.shape)} is not "
                                      "per output; cannot be mapped")
        return self.linear(node, x, w, b, node.input[1])

    def op_MatMul(self, node, a, ins):
        if not ins[1].is_signal and ins[0].is_signal and ins[1].example.ndim == 2:
            w = ins[1].example.t()
            return self.linear(node, ins[0], w, None, node.input[1])
        if ins[0].is_signal or ins[1].is_signal:
            raise OnnxImportError(
                f"{self.where}: a MatMul of two signals, or with the weight on the left, has no "
                "crossbar mapping (only x @ W with a constant 2-D W, a Linear layer)")
        return self.call(torch.matmul, *ins)

    def op_BatchNormalization(self, node, a, ins):
        x = self.signal(ins)
        if a.get("training_mode", 0):
            raise OnnxImportError(f"{self.where}: training_mode=1 normalizes with the batch's "
                                  "own statistics, which a chip cannot do; export in eval mode")
        scale, bias, mean, var = (self.const(v, "statistic") for v in ins[1:5])
        c = scale.numel()
        cls = nn.BatchNorm2d if x.example.ndim == 4 else nn.BatchNorm1d
        bn = cls(c, eps=float(a.get("epsilon", 1e-5)))
        with torch.no_grad():
            bn.weight.copy_(scale)
            bn.bias.copy_(bias)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
        return self.module(self.module_name(node, None), bn, x)

    # element-wise

    def op_Relu(self, node, a, ins):
        return self.call(torch.relu, ins[0])

    def op_Sigmoid(self, node, a, ins):
        return self.call(torch.sigmoid, ins[0])

    def op_Tanh(self, node, a, ins):
        return self.call(torch.tanh, ins[0])

    def op_LeakyRelu(self, node, a, ins):
        return self.call(F.leaky_relu, ins[0], float(a.get("alpha", 0.01)))

    def op_Elu(self, node, a, ins):
        return self.call(F.elu, ins[0], float(a.get("alpha", 1.0)))

    def op_Selu(self, node, a, ins):
        alpha, gamma = float(a.get("alpha", 1.67326319217681884765625)), float(
            a.get("gamma", 1.05070102214813232421875))
        if abs(alpha - 1.6732632) > 1e-6 or abs(gamma - 1.0507010) > 1e-6:
            raise OnnxImportError(f"{self.where}: Selu with alpha {alpha}, gamma {gamma}; only "
                                  "the standard constants (torch's selu) are supported")
        return self.call(F.selu, ins[0])

    def op_Softplus(self, node, a, ins):
        return self.call(F.softplus, ins[0])

    def op_HardSwish(self, node, a, ins):
        return self.call(F.hardswish, ins[0])

    def op_HardSigmoid(self, node, a, ins):
        y = self.call(torch.mul, ins[0], _Val(torch.tensor(float(a.get("alpha", 0.2)))))
        y = self.call(torch.add, y, _Val(torch.tensor(float(a.get("beta", 0.5)))))
        return self.call(torch.clamp, y, 0.0, 1.0)

    def op_Gelu(self, node, a, ins):
        approx = a.get("approximate", b"none")
        return self.call(F.gelu, ins[0], approximate=approx.decode() if isinstance(approx, bytes)
                         else approx)

    def op_Clip(self, node, a, ins):
        lo = a.get("min") if self.opset < 11 else (
            float(self.const(ins[1], "min")) if len(ins) > 1 and ins[1] is not None else None)
        hi = a.get("max") if self.opset < 11 else (
            float(self.const(ins[2], "max")) if len(ins) > 2 and ins[2] is not None else None)
        if lo is None and hi is None:
            return ins[0]  # a clip without bounds is the identity
        return self.call(torch.clamp, ins[0], lo, hi)

    def _binary(fn):  # noqa: N805 - a decorator factory used in the class body
        def op(self, node, a, ins):
            return self.call(fn, ins[0], ins[1])
        return op

    op_Add = _binary(torch.add)
    op_Sub = _binary(torch.sub)
    op_Mul = _binary(torch.mul)
    def op_Div(self, node, a, ins):
        if not any(v.example.is_floating_point() for v in ins[:2]):  # ONNX integer Div truncates
            return self.call(torch.div, ins[0], ins[1], rounding_mode="trunc")
        return self.call(torch.div, ins[0], ins[1])
    op_Pow = _binary(torch.pow)
    op_Equal = _binary(torch.eq)
    op_Less = _binary(torch.lt)
    op_Greater = _binary(torch.gt)

    def _variadic(fn):  # noqa: N805 - Sum/Max/Min of any number of inputs, pairwise
        def op(self, node, a, ins):
            y = ins[0]
            for v in ins[1:]:
                y = self.call(fn, y, v)
            return y
        return op

    op_Sum = _variadic(torch.add)
    op_Max = _variadic(torch.maximum)
    op_Min = _variadic(torch.minimum)

    def _unary(fn):  # noqa: N805
        def op(self, node, a, ins):
            return self.call(fn, ins[0])
        return op

    op_Sqrt = _unary(torch.sqrt)
    op_Exp = _unary(torch.exp)
    op_Log = _unary(torch.log)
    op_Abs = _unary(torch.abs)
    op_Neg = _unary(torch.neg)
    op_Erf = _unary(torch.erf)
    op_Reciprocal = _unary(torch.reciprocal)

    def op_Where(self, node, a, ins):
        return self.call(torch.where, *ins)

    def op_Identity(self, node, a, ins):
        return ins[0]

    def op_Dropout(self, node, a, ins):
        return [ins[0], None]

    def op_Cast(self, node, a, ins):
        from onnx import TensorProto

        to = a["to"]
        floats = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
        if ins[0].is_signal:
            if to not in floats:
                raise OnnxImportError(f"{self.where}: casts a signal to a non-float type")
            if ins[0].example.is_floating_point():
                return ins[0]
            return self.call(torch.Tensor.float, ins[0])  # a comparison's 0/1 as numbers
        dt = {TensorProto.INT64: torch.int64, TensorProto.INT32: torch.int32,
              TensorProto.INT16: torch.int16, TensorProto.INT8: torch.int8,
              TensorProto.UINT8: torch.uint8, TensorProto.BOOL: torch.bool}
        if to not in dt and to not in floats:
            raise OnnxImportError(f"{self.where}: Cast to ONNX type {to} is not supported")
        return _Val(ins[0].example.to(dt.get(to, torch.float32)))

    # pooling and reductions

    def op_MaxPool(self, node, a, ins):
        return self.pool(node, a, ins, F.max_pool2d)

    def op_AveragePool(self, node, a, ins):
        return self.pool(node, a, ins, F.avg_pool2d)

    def pool(self, node, a, ins, fn):
        x = self.signal(ins)
        k = tuple(a["kernel_shape"])
        if len(k) != 2 or x.example.ndim != 4:
            raise OnnxImportError(f"{self.where}: only 2-D pooling on (N, C, H, W) is supported")
        stride = tuple(a.get("strides", (1, 1)))
        dil = tuple(a.get("dilations", (1, 1)))
        top, left, bottom, right = self.pads(a, x.example.shape[2:], k, stride, dil)
        if (top, left) != (bottom, right):
            raise OnnxImportError(f"{self.where}: asymmetric pooling pads cannot be mapped")
        ceil = bool(a.get("ceil_mode", 0))
        if fn is F.max_pool2d:
            if len(node.output) > 1 and node.output[1]:
                raise OnnxImportError(f"{self.where}: returns indices; cannot be mapped")
            return self.call(F.max_pool2d, x, k, stride, (top, left), dil, ceil)
        if dil != (1, 1):
            raise OnnxImportError(f"{self.where}: dilated average pooling is not supported")
        return self.call(F.avg_pool2d, x, k, stride, (top, left), ceil,
                         bool(a.get("count_include_pad", 0)))

    def op_GlobalAveragePool(self, node, a, ins):
        return self.call(F.adaptive_avg_pool2d, self.signal(ins, rank=4), 1)

    def op_GlobalMaxPool(self, node, a, ins):
        return self.call(F.adaptive_max_pool2d, self.signal(ins, rank=4), 1)

    def axes(self, a, ins, name="axes") -> list[int] | None:
        if name in a:
            return list(a[name])
        if len(ins) > 1 and ins[1] is not None:
            return self.ints(ins[1], name)
        return None

    def reduce(self, node, a, ins, fn):
        axes = self.axes(a, ins) or None  # an empty axes input is no axes
        keep = bool(a.get("keepdims", 1))
        if axes is None:
            if a.get("noop_with_empty_axes", 0):
                return ins[0]
            axes = list(range(ins[0].example.ndim))
        return self.call(fn, ins[0], tuple(axes), keep)

    def op_ReduceMean(self, node, a, ins):
        return self.reduce(node, a, ins, torch.mean)

    def op_ReduceSum(self, node, a, ins):
        return self.reduce(node, a, ins, torch.sum)

    def op_ReduceMax(self, node, a, ins):
        return self.reduce(node, a, ins, torch.amax)

    def softmax(self, node, a, ins, fn):
        x = ins[0]
        nd = x.example.ndim
        axis = int(a.get("axis", -1 if self.opset >= 13 else 1)) % nd
        if self.opset < 13 and axis != nd - 1:
            raise OnnxImportError(f"{self.where}: opset {self.opset} softmax over dims "
                                  f"{axis}.. (flattened) is not supported; export with opset >= 13")
        return self.call(fn, x, axis)

    def op_Softmax(self, node, a, ins):
        return self.softmax(node, a, ins, torch.softmax)

    def op_LogSoftmax(self, node, a, ins):
        return self.softmax(node, a, ins, torch.log_softmax)

    def op_LRN(self, node, a, ins):
        if int(a["size"]) % 2 == 0:  # ONNX centres an even window differently from torch
            raise OnnxImportError(f"{self.where}: LRN with an even size {a['size']} is not "
                                  "supported (onnxruntime refuses it too)")
        return self.call(F.local_response_norm, self.signal(ins), int(a["size"]),
                         float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)),
                         float(a.get("bias", 1.0)))

    # data movement

    def op_Flatten(self, node, a, ins):
        x = ins[0]
        axis = int(a.get("axis", 1))
        axis = axis + x.example.ndim if axis < 0 else axis  # axis = rank is allowed
        if not x.is_signal:
            return _Val(x.example.reshape(int(np.prod(x.example.shape[:axis])), -1))
        if axis != 1:
            raise OnnxImportError(f"{self.where}: Flatten with axis {axis} merges the batch "
                                  "dimension with others; only axis=1 can be mapped")
        return self.call(torch.flatten, x, 1)

    def op_Reshape(self, node, a, ins):
        x = ins[0]
        target = self.ints(ins[1], "shape")
        allow0 = bool(a.get("allowzero", 0))
        shape = [x.example.shape[i] if t == 0 and not allow0 else t for i, t in enumerate(target)]
        if not x.is_signal:
            return _Val(x.example.reshape(shape))
        out = x.example.reshape(shape)
        if out.ndim == 0 or out.shape[0] != x.example.shape[0]:
            raise OnnxImportError(f"{self.where}: reshapes {tuple(x.example.shape)} to "
                                  f"{tuple(out.shape)}, which moves the batch dimension; only "
                                  "reshapes that keep the batch first can be mapped")
        return self.call(torch.reshape, x, (-1, *out.shape[1:]))

    def op_Transpose(self, node, a, ins):
        perm = list(a.get("perm", range(ins[0].example.ndim)[::-1]))
        if ins[0].is_signal and perm[0] != 0:
            raise OnnxImportError(f"{self.where}: permutation {perm} moves the batch dimension")
        return self.call(torch.permute, ins[0], perm)

    def op_Squeeze(self, node, a, ins):
        axes = self.axes(a, ins)
        x = ins[0]
        if axes is None:
            axes = [i for i, s in enumerate(x.example.shape) if s == 1 and (i or not x.is_signal)]
        axes = tuple(sorted(i % x.example.ndim for i in axes))
        if x.is_signal and 0 in axes:
            raise OnnxImportError(f"{self.where}: squeezes the batch dimension")
        return self.call(torch.squeeze, x, axes)

    def op_Unsqueeze(self, node, a, ins):
        axes = self.axes(a, ins)
        y = ins[0]
        nd = y.example.ndim + len(axes)
        for ax in sorted(i % nd for i in axes):
            if y.is_signal and ax == 0:
                raise OnnxImportError(f"{self.where}: inserts a dimension before the batch")
            y = self.call(torch.unsqueeze, y, ax)
        return y

    def op_Concat(self, node, a, ins):
        axis = int(a["axis"])
        if any(v.is_signal for v in ins) and axis % ins[0].example.ndim == 0:
            raise OnnxImportError(f"{self.where}: concatenates along the batch dimension")
        return self.call(torch.cat, list(ins), axis)

    def op_Split(self, node, a, ins):
        x = ins[0]
        axis = int(a.get("axis", 0))
        sizes = list(a["split"]) if "split" in a else (
            self.ints(ins[1], "split") if len(ins) > 1 and ins[1] is not None else None)
        n = len(node.output)
        if x.is_signal and axis % x.example.ndim == 0:
            raise OnnxImportError(f"{self.where}: splits the batch dimension")
        if sizes is None:
            size = x.example.shape[axis]
            sizes = [-(-size // n)] * (n - 1)
            sizes.append(size - sum(sizes))
        parts = self.call(torch.split, x, sizes, axis)
        return [self.item(parts, i) for i in range(n)]

    def item(self, parts: _Val, i: int) -> _Val:
        if not parts.is_signal:
            return _Val(parts.example[i])
        return _Val(parts.example[i], self.graph.call_function(operator.getitem, (parts.node, i)))

    def op_Slice(self, node, a, ins):
        x = ins[0]
        if self.opset < 10:
            starts, ends = list(a["starts"]), list(a["ends"])
            axes, steps = list(a.get("axes", range(len(starts)))), [1] * len(starts)
        else:
            starts, ends = self.ints(ins[1], "starts"), self.ints(ins[2], "ends")
            axes = self.ints(ins[3], "axes") if len(ins) > 3 and ins[3] is not None else list(
                range(len(starts)))
            steps = self.ints(ins[4], "steps") if len(ins) > 4 and ins[4] is not None else [1] * len(
                starts)
        nd = x.example.ndim
        idx = [slice(None)] * nd
        big = 2 ** 62
        for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
            ax %= nd
            if x.is_signal and ax == 0:
                raise OnnxImportError(f"{self.where}: slices the batch dimension")
            idx[ax] = slice(s, None if abs(e) >= big else e, st)
        if any(st < 0 for st in steps):
            raise OnnxImportError(f"{self.where}: negative slice steps are not supported")
        return self.call(operator.getitem, x, tuple(idx))

    def op_Gather(self, node, a, ins):
        x, idx = ins[0], self.const(ins[1], "indices")
        axis = int(a.get("axis", 0)) % x.example.ndim
        if not x.is_signal:
            return _Val(torch.as_tensor(np.asarray(np.take(x.example.numpy(), idx.numpy(),
                                                           axis=axis))))
        if axis == 0:
            raise OnnxImportError(f"{self.where}: gathers along the batch dimension")
        if idx.ndim == 0:
            return self.call(torch.select, x, axis, int(idx) % x.example.shape[axis])
        if idx.ndim != 1:
            raise OnnxImportError(f"{self.where}: multi-dimensional gather indices")
        return self.call(torch.index_select, x, axis,
                         _Val(torch.remainder(idx.long(), x.example.shape[axis])))

    def op_Pad(self, node, a, ins):
        x = self.signal(ins)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = list(a["pads"]) if "pads" in a else self.ints(ins[1], "pads")
        value = float(a.get("value", 0.0)) if self.opset < 11 else (
            float(self.const(ins[2], "value")) if len(ins) > 2 and ins[2] is not None else 0.0)
        nd = x.example.ndim
        if len(ins) > 3 and ins[3] is not None:
            raise OnnxImportError(f"{self.where}: Pad with axes is not supported")
        if len(pads) != 2 * nd or pads[0] or pads[nd]:
            raise OnnxImportError(f"{self.where}: pads {pads} pad the batch dimension (or do not "
                                  f"fit a {nd}-D input)")
        first = next((d for d in range(1, nd) if pads[d] or pads[nd + d]), nd)  # dims 1.. padded
        flat = []
        for d in reversed(range(first, nd)):  # F.pad: last dimension first
            flat += [pads[d], pads[nd + d]]
        if mode == "constant":
            return self.call(F.pad, x, tuple(flat), "constant", value)
        mode = {"edge": "replicate", "wrap": "circular"}.get(mode, mode)
        return self.call(F.pad, x, tuple(flat), mode)

    # constants

    def op_Constant(self, node, a, ins):
        from onnx import numpy_helper

        if "value" in a:
            return _Val(_tensor(numpy_helper.to_array(a["value"])))
        for key in ("value_float", "value_int"):
            if key in a:
                return _Val(_tensor(a[key]))
        for key in ("value_floats", "value_ints"):
            if key in a:
                return _Val(_tensor(list(a[key])))
        raise OnnxImportError(f"{self.where}: unsupported Constant attribute {sorted(a)}")

    def op_Shape(self, node, a, ins):
        shape = torch.tensor(list(ins[0].example.shape), dtype=torch.int64)
        start, end = int(a.get("start", 0)), a.get("end")
        return _Val(shape[start:None if end is None else int(end)])

    def op_ConstantOfShape(self, node, a, ins):
        from onnx import numpy_helper

        shape = self.ints(ins[0], "shape")
        value = _tensor(numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32))
        return _Val(torch.full(shape, value.reshape(-1)[0].item(), dtype=value.dtype))

    def op_Range(self, node, a, ins):
        s, e, d = (self.const(v, "bound").item() for v in ins)
        return _Val(torch.arange(s, e, d))

    def op_Expand(self, node, a, ins):
        shape = list(torch.broadcast_shapes(tuple(ins[0].example.shape),
                                            tuple(self.ints(ins[1], "shape"))))  # bidirectional
        if ins[0].is_signal:
            if shape[0] != ins[0].example.shape[0]:
                raise OnnxImportError(f"{self.where}: expands the batch dimension")
            shape[0] = -1
        return self.call(torch.Tensor.expand, ins[0], shape)


# ---- the registry's view -------------------------------------------------------------------------

_CACHE: dict[tuple, tuple[OnnxModel, list]] = {}


def is_onnx(name: str) -> bool:
    """Whether a model name names an ONNX file (ends in .onnx)."""
    return str(name).lower().endswith(".onnx")


def _stamp(p: Path) -> tuple:
    st = p.stat()
    return str(p.resolve()), st.st_size, st.st_mtime_ns


def cached(path: str | Path) -> OnnxModel:
    """load_onnx, once per file version (path, size, mtime of the file and its external data)."""
    p = Path(path)
    try:
        key = _stamp(p)
    except OSError:
        return load_onnx(p)  # raises the readable error
    hit = _CACHE.get(key)
    if hit is not None:
        try:
            fresh = all(_stamp(f) == st for f, st in hit[1])
        except OSError:
            fresh = False
        if fresh:
            return hit[0]
    _CACHE.clear()  # one file at a time: a big network's weights are not kept twice
    net = load_onnx(p)
    _CACHE[key] = (net, [(f, _stamp(f)) for f in net.externals])
    return net


def guess_dataset(input_shape: tuple[int, ...], num_classes: int) -> str | None:
    """The built-in data set whose samples have this shape: MNIST (1, 28, 28), CIFAR-10 (3, 32, 32)."""
    return {((1, 28, 28), 10): "mnist", ((3, 32, 32), 10): "cifar10"}.get(
        (tuple(input_shape), num_classes))


def factorizable(net: OnnxModel) -> tuple[str, ...]:
    """Rank clipping's default layers: every weighted layer with groups = 1 but the last."""
    mods = dict(net.module.named_modules())
    keep = [n for n in net.weighted[:-1] if getattr(mods[n], "groups", 1) == 1]
    return tuple(keep)
