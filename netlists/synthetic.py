"""Hand-made Designs for tests, examples and benchmarks, without a model or the mapper.

``chain_design`` tiles a chain of dense-layer matrices exactly as hardware-model.md section 3
describes (row i of matrix m is produced by output unit A(i // lcols) of matrix m - 1, or by IN),
skipping all-zero tiles and zero-width buses, with each matrix's row signals (who drives each
row, which column blocks use it) as the mapper records them. Convolutions need the real mapper
(mapping.network.map_model); this covers what the exporters and the router need.
"""

import numpy as np

from common.errors import ConfigError
from mapping.design import Design, Net, RowSignals, Unit
from netlists._common import logical_cols


def chain_design(matrices: dict[str, np.ndarray], crossbar_rows: int = 64,
                 crossbar_cols: int = 64, encoding: str = "differential", *,
                 weight_bits: int | None = None, cell_bits: int | None = None) -> Design:
    """Design of a bias-free chain of matrices {name: W (N_m x M_m)} with N_{m+1} == M_m;
    ``weight_bits``/``cell_bits``: the weight precision recorded with it (section 2).

    Nets follow hardware-model section 3 except for one case: a column block with no tile
    (all-zero columns) has no output unit here, so nothing drives the next matrix's rows from
    it and they get no input net. ``mapping.map_model`` keeps such an output unit and its nets,
    because in a real layer the bias still drives those rows."""
    lcols = logical_cols(crossbar_cols, encoding)
    units, nets, weights, signals = [Unit("IN", "input")], [], {}, {}
    built = {"IN"}
    prev: tuple[str, int] | None = None  # (matrix, its lcols) producing this matrix's rows
    for m, W in matrices.items():
        W = np.asarray(W)
        if W.ndim != 2:
            raise ConfigError(f"matrix {m!r} must be 2-D (rows x cols), got shape {W.shape}")
        n_a, n_b = -(-W.shape[0] // crossbar_rows), -(-W.shape[1] // lcols)
        if W.size:  # row i driven by IN or A(i // lcols) of the previous matrix, if built
            n = W.shape[0]
            source = np.zeros(n, dtype=np.int64) if prev is None else np.arange(n) // prev[1]
            producers = (("IN",) if prev is None else
                         tuple(f"{prev[0]}/A{p}" for p in range(int(source.max()) + 1)))
            wired = np.array([p in built for p in producers])[source]  # (N,)
            live = np.stack([W[:, b * lcols:(b + 1) * lcols].any(axis=1) for b in range(n_b)],
                            axis=1) & wired[:, None]
            signals[m] = RowSignals(producers, source, live)
        outs = []
        for b in range(n_b):
            col_nets = []
            for a in range(n_a):
                r0, c0 = a * crossbar_rows, b * lcols
                w = W[r0:r0 + crossbar_rows, c0:c0 + lcols]  # (rows_in_tile, lcols_in_tile)
                if not w.any():
                    continue
                name = f"{m}/T{a}_{b}"
                units.append(Unit(name, "tile", m, (a, b)))
                weights[name] = w.copy()
                live_rows = np.flatnonzero(w.any(axis=1)) + r0  # matrix rows with a wire
                producers = (np.full(live_rows.shape, -1) if prev is None
                             else live_rows // prev[1])
                for p, width in zip(*np.unique(producers, return_counts=True), strict=True):
                    src = "IN" if prev is None else f"{prev[0]}/A{p}"
                    if src in built:  # else the producer's block is empty: bias-only rows
                        nets.append(Net(src, name, int(width), m, "input"))
                col_nets.append(Net(name, f"{m}/A{b}", int(w.any(axis=0).sum()), m, "output"))
            if col_nets:
                outs.append(Unit(f"{m}/A{b}", "output", m, (0, b)))
                nets.extend(col_nets)
        units.extend(outs)
        built.update(u.name for u in outs)
        prev = (m, lcols)
    return Design(units, nets, crossbar_rows, crossbar_cols, encoding, weights, signals,
                  weight_bits, cell_bits)
