"""Run a netlist from write_spice through ngspice in batch mode and read the bit-line currents.

Command: ``SPICE_ASCIIRAWFILE=1 ngspice -b -r <out.raw> <deck>`` (operating point, ``.op`` in the
deck); the ASCII raw file holds every node voltage and source current with 16 digits.
"""

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netlists._common import NetlistError
from netlists.conductance import logical_currents

_TILE = re.compile(r"^\* @tile xb(\d+) (\S+) rows=(\d+) bitlines=(\d+)$", re.M)
_ENC = re.compile(r"^\* @encoding (\w+)$", re.M)
_BL = re.compile(r"^i\(v(\d+)_bl(\d+)\)$")


@dataclass(frozen=True)
class SpiceResult:
    """Operating point of a crossbar netlist."""

    bitline_amps: dict[str, np.ndarray]
    """Tile name -> current out of each physical bit line into virtual ground, (bit lines,) A."""
    encoding: str
    """Encoding of the deck ('differential', 'offset', 'unsigned')."""

    def logical_amps(self) -> dict[str, np.ndarray]:
        """Tile name -> per-weight-column signal (I+ - I-, I_j - I_ref or I_j), (n,) A."""
        return {t: logical_currents(i, self.encoding) for t, i in self.bitline_amps.items()}


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


def run_ngspice(deck: str | os.PathLike, timeout_s: float = 300.0) -> SpiceResult:
    """Simulate ``deck`` (written by write_spice) with ``ngspice -b``; return bit-line currents."""
    exe = shutil.which("ngspice")
    if exe is None:
        raise NetlistError("ngspice is not on PATH; install it (apt-get install ngspice)")
    deck = Path(deck)
    text = deck.read_text()
    tiles = {int(k): (name, int(cols)) for k, name, _, cols in _TILE.findall(text)}
    enc = _ENC.search(text)
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
        vectors = _read_raw(raw)
    amps = {name: np.full(cols, np.nan) for name, cols in tiles.values()}
    for vec, value in vectors.items():
        m = _BL.match(vec)
        if m and int(m[1]) in tiles:
            amps[tiles[int(m[1])][0]][int(m[2])] = value
    missing = [n for n, a in amps.items() if np.isnan(a).any()]
    if missing:
        raise NetlistError(f"ngspice reported no current for some bit lines of {missing[:3]}")
    return SpiceResult(amps, enc[1])
