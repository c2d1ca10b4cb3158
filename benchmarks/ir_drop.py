"""IR drop: the crossbar solver (mapping/irdrop.py) against ngspice and badcrossbar.

    python benchmarks/ir_drop.py                 # writes benchmarks/results/ir_drop.json
    python benchmarks/ir_drop.py --no-lenet --sizes 16,32     # a quick look

1. Single tiles (16x16 .. 128x128) with random conductances in the SpiceConfig window and
   random inputs in [0, v_read], wire resistance 1, 10 and 100 ohm per segment. Reference:
   ngspice on the deck write_spice exports. Max relative error of the bit-line (column)
   currents of the solver (effective conductances, then V @ G_eff), of badcrossbar, of the
   sparse nodal solve, and of the ideal crossbar (r = 0: how large the IR drop is), and the
   time of each.
2. How one deck with wire resistance scales in ngspice with the number of tiles, against one
   deck per tile (write_spice(per_tile=True)).
3. LeNet at 64x64, r_wire = 1 ohm: every tile through the solver (time once per chip, then
   time per batch of inputs), the sparse nodal solve per tile, and the per-tile decks through
   ngspice (files, MB, time); max relative error of the solver against ngspice over all tiles.
"""

import argparse
import logging
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from common.errors import UserError  # noqa: E402
from mapping.irdrop import effective_conductances, nodal_currents, pad_tiles, unpad  # noqa: E402
from netlists import SpiceConfig, run_ngspice, tile_conductances, write_spice  # noqa: E402
from netlists.spice import tile_inputs  # noqa: E402
from netlists.synthetic import chain_design  # noqa: E402


def rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(x - ref) / np.abs(ref)))


