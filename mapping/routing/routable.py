"""Routable designs (hardware-model section 5): zero overflow at the technology's track capacity.

    >>> r = route_routable(design, PlaceConfig(), RouteConfig.for_spec(spec))
    >>> r.routing.overflow, r.die_area_um2, r.placement.grid_sites, r.steps

``route_routable`` places and routes; while the routing overflows it grows the placement's
whitespace (5 % -> 15 % -> 30 % -> 60 % -> 100 % of the sites the units need) and tries again.
The die the first zero-overflow routing takes (the site grid x the area of one site: a
crossbar with its periphery, ``site_area_um2``; without it the routed grid's site,
(gcells_per_site x gcell_um)^2, which rounds the side up to whole gcells) is the design's
**routable area**, reported beside its crossbar area (tiles x the same site area). A design
that still overflows at 100 % whitespace is reported as such (``routable`` False): its
overflow is then not a matter of room but of wires no placement of these footprints can take
out of a unit.

``trees`` chooses how the design is laid down:

- False: the configs as given (by default the 'blobs' placement and two-pin output buses:
  the figures of the published LeNet/ConvNet rows);
- True: reduction trees for the output buses (RouteConfig.reduction_trees) on the 'arrays'
  placement (mapping.floorplan) with wide units spanning several sites (site_wires from the
  routing grid);
- None (default): True for big designs, ``wants_trees``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from mapping.design import Design
from mapping.placement import PlaceConfig, Placement, place
from mapping.routing.config import RouteConfig, Routing

TREE_TILES = 1000
"""Tiles from which ``wants_trees`` lays a design down as trees on arrays: the blob placement
makes every broadcast tree of a matrix with many column blocks span the whole matrix."""
GROWTH = (0.05, 0.15, 0.3, 0.6, 1.0)
"""Whitespace fractions tried in turn (those below the configured one are skipped)."""


def wants_trees(design: Design, route_cfg: RouteConfig) -> bool:
    """Big designs: more than TREE_TILES tiles, or an output unit receiving more partial-sum
    wires over two-pin buses than half the tracks its site's boundary holds (then only adders
    in the tiles, a reduction tree, can bring them in)."""
    tiles = sum(u.kind == "tile" for u in design.units)
    if tiles > TREE_TILES:
        return True
    into: dict[str, int] = {}
    for n in design.nets:
        if n.kind == "output":
            into[n.dst] = into.get(n.dst, 0) + n.width
    return max(into.values(), default=0) > 2 * route_cfg.gcells_per_site * route_cfg.capacity


@dataclass
class Routable:
    """The placement and routing ``route_routable`` ended with, and how it got there."""

    placement: Placement
    routing: Routing
    trees: bool
    """Laid down as reduction + broadcast trees on arrays (else the configs as given)."""
    site_area_um2: float
    """Area of one site (a crossbar with its periphery)."""
    grid_pitch_um: float
    """gcells_per_site x gcell_um: the side of one site of the routed grid."""
    steps: list[dict] = field(default_factory=list)
    """Per attempt: whitespace_frac, grid_sites, overflow, place_s, route_s."""
    tiles: int = 0
    """Crossbar tiles of the design."""

    @property
    def routable(self) -> bool:
        return self.routing.overflow == 0

    @property
    def die_area_um2(self) -> float:
        """Sites of the die x the area of a site: the routable area when ``routable``."""
        w, h = self.placement.grid_sites
        return w * h * self.site_area_um2

    @property
    def crossbar_area_um2(self) -> float:
        """Tiles (crossbars) x the area of a site."""
        return self.tiles * self.site_area_um2

    def to_dict(self) -> dict:
        """Figures for routing.json: the die (routable area) beside the crossbar area, and
        the attempts (without their timings, so that the same design gives the same file)."""
        w, h = self.placement.grid_sites
        return {"routable": self.routable, "trees": self.trees, "grid_sites": [w, h],
                "whitespace_frac": self.steps[-1]["whitespace_frac"] if self.steps else None,
                "site_area_um2": self.site_area_um2, "die_area_um2": self.die_area_um2,
                "crossbar_area_um2": self.crossbar_area_um2,
                "die_over_crossbar_area": self.die_area_um2 / max(self.crossbar_area_um2, 1e-12),
                "grid_area_um2": w * h * self.grid_pitch_um ** 2,
                "steps": [{k: v for k, v in st.items() if not k.endswith("_s")}
                          for st in self.steps]}  # timings stay out: the figures repeat


def tree_configs(place_cfg: PlaceConfig, route_cfg: RouteConfig) -> tuple[PlaceConfig,
                                                                           RouteConfig]:
    """The configs for laying a design down as trees on arrays."""
    site_wires = 4 * route_cfg.gcells_per_site * route_cfg.capacity
    return (replace(place_cfg, layout="arrays", site_wires=site_wires),
            replace(route_cfg, reduction_trees=True))


def route_routable(design: Design, place_cfg: PlaceConfig | None = None,
                   route_cfg: RouteConfig | None = None, *, trees: bool | None = None,
                   site_area_um2: float | None = None,
                   growth: tuple[float, ...] = GROWTH) -> Routable:
    """Place and route ``design``, growing the whitespace while the routing overflows; see
    the module docstring."""
    from mapping.routing import route

    place_cfg = PlaceConfig() if place_cfg is None else place_cfg
    route_cfg = RouteConfig() if route_cfg is None else route_cfg
    if trees is None:
        trees = wants_trees(design, route_cfg)
    if trees:
        place_cfg, route_cfg = tree_configs(place_cfg, route_cfg)
    fracs = [place_cfg.whitespace_frac] + [f for f in growth if f > place_cfg.whitespace_frac]
    steps, best = [], None
    for ws in fracs:
        t0 = time.perf_counter()
        pl = place(design, replace(place_cfg, whitespace_frac=ws))
        t1 = time.perf_counter()
        rt = route(design, pl, route_cfg)
        steps.append({"whitespace_frac": ws, "grid_sites": list(pl.grid_sites),
                      "overflow": rt.overflow, "place_s": round(t1 - t0, 2),
                      "route_s": round(time.perf_counter() - t1, 2)})
        if best is None or rt.overflow < best[1].overflow:
            best = (pl, rt)
        if rt.overflow == 0:
            break
    pitch = route_cfg.gcells_per_site * route_cfg.gcell_um
    site = site_area_um2 if site_area_um2 is not None else pitch ** 2
    tiles = sum(u.kind == "tile" for u in design.units)
    return Routable(best[0], best[1], bool(trees), site, pitch, steps, tiles)
