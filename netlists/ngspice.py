"""Run a netlist from write_spice through ngspice in batch mode and read the bit-line currents.

Command: ``SPICE_ASCIIRAWFILE=1 ngspice -b -r <out.raw> <deck>`` (operating point, ``.op`` in the
deck); the ASCII raw file holds every node voltage and source current with 16 digits.
A per-tile export (``write_spice(..., per_tile=True)``) runs tile deck by tile deck
(``run_ngspice(top, per_tile=True)``).
"""

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netlists._common import NetlistError
from netlists.conductance import logical_currents

_TILE = re.compile(r"^\* @tile xb(\d+) (\S+) rows=(\d+) bitlines=(\d+)$", re.M)
_ENC = re.compile(r"^\* @encoding (\w+)$", re.M)
_BL = re.compile(r"^i\(v(\d+)(?:s(\d+))?_bl(\d+)\)$")
_FOLDER = re.compile(r"^\* @tiles (.+)$", re.M)
_SLICES = re.compile(r"^\* @slices (\d+) shifts ([\d. ]+)$", re.M)


@dataclass(frozen=True)
class SpiceResult:
    """Operating point of a crossbar netlist."""

    bitline_amps: dict[str, np.ndarray]
    """Tile name -> current out of each physical bit line into virtual ground, (bit lines,) A;
    of a bit-sliced deck (slices, bit lines), slice by slice."""
    encoding: str
    """Encoding of the deck ('differential', 'offset', 'unsigned')."""
    shifts: tuple[float, ...] | None = None
    """A bit-sliced deck's shift of each slice (``* @slices``), None for one crossbar per tile."""

    def logical_amps(self) -> dict[str, np.ndarray]:
        """Tile name -> per-weight-column signal (I+ - I-, I_j - I_ref or I_j), (n,) A; for a
        bit-sliced deck the periphery's shift and add of its slices' signals,
        sum_s shifts[s] * signal_s."""
        out = {t: logical_currents(i, self.encoding) for t, i in self.bitline_amps.items()}
        if self.shifts is None:
            return out
        return {t: np.tensordot(np.asarray(self.shifts), v, axes=1) for t, v in out.items()}


def _read_raw(raw: Path) -> dict[str, float]:
    """ASCII raw file of one operating point -> vector name (lower case) -> value."""
    text = raw.read_text()
    head, sep, values = text.partition("Values:")
    if not sep:
        raise NetlistError(f"ngspice raw file {raw} has no 'Values:' section")
    names = re.findall(r"^\s*\d+\s+(\S+)\s+\w+\s*$", head.split("Variables:", 1)[1], re.M)
    nums = values.split()[1:]  # first token is the point index
    if len(nums) != len(names):
        raise NetlistError(f"ngspice raw file {raw}: {len(names)} variables but {len(nums)} values")
    return dict(zip((n.lower() for n in names), map(float, nums), strict=True))


def _shifts(text: str) -> tuple[float, ...] | None:
    """The ``* @slices K shifts ...`` of a deck (None: one crossbar per tile)."""
    m = _SLICES.search(text)
    if m is None:
        return None
    shifts = tuple(float(x) for x in m[2].split())
    if len(shifts) != int(m[1]):
        raise NetlistError(f"'* @slices {m[1]}' lists {len(shifts)} shifts; write the deck again")
    return shifts


def _simulate(exe: str, deck: Path, timeout_s: float
              ) -> tuple[dict, str, dict[str, float], tuple[float, ...] | None]:
    """One ``ngspice -b`` run: (xb index -> (tile name, bit lines), encoding, raw vectors,
    slice shifts or None)."""
    text = deck.read_text()
    tiles = {int(k): (name, int(cols)) for k, name, _, cols in _TILE.findall(text)}
    enc = _ENC.search(text)
    shifts = _shifts(text)
    if not tiles or enc is None:
        raise NetlistError(f"{deck} has no '* @tile' / '* @encoding' lines; write it with "
                           "netlists.write_spice")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "out.raw"
        try:
            proc = subprocess.run([exe, "-b", "-r", str(raw), str(deck)], capture_output=True,
                                  text=True, timeout=timeout_s,
                                  env={**os.environ, "SPICE_ASCIIRAWFILE": "1"})
        except subprocess.TimeoutExpired as e:
            raise NetlistError(f"ngspice did not finish {deck} in {timeout_s} s; simulate fewer "
                               "tiles or raise timeout_s") from e
        errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "error" in ln.lower()]
        if proc.returncode != 0 or not raw.is_file() or errors:
            tail = "\n".join((errors or (proc.stdout + proc.stderr).splitlines())[-10:])
            raise NetlistError(f"ngspice failed on {deck} (exit {proc.returncode}):\n{tail}")
        return tiles, enc[1], _read_raw(raw), shifts