def timed(fn, *args, repeat: int = 1, **kw):
    """(result, best wall time of ``repeat`` runs): the machine is shared, the best is the cost."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        best = min(best, time.perf_counter() - t0)
    return out, best


def badcrossbar_solver():
    try:
        import badcrossbar
    except ImportError:
        return None
    logging.getLogger("badcrossbar").setLevel(logging.WARNING)  # it logs every solve at INFO

    def solve(G, v, r):  # applied voltages at the left of the word lines, (rows, examples)
        sol = badcrossbar.compute(v[:, None], 1 / G, r_i=r, node_voltages=False, all_currents=False)
        return np.asarray(sol.currents.output).reshape(-1)  # read at the bottom of the bit lines
    return solve


def model(G, v, r):
    """The solver as the simulation uses it: effective conductances, then one matmul."""
    return (torch.as_tensor(v) @ effective_conductances(G, r)).numpy()


def single_tiles(sizes, resistances, cfg0, rng, tmp: Path, bcb) -> list[dict]:
    rows = []
    for n in sizes:
        w = rng.uniform(0, 1, (n, n))  # unsigned: one cell per weight, every G in the window
        design = chain_design({"m": w}, n, n, "unsigned")
        v = rng.uniform(0, cfg0.v_read_volt, n)
        for r in resistances:
            cfg = SpiceConfig(cfg0.g_min_siemens, cfg0.g_max_siemens, cfg0.v_read_volt, r)
            G = tile_conductances(design, cfg)["m/T0_0"]
            volts = tile_inputs(design, {"m": v}, cfg)["m/T0_0"]
            deck = write_spice(design, tmp / f"t{n}_{r}.sp", inputs={"m": v}, config=cfg)
            ref, t_ng = timed(run_ngspice, deck, timeout_s=3600)
            ref = ref.bitline_amps["m/T0_0"]
            deck.unlink()
            ours, t_model = timed(model, G, volts, r, repeat=3)
            nodal, t_nodal = timed(nodal_currents, G, volts[None], r, repeat=3)
            row = {"size": f"{n}x{n}", "r_wire_ohm": r, "ir_drop_ideal_err": rel_err(volts @ G, ref),
                   "model_err": rel_err(ours, ref), "nodal_err": rel_err(nodal[0], ref),
                   "ngspice_s": round(t_ng, 4), "model_s": round(t_model, 5),
                   "nodal_s": round(t_nodal, 5)}
            if bcb is not None:
                bc, t_bc = timed(bcb, G, volts, r, repeat=3)
                row.update(badcrossbar_err=rel_err(bc, ref), badcrossbar_s=round(t_bc, 5))
            rows.append(row)
            print_row(row)
    return rows


HEAD = (f"{'tile':>8} {'r ohm':>6} | {'ideal err':>9} {'model err':>9} {'badxbar':>9} "
        f"{'nodal err':>9} | {'ngspice s':>9} {'model s':>8} {'badxbar s':>9} {'nodal s':>8}")


def print_row(r: dict) -> None:
    bc = f"{r['badcrossbar_err']:9.1e}" if "badcrossbar_err" in r else f"{'-':>9}"
    bs = f"{r['badcrossbar_s']:9.3f}" if "badcrossbar_s" in r else f"{'-':>9}"
    print(f"{r['size']:>8} {r['r_wire_ohm']:6g} | {r['ir_drop_ideal_err']:9.1e} {r['model_err']:9.1e} "
          f"{bc} {r['nodal_err']:9.1e} | {r['ngspice_s']:9.2f} {r['model_s']:8.4f} {bs} "
          f"{r['nodal_s']:8.4f}", flush=True)


def deck_scaling(counts, cfg, rng, tmp: Path) -> list[dict]:
    """ngspice time of one deck holding k 64x64 tiles vs k per-tile decks."""
    out = []
    for k in counts:
        design = chain_design({"m": rng.uniform(0, 1, (64 * k, 64))}, 64, 64, "unsigned")
        one = write_spice(design, tmp / f"s{k}.sp", config=cfg)
        _, t_one = timed(run_ngspice, one, timeout_s=3600)
        top = write_spice(design, tmp / f"p{k}.sp", config=cfg, per_tile=True)
        _, t_per = timed(run_ngspice, top, timeout_s=3600, per_tile=True)
        out.append({"tiles": k, "single_deck_s": round(t_one, 2), "per_tile_decks_s": round(t_per, 2)})
        print(f"{k:>3} tiles of 64x64, r={cfg.r_wire_ohm:g} ohm: one deck {t_one:7.2f} s, "
              f"per-tile decks {t_per:7.2f} s", flush=True)
    return out


def lenet(cfg: SpiceConfig, rng, tmp: Path, jobs: int, batch: int) -> dict:
    import models
    from mapping import CrossbarSpec, map_model

    design = map_model(models.get("lenet"), CrossbarSpec(64, 64), (1, 28, 28)).design
    names = list(design.tile_weights)
    G = tile_conductances(design, cfg)
    inputs = {n: rng.uniform(0, cfg.v_read_volt, np.shape(w)[0]) for n, w in design.tile_weights.items()}
    volts = tile_inputs(design, inputs, cfg)
    r = cfg.r_wire_ohm

    def solve_all():
        padded, shapes = pad_tiles([G[n] for n in names])
        return dict(zip(names, unpad(effective_conductances(padded, r), shapes), strict=True))

    effective_conductances(G[names[0]], r)  # warm-up
    geff, t_geff = timed(solve_all, repeat=2)
    ours = {n: volts[n] @ geff[n].numpy() for n in names}
    # a batch of inputs per tile (e.g. im2col patches), once the chip is programmed
    xb = {n: torch.as_tensor(rng.uniform(0, cfg.v_read_volt, (batch, G[n].shape[0]))) for n in names}
    _, t_batch = timed(lambda: [xb[n] @ geff[n] for n in names])
    _, t_nodal = timed(lambda: [nodal_currents(G[n], volts[n][None], r) for n in names])
    top, t_write = timed(write_spice, design, tmp / "lenet.sp", inputs=inputs, config=cfg, per_tile=True)
    files = [top, *sorted((tmp / "lenet.tiles").iterdir())]
    mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"LeNet 64x64 ({len(names)} tiles, {design.encoding}), r_wire={r:g} ohm: per-tile decks "
          f"{len(files)} files, {mb:.1f} MB, written in {t_write:.1f} s; running ngspice "
          f"(jobs={jobs})...", flush=True)
    ng, t_ng = timed(run_ngspice, top, timeout_s=3600, per_tile=True, jobs=jobs)
    ref = ng.bitline_amps
    res = {
        "tiles": len(names), "encoding": design.encoding, "r_wire_ohm": r,
        "model_effective_conductances_s": round(t_geff, 3),
        "model_batch": batch, "model_batch_matmul_s": round(t_batch, 4),
        "nodal_per_tile_s": round(t_nodal, 2),
        "deck_files": len(files), "deck_mb": round(mb, 1), "deck_write_s": round(t_write, 2),
        "ngspice_per_tile_s": round(t_ng, 1), "ngspice_jobs": jobs,
        "model_err": max(rel_err(ours[n], ref[n]) for n in names),
        "ir_drop_ideal_err": max(rel_err(volts[n] @ G[n], ref[n]) for n in names),
    }
    print(f"  model: effective conductances of all tiles {t_geff:.2f} s, then {batch} inputs per "
          f"tile {t_batch:.3f} s; max rel err vs ngspice {res['model_err']:.1e} (ideal crossbar: "
          f"{res['ir_drop_ideal_err']:.1e})")
    print(f"  sparse nodal solve per tile: {t_nodal:.1f} s; ngspice per-tile decks: {t_ng:.0f} s")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,32,64,128", help="square tile sizes, comma separated")
    ap.add_argument("--r-wire", default="1,10,100", help="ohm per segment, comma separated")
    ap.add_argument("--scaling", default="1,2,4", help="tiles per deck for the deck-scaling part ('' = skip)")
    ap.add_argument("--no-lenet", action="store_true", help="skip LeNet's whole-network part")
    ap.add_argument("--batch", type=int, default=1000, help="inputs per tile for the LeNet matmul time")
    ap.add_argument("--jobs", type=int, default=1, help="ngspice processes at a time (per-tile decks)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared machine more threads wait on each other)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=ledger.RESULTS,
                    help="folder of the ledgers (default benchmarks/results): a row of ir_drop.json")
    ap.add_argument("--name", help="row name (default: from the sizes and resistances)")
    args = ap.parse_args()
    if shutil.which("ngspice") is None:
        raise UserError("ngspice is not on PATH (scripts/setup.sh installs it); it is the reference")
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    resistances = [float(s) for s in args.r_wire.split(",") if s]
    cfg = SpiceConfig()
    rng = np.random.default_rng(args.seed)
    bcb = badcrossbar_solver()
    if bcb is None:
        print("note: badcrossbar not installed (pip install badcrossbar); its column is skipped")
    res = {"command": " ".join(["python", *sys.argv]),
           "date": datetime.now().isoformat(timespec="seconds"), "machine": machine(),
           "torch_threads": torch.get_num_threads(),
           "config": {"g_min_siemens": cfg.g_min_siemens, "g_max_siemens": cfg.g_max_siemens,
                      "inputs_volt": [0.0, cfg.v_read_volt], "seed": args.seed,
                      "errors": "max over columns of |I - I_ngspice| / |I_ngspice|",
                      "times": "wall seconds; solver, nodal and badcrossbar best of 3, ngspice one run"}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"single tiles, G ~ U[{cfg.g_min_siemens:g}, {cfg.g_max_siemens:g}] S, inputs ~ "
              f"U[0, {cfg.v_read_volt:g}] V; errors relative to ngspice (the baseline)")
        print(HEAD)
        res["single_tiles"] = single_tiles(sizes, resistances, cfg, rng, tmp, bcb)
        counts = [int(s) for s in args.scaling.split(",") if s]
        if counts:
            res["deck_scaling"] = deck_scaling(counts, SpiceConfig(r_wire_ohm=1.0), rng, tmp)
        if not args.no_lenet:
            res["lenet_64x64"] = lenet(SpiceConfig(r_wire_ohm=1.0), rng, tmp, args.jobs, args.batch)
    name = args.name or (f"ir-drop-{args.sizes.replace(',', '-')}-r{args.r_wire.replace(',', '-')}"
                         + ("" if args.no_lenet else "-lenet"))
    config = {**res.pop("config"), "sizes": sizes, "r_wire_ohm": resistances,
              "scaling": args.scaling, "lenet": not args.no_lenet, "batch": args.batch,
              "jobs": args.jobs, "threads": args.threads}
    row = ledger.make_row(name, "crossbar", config, {k: v for k, v in res.items()
                                                     if k not in ("command", "date", "machine")},
                          command=res["command"], date=res["date"], machine=res["machine"])
    ledger.append("ir_drop", row, replace=True, headline_key="crossbar", results=args.results)
    print(f"recorded row {name!r} in {ledger.path('ir_drop', args.results)}")


if __name__ == "__main__":
    guarded(main)
