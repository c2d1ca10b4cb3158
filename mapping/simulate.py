"""The functional simulation of a mapped design: the chip, not the model.

    >>> sim = CrossbarSimulator(mapped_network)          # or mapped_network.simulator(device)
    >>> y = sim(x)                                       # == model.eval()(x) for an ideal device

The captured graph (``mapping.capture``) is evaluated in dataflow order, in float64 on CPU:

- A weighted op is evaluated by its matrices' built tiles only (``devices.TileBank``; im2col
  for a conv, one matrix per group for a grouped conv). Its input is *assembled from the
  wires*: row r of a matrix reads the output column that the mapping says drives it
  (``Matrix.inputs[row_input[r]]``, column ``row_source[r]``: the same arrays the input nets and
  ``Design.row_signals`` are built from), at the stream position the capture recorded. A wrong
  row source reads another column's signal, so equality with PyTorch checks the interconnect.
- Output units add the bias (with a folded batch norm) and apply the captured periphery
  operations (activation, pooling, residual add, concatenation, reshape, norms, ...) with the
  model's own functions on float64 copies of its periphery modules; a folded batch norm is the
  identity here.
Device effects (``DeviceModel``, mapping/devices.py) are drawn once per simulator (one chip),
matrix by matrix in mapping order, from generators seeded with ``device.seed`` (one for the
variation, one for the stuck-at faults); read noise from a third one, so that every call reads
the same chip anew. A device with a DAC or an ADC is calibrated on a calibration batch
(``calibration=`` or ``calibrate(x)``; else on the first batch it evaluates): the batch runs
through the chip in dataflow order and each matrix sets its input range and its bit lines'
ranges from what it sees, before quantizing with them.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.node import map_aggregate, map_arg

from common.errors import ConfigError
from mapping.capture import Capture, WeightedOp, execute
from mapping.devices import FAULT_SEED, READ_SEED, Circuit, DeviceModel, TileBank, program
from mapping.extract import Matrix


def stack_banks(banks: list[TileBank]) -> TileBank:
    """The tiles of g same-shaped matrices as one bank of a block-diagonal matrix whose group i
    occupies rows [i*A*rows, (i+1)*A*rows) and columns [i*B*lcols, (i+1)*B*lcols) (each group
    padded to whole tiles); no tile holds weights of two groups."""
    (na, nb) = banks[0].grid
    _, _, rows, lcols = banks[0].g.shape
    g = len(banks)
    circuit = banks[0].circuit
    if circuit is not None:  # one bank: one DAC range over the stacked input, one factor per tile
        circuit = Circuit(circuit.encoding, torch.cat([b.circuit.factor for b in banks]),
                          circuit.dac_bits, circuit.adc_bits, circuit.read_noise_sigma,
                          circuit.compute_dtype, read_gen=circuit.read_gen)
    return TileBank(
        (g * na * rows, g * nb * lcols), (g * na, g * nb),
        torch.cat([b.a + i * na for i, b in enumerate(banks)]),
        torch.cat([b.b + i * nb for i, b in enumerate(banks)]),
        torch.cat([b.g for b in banks]),
        None if banks[0].ref is None else torch.cat([b.ref for b in banks]),
        torch.cat([b.col_live for b in banks]), circuit)


class _OpPlan:
    """How one weighted op reads its input from the units' outputs and which tiles compute it."""

    def __init__(self, op: WeightedOp, cap: Capture, sources: dict[str, Matrix],
                 banks: list[TileBank]):
        self.op = op
        self.shape = op.gather.shape
        self.bank = banks[0] if len(banks) == 1 else stack_banks(banks)
        self.group_shape = (banks[0].shape, banks[0].grid, banks[0].g.shape[2:])
        self.bias = None if op.bias is None else torch.as_tensor(op.bias, dtype=torch.float64)
        # the column each input channel / feature reads, from the mapping's row sources
        if op.kind == "conv":
            cg, k = self.shape[0] // op.groups, op.kernel[0] * op.kernel[1]
            chan = [self._cols(sources[name], np.arange(cg) * k, cap) for name in op.matrices]
            row_col = np.concatenate(chan)  # (C,)
            elem_row = np.arange(int(np.prod(self.shape))) // (self.shape[1] * self.shape[2])
        else:
            row_col = self._cols(sources[op.matrices[0]], np.arange(self.shape[-1]), cap)
            elem_row = np.arange(int(np.prod(self.shape))) % self.shape[-1]
        col = row_col[elem_row]  # (numel,) the column each element is read from
        value, pos = op.gather.value, op.gather.pos
        self.reads = []  # (value node, element indices of the input, flat indices in the value)
        for v in np.unique(value[value >= 0]):
            sel = np.nonzero(value == v)[0]
            val = cap.values[v]
            idx = val.locate(col[sel], pos[sel])
            self.reads.append((val.node, torch.as_tensor(sel), torch.as_tensor(idx)))

    @staticmethod
    def _cols(m: Matrix, rows: np.ndarray, cap: Capture) -> np.ndarray:
        """Global column driving each row of ``m`` (the mapping's producer and row source)."""
        base = np.array([0 if p is None else cap.col0[p] for p in m.inputs], dtype=np.int64)
        return base[m.row_input[rows]] + m.row_source[rows]

    def __call__(self, env: dict, batch: int) -> torch.Tensor:
        x = torch.zeros(batch, int(np.prod(self.shape)), dtype=torch.float64)  # zero constants
        for node, sel, idx in self.reads:
            x[:, sel] = env[node].reshape(batch, -1)[:, idx].to(torch.float64)
        x = x.view(batch, *self.shape)
        op = self.op
        if op.kind == "linear":
            n, m = x.shape[-1], op.n_out
            y = self.bank.matmul(x.reshape(-1, n)).reshape(*x.shape[:-1], m)
            return y if self.bias is None else y + self.bias
        if any(op.pad):
            x = F.pad(x, op.pad, mode=op.padding_mode)
        (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
        ho = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
        wo = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
        cols = F.unfold(x, op.kernel, dilation=op.dilation, stride=op.stride)  # (B, C*kh*kw, L)
        fo, g = op.n_out, op.groups
        if g == 1:
            y = self.bank.matmul(cols.transpose(1, 2).reshape(-1, cols.shape[1]))  # (B*L, F)
        else:
            (ng, mg), (na, nb), (rows, lcols) = self.group_shape
            xg = cols.view(batch, g, ng, ho * wo).permute(0, 3, 1, 2)  # (B, L, g, Ng)
            xg = F.pad(xg, (0, na * rows - ng)).reshape(-1, g * na * rows)
            y = self.bank.matmul(xg).view(-1, g, nb * lcols)[:, :, :mg].reshape(-1, fo)
        y = y.view(batch, ho * wo, fo).transpose(1, 2).reshape(batch, fo, ho, wo)
        return y if self.bias is None else y + self.bias.view(1, fo, 1, 1)


class CrossbarSimulator(nn.Module):
    """The mapped design computed tile by tile and unit by unit (see the module docstring).

    ``net``: a MappedNetwork from ``map_model``; ``device``: optional DeviceModel (None = ideal).
    ``calibration``: a batch (model input) that calibrates the DAC/ADC ranges of ``device``.
    ``compute_dtype``: of the crossbar products of a non-ideal chip (float32 is about twice as
    fast; the ideal chip always computes in float64).
    ``matrices``: the names of the matrices ``device`` applies to (None: all); the others are
    programmed ideal (exact, or quantized when sliced): which layers a device hurts.
    ``banks``: matrix name -> its programmed TileBank (built tiles only).
    """

    def __init__(self, net, device: DeviceModel | None = None, calibration: torch.Tensor | None = None,
                 compute_dtype: torch.dtype = torch.float64, matrices=None):
        super().__init__()
        cap: Capture = net.capture
        names = [mm.name for mm in net.matrices]
        if matrices is not None:
            if isinstance(matrices, str):
                matrices = [matrices]
            unknown = sorted(set(matrices) - set(names))
            if unknown:
                raise ConfigError(f"no matrix named {', '.join(map(repr, unknown))} in this "
                                  f"design; its matrices: {', '.join(names)}")
        gen = torch.Generator().manual_seed(device.seed) if device is not None else None
        faults = torch.Generator().manual_seed(device.seed + FAULT_SEED) if device is not None else None
        self.device = device
        self.banks = {mm.name: program(mm, net.spec.encoding,
                                       device if matrices is None or mm.name in matrices else None,
                                       gen, spec=net.spec, compute_dtype=compute_dtype,
                                       fault_gen=faults)
                      for mm in net.matrices}
        self.capture = cap
        self.plans = {op.node: _OpPlan(op, cap, net.sources, [self.banks[n] for n in op.matrices])
                      for op in cap.ops}
        circuits = [p.bank.circuit for p in self.plans.values() if p.bank.circuit is not None]
        if circuits:  # one read-noise sequence for the chip, apart from its programming draws
            read_gen = torch.Generator().manual_seed(device.seed + READ_SEED if device else READ_SEED)
            for c in circuits:
                c.read_gen = read_gen
        self._circuits = circuits
        self._schedule()
        if calibration is not None:
            self.calibrate(calibration)

    @property
    def calibrated(self) -> bool:
        return all(c.calibrated for c in self._circuits)

    def calibrate(self, x: torch.Tensor) -> "CrossbarSimulator":
        """Set the DAC range of every matrix and the ADC range of every bit line from the batch
        ``x`` (model inputs) as it flows through this chip; returns self."""
        for c in self._circuits:
            c.calibrating = True
            c.dac_range = c.adc_lo = c.adc_hi = None
        try:
            self(x)
        finally:
            for c in self._circuits:
                c.calibrating = False
        return self

    def _schedule(self) -> None:
        """The nodes the output needs (a weighted op needs the values its rows read, not the
        model's wiring to it), and after which node each value can be dropped."""
        graph, cap = self.capture.graph, self.capture
        nodes = list(graph.nodes)
        out = nodes[-1]
        deps = {}
        for n in nodes:
            if n.name in self.plans:
                deps[n] = sorted({r[0] for r in self.plans[n.name].reads})
            elif n.name in cap.folded:
                deps[n] = [n.args[0].name]
            else:
                deps[n] = [a.name for a in n.all_input_nodes]
        by_name = {n.name: n for n in nodes}
        needed, stack = set(), [out]
        while stack:
            n = stack.pop()
            if n.name in needed:
                continue
            needed.add(n.name)
            stack.extend(by_name[d] for d in deps[n])
        self.order = [n for n in nodes if n.name in needed]
        last = {}
        for i, n in enumerate(self.order):
            for d in deps[n]:
                last[d] = i
        self.drop = [[d for d in deps[n] if last[d] == i] for i, n in enumerate(self.order)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: a batch shaped like the model's input -> the model's output, in x's dtype."""
        dtype = x.dtype if x.is_floating_point() else torch.float32
        if not self.calibrated and not any(c.calibrating for c in self._circuits):
            self.calibrate(x)  # no calibration batch given: the first batch is one
        root, folded = self.capture.root, self.capture.folded
        env: dict[str, object] = {}
        result = None
        with torch.no_grad():
            for node, drop in zip(self.order, self.drop, strict=True):
                if node.op == "placeholder":
                    val = x.to("cpu", torch.float64)
                elif node.op == "output":
                    result = map_arg(node.args[0], lambda n: env[n.name])
                    break
                elif node.name in self.plans:
                    val = self.plans[node.name](env, x.shape[0])
                elif node.name in folded:
                    val = env[node.args[0].name]
                else:
                    args = map_arg(node.args, lambda n: env[n.name])
                    kwargs = map_arg(node.kwargs, lambda n: env[n.name])
                    val = execute(root, node, args, kwargs)
                env[node.name] = val
                for d in drop:
                    env.pop(d, None)
        return map_aggregate(result, lambda t: t.to(x.device, dtype)
                             if isinstance(t, torch.Tensor) else t)


__all__ = ["CrossbarSimulator", "stack_banks"]
