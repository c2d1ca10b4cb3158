"""Dead signals: wires that group deletion left without a use, deleted exactly.

Group deletion zeroes row and column segments of each matrix on its own. Across matrices
(hardware-model section 3: a row of a matrix is a column of its producer) two more kinds of
wire then carry nothing useful, and deleting them cannot change the network's output:

- a producer's **column** whose signal no consumer reads (every row it feeds is zero in every
  consumer), e.g. an fc1 neuron whose fc2 row was deleted, or a rank component of fc1.U whose
  row of fc1.V was deleted;
- a consumer's **rows** fed by a producer column that is all zero with no bias (its signal is
  a constant 0 if the layers between map 0 to 0, as ReLU, pooling and LRN do), e.g. the rows
  of fc1.V behind a deleted column of fc1.U.

Grouped convs are g matrices ``<layer>.g<i>`` like any other: a depthwise channel is one column
of one group matrix, read by the rows (c, ky, kx) of the next layer; a channel that the
depthwise conv reads nowhere (its 9 weights zero) leaves the producer's column unread.

``delete_dead_signals`` applies both rules until nothing changes, masks the weights it zeroes
(``weight_mask``, so fine-tuning keeps them at zero) and checks on random inputs that the
model's output did not move; if it did (a consumer this analysis cannot see, or a layer that
maps 0 elsewhere) it restores the weights and masks and reports that nothing was deleted.

Vectorized per weighted op (one module call): its matrices (1, or the g of a grouped conv) are
one (G, N, M) stack, and every column of the network has one index (``Capture.col0``), so one
pass is a few array operations per op, whatever g is.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.masks import restrict_mask


@dataclass(eq=False)
class _Op:
    """One weighted op: its G matrices as a (G, N, M) stack, and where its rows and columns are
    in the network's column numbering."""

    module: nn.Module
    names: list[str]
    """The G matrix names, group order."""
    col0: int
    """Global column of the op's output 0; matrix k's columns are col0 + k*M .. (M each)."""
    n_out: int
    """G * M."""
    src: np.ndarray
    """(G, N) global column feeding each row; 0 = the network input IN."""

    def stack(self) -> torch.Tensor:
        w, g = self.module.weight, len(self.names)
        return w.reshape(g, w.shape[0] // g, -1).transpose(1, 2)


@torch.no_grad()
def delete_dead_signals(model: nn.Module, input_shape: tuple[int, ...],
                        atol: float = 1e-5) -> dict[str, dict[str, int]]:
    """Zero and mask the dead columns and rows described above. ``input_shape`` without the
    batch dimension (e.g. (1, 28, 28)). Returns {matrix: {'columns': n, 'rows': n}} deleted
    (empty when none, or when the output check failed and everything was restored)."""
    from mapping.capture import capture

    cap = capture(model, input_shape)
    mats = {m.name: m for lay in cap.layers for m in lay.matrices}
    col0 = cap.col0
    ops = []
    total = 1  # column 0 is IN
    for op in cap.ops:
        src = []
        for name in op.matrices:  # the row sources as global columns
            m = mats[name]
            base = np.array([0 if p is None else col0[p] for p in m.inputs], dtype=np.int64)
            src.append(np.where(base[m.row_input] > 0, base[m.row_input] + m.row_source, 0))
        ops.append(_Op(op.module, list(op.matrices), op.col0, op.n_out, np.stack(src)))
        total = max(total, op.col0 + op.n_out)
    has_consumer = np.zeros(total, dtype=bool)  # columns of producers that feed some matrix
    for o in ops:
        for p in {p for n in o.names for p in mats[n].inputs}:
            if p is not None:
                c0, m = col0[p], mats[p].weights.shape[1]
                has_consumer[c0:c0 + m] = True
    # read anyway: a periphery operand (a residual add's input) and a network output; not silent:
    # a column that receives operands (the add's sum is computed there) or has a bias
    read, sum_there = np.zeros(total, dtype=bool), np.zeros(total, dtype=bool)
    opd = cap.operands
    names = np.array([col0[n] for n in opd.names], dtype=np.int64)
    src_ok = opd.src_mat >= 0
    read[names[opd.src_mat[src_ok]] + opd.src_col[src_ok]] = True
    sum_there[names[opd.dst_mat] + opd.dst_col] = True
    for name, cols in cap.outputs.items():
        read[col0[name] + cols] = True
    bias = np.zeros(total, dtype=bool)
    for op in cap.ops:  # op.bias: the module's, or the folded batch norm's
        if op.bias is not None:
            bias[op.col0:op.col0 + op.n_out] = op.bias != 0
    saved = [(o.module.weight.clone(), getattr(o.module, "weight_mask", None)) for o in ops]
    gen = torch.Generator().manual_seed(0)
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    x = torch.randn(8, *input_shape, generator=gen).to(dev, dtype)
    was_training = model.training
    model.eval()
    try:
        before = model(x)
        report: dict[str, dict[str, int]] = {}
        while _sweep(ops, total, has_consumer, read, sum_there, bias, report):
            pass
        if report and not torch.allclose(model(x), before, atol=atol, rtol=1e-4):
            for o, (w, mask) in zip(ops, saved, strict=True):
                o.module.weight.copy_(w)
                if mask is None and hasattr(o.module, "weight_mask"):
                    del o.module._buffers["weight_mask"]
                elif mask is not None:
                    o.module.weight_mask = mask
            warnings.warn("delete_dead_signals: deleting the dead signals moved the model's "
                          "output (a layer between matrices that maps 0 elsewhere, e.g. batch "
                          "norm, or a consumer the mapper cannot see); nothing was deleted",
                          stacklevel=2)
            report = {}
    finally:
        model.train(was_training)
    return report


def _sweep(ops: list[_Op], total: int, has_consumer: np.ndarray, read: np.ndarray,
           sum_there: np.ndarray, bias: np.ndarray, report: dict) -> bool:
    """One pass of both rules over every op, from the weights as they are; True if anything
    was zeroed. (Both rules only add zeros, so the fixed point does not depend on the order.)"""
    live_rows, live_cols = [], np.zeros(total, dtype=bool)
    used = read.copy()
    for o in ops:
        nz = o.stack() != 0  # (G, N, M)
        rows = nz.any(2).cpu().numpy()  # (G, N)
        live_rows.append(rows)
        live_cols[o.col0:o.col0 + o.n_out] = nz.any(1).reshape(-1).cpu().numpy()
        used[o.src[rows]] = True
    dead_cols = live_cols & ~used & has_consumer  # computed, read by nobody
    silent = ~live_cols & ~bias & ~sum_there  # constant 0
    silent[0] = False  # IN
    changed = False
    for o, rows in zip(ops, live_rows, strict=True):
        cols = dead_cols[o.col0:o.col0 + o.n_out].reshape(rows.shape[0], -1)  # (G, M)
        rows = silent[o.src] & rows  # (G, N): rows fed by a constant-0 column
        if not (cols.any() or rows.any()):
            continue
        changed = True
        r, c = torch.as_tensor(rows), torch.as_tensor(cols)
        keep = ~(r.unsqueeze(2) | c.unsqueeze(1))  # (G, N, M)
        restrict_mask(o.module, keep.transpose(1, 2).to(o.module.weight.device))
        n_cols, n_rows = cols.sum(1), rows.sum(1)
        for k in np.flatnonzero(n_cols + n_rows):
            d = report.setdefault(o.names[k], {"columns": 0, "rows": 0})
            d["columns"] += int(n_cols[k])
            d["rows"] += int(n_rows[k])
    return changed
