"""``group-scissor verify``: recompute the README's paper table from the shipped checkpoints.

For each model with shipped checkpoints (models/pretrained/manifest.json) it recomputes, on the
real test set and with the mapper and router of this installation: the dense, rank-clipped and
group-deleted test accuracy, the cell area (crossbar area of the paper), the crossbar count, the
wires and the routing area against the dense baseline routed with the same settings; and prints
each beside the figure the ledger recorded and the paper's. A figure that differs from the
ledger fails the check: accuracies to the digits the ledger stores, ratios to 1e-4.
"""

import time
from dataclasses import dataclass

PAPER = {"lenet": {"cell_area_ratio": 0.1362, "routing_area_ratio": 0.081},
         "convnet": {"cell_area_ratio": 0.5181, "routing_area_ratio": 0.5206}}
RATIO_TOL = 1e-4


@dataclass
class Check:
    model: str
    figure: str
    recomputed: float
    ledger: float | None
    paper: float | None = None

    @property
    def ok(self) -> bool:
        if self.ledger is None:
            return False
        if "accuracy" in self.figure:  # stored rounded: equal at the stored digits
            digits = len(repr(float(self.ledger)).split(".")[1])
            return round(self.recomputed, digits) == self.ledger
        return abs(self.recomputed - self.ledger) <= RATIO_TOL


def _accuracy(model_name: str, checkpoint: str, data) -> float:
    from group_scissor.train import evaluate
    from models.checkpoint import load_model

    _, acc = evaluate(load_model(model_name, checkpoint).eval(), data.test.x, data.test.y)
    return acc


def verify_model(model_name: str, data_dir=None, log=print) -> list[Check]:
    """The checks of one model's shipped checkpoints (``<model>:dense``, ``:clipped``,
    ``:group-scissor``)."""
    import models
    from group_scissor.data import load_dataset
    from mapping.congestion import routing_area_ratio
    from mapping.network import map_model
    from mapping.placement import PlaceConfig, place
    from mapping.routing import RouteConfig, route
    from mapping.spec import CrossbarSpec
    from models import pretrained
    from models.checkpoint import load_model

    entries = pretrained.manifest()
    info = models.info(model_name)
    data = load_dataset(info.default_dataset, data_dir)
    paper = PAPER.get(model_name, {})
    checks = []

    def led(name, key):
        return entries[name]["ledger"]["metrics"].get(key)

    for variant in ("dense", "clipped", "group-scissor"):
        name = f"{model_name}:{variant}"
        if name not in entries:
            continue
        t = time.perf_counter()
        checks.append(Check(model_name, f"{variant} test accuracy",
                            _accuracy(model_name, name, data), led(name, "test_accuracy")))
        if variant == "dense":
            log(f"  {name}: {time.perf_counter() - t:.1f} s")
            continue
        spec = CrossbarSpec(64, 64, "differential")
        net = map_model(load_model(model_name, name), spec, info.input_shape)
        checks.append(Check(model_name, f"{variant} cell area (% of dense)", net.cell_area_ratio,
                            led(name, "cell_area_ratio"), paper.get("cell_area_ratio")))
        if variant == "group-scissor":
            checks += [
                Check(model_name, "crossbars (% of dense)", net.crossbar_area_ratio,
                      led(name, "crossbar_area_ratio")),
                Check(model_name, "wires (% of dense)",
                      net.design.total_wires / net.baseline.total_wires, led(name, "wire_ratio"))]
            routed = entries[name].get("routed", {})
            if routed:
                rts = [route(d, place(d, PlaceConfig()), RouteConfig.for_spec(spec))
                       for d in (net.design, net.dense_baseline().design)]
                checks.append(Check(model_name, "routing area (% of dense)",
                                    routing_area_ratio(*rts),
                                    routed["metrics"].get("routing_area_ratio"),
                                    paper.get("routing_area_ratio")))
        log(f"  {name}: {time.perf_counter() - t:.1f} s")
    return checks


def table(checks: list[Check]) -> str:
    lines = ["| model | figure | recomputed | ledger | paper | |", "|---|---|---|---|---|---|"]
    for c in checks:
        lines.append(f"| {c.model} | {c.figure} | {100 * c.recomputed:.4f} % | "
                     f"{'-' if c.ledger is None else f'{100 * c.ledger:.4f} %'} | "
                     f"{'-' if c.paper is None else f'{100 * c.paper:.2f} %'} | "
                     f"{'ok' if c.ok else 'DIFFERS'} |")
    return "\n".join(lines)
