"""Benchmarks that measure peak memory run each job in a child process of their own script:
``run(__file__, *args)`` starts ``python SCRIPT --child ARGS`` and returns the JSON object the
child prints last; ``rss_mb()`` is the process's peak resident set so far (ru_maxrss)."""

import json
import resource
import subprocess
import sys


def rss_mb() -> float:
    """Peak RSS of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(script: str, *args: str) -> dict:
    """``python script --child *args`` -> the JSON object on its last line of stdout."""
    out = subprocess.run([sys.executable, script, "--child", *args], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def mapped_figures(net, map_s: float, import_mb: float) -> dict:
    """What a map child reports of a MappedNetwork ``net`` (or its dense baseline)."""
    d = net.design
    return {"crossbars": net.n_crossbars, "cells": net.cells, "wires": d.total_wires,
            "nets": len(d.nets), "units": len(d.units), "map_s": round(map_s, 2),
            "map_peak_mb": round(rss_mb(), 1), "import_mb": round(import_mb, 1)}


def save_design(path: str, design, *extra) -> None:
    """Pickle ``design`` (or the tuple (design, *extra)) for the route child, without its tile
    weights: placement and routing read units and nets only."""
    import pickle

    design.tile_weights = {}
    with open(path, "wb") as f:
        pickle.dump((design, *extra) if extra else design, f)
