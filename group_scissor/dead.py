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

``delete_dead_signals`` applies both rules until nothing changes, masks the weights it zeroes
(``weight_mask``, so fine-tuning keeps them at zero) and checks on random inputs that the
model's output did not move; if it did (a consumer this analysis cannot see, or a layer that
maps 0 elsewhere) it restores the weights and masks and reports that nothing was deleted.
"""

import warnings

import numpy as np
import torch
from torch import nn

from models.lowrank import layer_matrix
from models.masks import set_mask


@torch.no_grad()
def delete_dead_signals(model: nn.Module, input_shape: tuple[int, ...],
                        atol: float = 1e-5) -> dict[str, dict[str, int]]:
    """Zero and mask the dead columns and rows described above. ``input_shape`` without the
    batch dimension (e.g. (1, 28, 28)). Returns {matrix: {'columns': n, 'rows': n}} deleted
    (empty when none, or when the output check failed and everything was restored)."""
    from mapping.capture import capture

    cap = capture(model, input_shape)
    mats = {m.name: m for lay in cap.layers for m in lay.matrices}
    grouped = sorted({lay.name for lay in cap.layers if lay.groups > 1})
    if grouped:
        warnings.warn(f"delete_dead_signals: grouped convs {grouped} are not supported yet; "
                      "nothing was deleted", stacklevel=2)
        return {}
    consumers: dict[str, list] = {}  # producer -> [(consumer, rows it feeds)]
    for m in mats.values():
        for j, p in enumerate(m.inputs):
            if p is not None:
                consumers.setdefault(p, []).append((m, m.row_input == j))
    # a column that is a periphery operand (a residual add's input) is read; one that receives
    # operands (the add's sum) is not silent when its weights are zero
    ops, names = cap.operands, cap.operands.names
    operand_src = {names[k]: ops.src_col[ops.src_mat == k] for k in np.unique(ops.src_mat)
                   if k >= 0}
    operand_dst = {names[k]: ops.dst_col[ops.dst_mat == k] for k in np.unique(ops.dst_mat)}
    folded = {op.matrices[0]: op.bias for op in cap.ops if op.folded}  # bias with the batch norm
    saved = {n: (m.module.weight.clone(), getattr(m.module, "weight_mask", None))
             for n, m in mats.items()}
    gen = torch.Generator().manual_seed(0)
    dev = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    x = torch.randn(8, *input_shape, generator=gen).to(dev, dtype)
    was_training = model.training
    model.eval()
    try:
        before = model(x)
        report: dict[str, dict[str, int]] = {}
        while _sweep(mats, consumers, report, operand_src, operand_dst, folded):
            pass
        if report and not torch.allclose(model(x), before, atol=atol, rtol=1e-4):
            for n, (w, mask) in saved.items():
                mod = mats[n].module
                mod.weight.copy_(w)
                if mask is None and hasattr(mod, "weight_mask"):
                    del mod._buffers["weight_mask"]
                elif mask is not None:
                    mod.weight_mask = mask
            warnings.warn("delete_dead_signals: deleting the dead signals moved the model's "
                          "output (a layer between matrices that maps 0 elsewhere, e.g. batch "
                          "norm, or a consumer the mapper cannot see); nothing was deleted",
                          stacklevel=2)
            report = {}
    finally:
        model.train(was_training)
    return report


def _sweep(mats: dict, consumers: dict, report: dict, operand_src: dict,
           operand_dst: dict, folded: dict) -> bool:
    """One pass of both rules over every producer; True if anything was zeroed."""
    changed = False
    for pname, cons in consumers.items():
        p = mats[pname]
        pw = layer_matrix(p.module)  # (Np, Mp)
        used = np.zeros(pw.shape[1], dtype=bool)
        used[operand_src.get(pname, [])] = True
        live_rows = [(layer_matrix(c.module) != 0).any(dim=1).cpu().numpy() & sel
                     for c, sel in cons]
        for (c, _), live in zip(cons, live_rows, strict=True):  # live: (N,) rows fed by p
            used[c.row_source[live]] = True
        live_cols = (pw != 0).any(dim=0).cpu().numpy()
        dead_cols = live_cols & ~used  # computed, read by nobody
        if dead_cols.any():
            _zero(p, cols=dead_cols, report=report)
            changed = True
            live_cols &= ~dead_cols
        bias = getattr(p.module, "bias", None)
        bias = folded.get(pname, None if bias is None else bias.detach().cpu().numpy())
        silent = ~live_cols if bias is None else ~live_cols & (bias == 0)
        silent[operand_dst.get(pname, [])] = False  # a sum computed there
        for (c, _), live in zip(cons, live_rows, strict=True):  # rows fed by a constant-0 column
            rows = silent[c.row_source] & live
            if rows.any():
                _zero(c, rows=rows, report=report)
                changed = True
    return changed


def _zero(m, rows: np.ndarray | None = None, cols: np.ndarray | None = None,
          report: dict | None = None) -> None:
    w = layer_matrix(m.module)  # (N, M) view
    keep = torch.ones_like(w)
    if rows is not None:
        keep[torch.as_tensor(rows, device=w.device)] = 0
    if cols is not None:
        keep[:, torch.as_tensor(cols, device=w.device)] = 0
    old = getattr(m.module, "weight_mask", None)
    mask = keep.T if old is None else old.reshape(keep.T.shape) * keep.T
    set_mask(m.module, mask)
    r = report.setdefault(m.name, {"columns": 0, "rows": 0})
    r["columns"] += int(cols.sum()) if cols is not None else 0
    r["rows"] += int(rows.sum()) if rows is not None else 0