def run_ngspice(deck: str | os.PathLike, timeout_s: float = 300.0, per_tile: bool = False,
                jobs: int = 1) -> SpiceResult:
    """Simulate ``deck`` (written by write_spice) with ``ngspice -b``; return bit-line currents.

    per_tile: the deck was written with ``write_spice(..., per_tile=True)``; simulate the
    standalone deck of every tile in its ``<stem>.tiles/`` folder instead of the top deck (one
    ngspice run per tile, ``jobs`` at a time; ``timeout_s`` per run). Same result, time linear
    in tiles.
    """
    exe = shutil.which("ngspice")
    if exe is None:
        raise NetlistError("ngspice is not on PATH; install it (apt-get install ngspice)")
    deck = Path(deck)
    if not per_tile:
        tiles, enc, vectors, shifts = _simulate(exe, deck, timeout_s)
        return SpiceResult(_currents(tiles, vectors, shifts), enc, shifts)
    text = deck.read_text()
    folder, enc = _FOLDER.search(text), _ENC.search(text)
    tiles = [int(k) for k, *_ in _TILE.findall(text)]
    if folder is None or enc is None or not tiles:
        raise NetlistError(f"{deck} is not the top deck of a per-tile export; write it with "
                           "write_spice(..., per_tile=True) or run it with per_tile=False")
    decks = [deck.parent / folder[1] / f"xb{k}.sp" for k in tiles]
    missing = [str(d) for d in decks if not d.is_file()]
    if missing:
        raise NetlistError(f"per-tile decks missing: {missing[:3]}; write the deck again")
    if not (isinstance(jobs, int) and jobs >= 1):
        raise NetlistError(f"jobs must be an int >= 1, got {jobs!r}")
    with ThreadPoolExecutor(jobs) as pool:  # each worker waits on its own ngspice process
        runs = list(pool.map(lambda d: _simulate(exe, d, timeout_s), decks))
    amps, shifts = {}, _shifts(text)
    for tile_map, tile_enc, vectors, tile_shifts in runs:
        if tile_enc != enc[1] or tile_shifts != shifts:
            raise NetlistError(f"a per-tile deck's encoding or slices differ from {deck}'s; "
                               "write the decks again")
        amps.update(_currents(tile_map, vectors, shifts))
    return SpiceResult(amps, enc[1], shifts)


def _currents(tiles: dict, vectors: dict[str, float],
              shifts: tuple[float, ...] | None = None) -> dict[str, np.ndarray]:
    """Bit-line currents per tile from the raw vectors, every bit line (of every slice)
    present: (bit lines,) per tile, or (slices, bit lines) for a bit-sliced deck."""
    k = 1 if shifts is None else len(shifts)
    amps = {name: np.full((k, cols), np.nan) for name, cols in tiles.values()}
    for vec, value in vectors.items():
        m = _BL.match(vec)
        if m and int(m[1]) in tiles and (m[2] is None) == (shifts is None):
            j = 0 if m[2] is None else int(m[2])
            if j < k:
                amps[tiles[int(m[1])][0]][j, int(m[3])] = value
    if shifts is None:
        amps = {name: a[0] for name, a in amps.items()}
    missing = [n for n, a in amps.items() if np.isnan(a).any()]
    if missing:
        raise NetlistError(f"ngspice reported no current for some bit lines of {missing[:3]}")
    return amps
