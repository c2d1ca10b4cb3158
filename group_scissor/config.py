"""The compile configuration: one frozen dataclass per stage, loaded from TOML, overridden by
CLI flags (``--set section.field=value``), saved beside the results.

    cfg = CompileConfig.load("chip.toml", overrides=["clip.tolerance=0.05", "model=lenet"])

TOML layout: top-level keys (schema_version, model, dataset, data_dir, crossbar, encoding,
weight_bits, cell_bits, tech, baseline_checkpoint, formats, distill_weight,
distill_temperature) and one table per stage: [train], [clip_train], [clip], [prune_train],
[prune], [place], [route], [evaluate]. Every command reads
this one schema (``--config FILE``, ``--set section.field=VALUE``, and flags generated from the
fields: group_scissor/flags.py). The technology (cell and periphery areas, gcell size, wire
pitch, routing layers) is defined once, by the ``tech`` file; [route] derives its grid from it.
"""

import collections.abc
import json
import re
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from common.errors import ConfigError
from group_scissor.compress import ClipStageConfig
from group_scissor.distill import DistillConfig
from group_scissor.evaluate import EvaluateConfig
from group_scissor.prune import PruneConfig
from group_scissor.resume import SCHEMA_VERSION
from group_scissor.train import TrainConfig
from mapping.placement import PlaceConfig
from mapping.routing import RouteConfig

FORMATS = ("json", "spice", "verilog")


@dataclass(frozen=True)
class CompileConfig:
    """Every setting of ``group-scissor compile``."""

    model: str = "lenet"
    """Registered model name."""
    dataset: str = "digits"
    """'digits' (embedded, the default), 'mnist' or 'cifar10'."""
    data_dir: str | None = None
    """Folder with the data sets (default: $GROUP_SCISSOR_DATA if set, else ./data, ../shared/datasets)."""
    crossbar: str = "64x64"
    """Crossbar size, ROWSxCOLS."""
    encoding: str = "differential"
    """Signed-weight encoding: differential, offset or unsigned."""
    weight_bits: int | None = None
    """Bits of a weight, sign included, 2..32 (hardware-model section 2): the chip holds each
    matrix's weights as one scale times integers of at most 2**(weight_bits-1) - 1 (the design
    file keeps the trained weights; the simulation and the SPICE export quantize them); None:
    analog weights, one cell each (the paper's setting). Training does not see it."""
    cell_bits: int | None = None
    """Bits one memristor cell holds, 1..32 (needs weight_bits): each weight's magnitude is
    sliced over ceil((weight_bits-1)/cell_bits) crossbars per tile, shifted and added in the
    periphery; crossbars, area and energy count the slices, wires do not. None: one cell holds
    the whole weight."""
    tech: str | None = None
    """A technology preset name (mapping/presets: 'illustrative', 'isaac_32nm') or a TOML/JSON
    file of mapping.spec.Technology fields (cell_area_um2, gcell_um, adc_energy_pj, ...);
    None: the built-in illustrative technology."""
    baseline_checkpoint: str | None = None
    """A trained dense checkpoint to start from; skips the train stage."""
    formats: tuple[str, ...] = FORMATS
    """Netlists to export."""
    distill_weight: float = 0.0
    """Share of the clip and prune stages' loss given to distillation from the dense baseline,
    in [0, 1] (0: off; 0.9 is the usual setting)."""
    distill_temperature: float = 4.0
    """Softmax temperature of that distillation."""
    train: TrainConfig = TrainConfig(epochs=10, batch_size=64, lr=0.01)
    """Dense training."""
    clip_train: TrainConfig = TrainConfig(epochs=10, batch_size=64, lr=0.01)
    """Training during rank clipping."""
    clip: ClipStageConfig = ClipStageConfig(tolerance=0.05, clip_interval=20,
                                            tolerance_ramp_epochs=2, fine_tune_epochs=3)
    """Rank clipping."""
    prune_train: TrainConfig = TrainConfig(epochs=10, batch_size=64, lr=0.01)
    """Training during group connection deletion."""
    prune: PruneConfig = field(default_factory=lambda: PruneConfig(lambda_=0.1, fine_tune_epochs=3))
    """Group connection deletion."""
    place: PlaceConfig = PlaceConfig(method="fast")
    """Placement."""
    route: RouteConfig | None = None
    """Global routing; its gcell grid and track capacity come from the technology (None: all
    defaults; RouteConfig.for_spec). Set gcell_um, wire_pitch_um and routing_layers in the
    ``tech`` file, not here."""
    evaluate: EvaluateConfig = EvaluateConfig()
    """Accuracy under device effects (stage 7-evaluate): run only when device_file is set."""

    def __post_init__(self) -> None:
        from mapping.spec import check_bits

        check_bits(self.weight_bits, self.cell_bits, where="")  # named as settings, not spec fields
        spec = self.spec()  # validates crossbar, encoding and the technology file
        if self.route is None:
            object.__setattr__(self, "route", RouteConfig.for_spec(spec))
        else:
            derived = RouteConfig.for_spec(spec)
            clash = [k for k in TECH_ROUTE_FIELDS
                     if getattr(self.route, k) != getattr(derived, k)]
            if clash:
                raise ConfigError(
                    f"[route] {', '.join(clash)} come from the technology (gcell_um "
                    f"{derived.gcell_um}, wire_pitch_um {derived.wire_pitch_um}, routing_layers "
                    f"{derived.routing_layers} -> gcells_per_site {derived.gcells_per_site}); set "
                    "them in the tech file (tech = FILE) instead of [route]")
        d = DistillConfig("-", self.distill_temperature, self.distill_weight)  # validates both
        object.__setattr__(self, "distill_temperature", d.temperature)  # 4 -> 4.0: one fingerprint
        object.__setattr__(self, "distill_weight", d.weight)
        bad = [f for f in self.formats if f not in FORMATS]
        if bad:
            raise ConfigError(f"unknown netlist format(s) {bad}; choose from {', '.join(FORMATS)}")
        object.__setattr__(self, "formats", tuple(self.formats))

    def spec(self):
        """The mapping.spec.CrossbarSpec of these settings (crossbar, encoding, weight
        precision, technology)."""
        from mapping.spec import CrossbarSpec, Technology

        tech = Technology.load(self.tech) if self.tech is not None else Technology()
        return CrossbarSpec.parse(self.crossbar, encoding=self.encoding, tech=tech,
                                  weight_bits=self.weight_bits, cell_bits=self.cell_bits)

    @property
    def bits(self) -> dict:
        """The weight precision settings that are set (weight_bits, cell_bits): part of the map
        stage's fingerprint (an unsliced run keeps the fingerprint it had before they existed)."""
        return {k: getattr(self, k) for k in BIT_FIELDS if getattr(self, k) is not None}

    def absolute(self) -> "CompileConfig":
        """These settings with every file and folder they name made absolute (against the
        current folder), as a run records them: a run resumed from another folder reads the same
        files. Preset names (tech, device_file), registered models and shipped checkpoint names
        stay as they are."""
        import os

        from models import pretrained

        def file(v: str | None) -> str | None:  # the presets' rule: a suffix or a folder part
            return v if v is None or not (Path(v).suffix or Path(v).name != v) else os.path.abspath(v)

        ckpt = self.baseline_checkpoint
        return replace(
            self, model=os.path.abspath(self.model) if self.model.lower().endswith(".onnx")
            else self.model,
            data_dir=None if self.data_dir is None else os.path.abspath(self.data_dir),
            tech=file(self.tech),
            baseline_checkpoint=ckpt if ckpt is None or pretrained.is_name(ckpt)
            else os.path.abspath(ckpt),
            evaluate=replace(self.evaluate, device_file=file(self.evaluate.device_file)))

    # -- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = json.loads(json.dumps(asdict(self)))
        for s in TRAIN_SECTIONS:
            for k in RESTART_FIELDS:
                d[s].pop(k)
        return {"schema_version": SCHEMA_VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "CompileConfig":
        d = dict(d)
        version = d.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ConfigError(f"these settings are of schema_version {version!r}; this "
                              f"group-scissor reads schema {SCHEMA_VERSION}. Write them anew (see "
                              "the config.toml a compile writes) and re-run with --force.")
        hints, defaults = typing.get_type_hints(cls), cls()
        kw = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            sub = _dataclass_of(hints[f.name])
            if sub is RouteConfig and isinstance(v, dict):
                v = _route(d, v)
            elif sub is not None and isinstance(v, dict):
                v = _build(sub, {**asdict(getattr(defaults, f.name)), **v}, f.name)
            elif sub is not None and v is not None:
                raise ConfigError(f"[{f.name}] is a table of settings, got {v!r}; set its fields, "
                                 f"e.g. --set {f.name}.<field>=VALUE")
            else:
                v = _checked(f.name, v, hints[f.name])
            kw[f.name] = v
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}; known: "
                             f"{', '.join(f.name for f in fields(cls))}")
        return cls(**kw)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides=()) -> "CompileConfig":
        d: dict = {}
        if path is not None:
            p = Path(path)
            if p.is_dir():
                raise ConfigError(f"config file {p} is a directory; pass the TOML file.")
            if not p.is_file():
                raise ConfigError(f"config file {p} does not exist")
            try:
                d = tomllib.loads(p.read_text())
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"config file {p} is not valid TOML: {e}") from None
            except RecursionError:  # tomllib parses nested arrays/tables recursively
                raise ConfigError(f"config file {p} has arrays or tables nested too deeply to read; "
                                  "a compile config needs one level of tables.") from None
        for item in overrides:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. clip.tolerance=0.05")
            target = d
            *parents, leaf = key.strip().split(".")
            for i, part in enumerate(parents):
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise ConfigError(f"--set {item!r}: {'.'.join(parents[:i + 1])} is a single "
                                     "value, not a table of settings")
            try:
                target[leaf] = _parse_value(raw.strip(), _field_type(cls, parents, leaf))
            except RecursionError:
                raise ConfigError(f"--set {key.strip()}=...: the value has arrays or tables nested too "
                                  "deeply to read.") from None
        return cls.from_dict(d)

    def to_toml(self) -> str:
        d = self.to_dict()
        lines = [f"{k} = {_toml(v)}" for k, v in d.items() if not isinstance(v, dict)
                 and v is not None]
        for k, v in d.items():
            if isinstance(v, dict):
                lines += ["", f"[{k}]"] + [f"{kk} = {_toml(vv)}" for kk, vv in v.items()
                                           if vv is not None]
        return "\n".join(lines) + "\n"

    def with_(self, **kw) -> "CompileConfig":
        return replace(self, **kw)


RESTART_FIELDS = ("restart_epoch", "restart_lr", "restart_warmup_epochs")
"""TrainConfig fields the clip and prune stages set from their fine_tune_* settings (one name per
concept): not settable in a train section."""
TRAIN_SECTIONS = ("train", "clip_train", "prune_train")
BIT_FIELDS = ("weight_bits", "cell_bits")
"""Top-level settings of the weight precision (CrossbarSpec.weight_bits / cell_bits)."""
TECH_ROUTE_FIELDS = ("gcells_per_site", "gcell_um", "wire_pitch_um", "routing_layers")
"""RouteConfig fields that the technology fixes (RouteConfig.for_spec): not settable in [route]."""


def _route(top: dict, v: dict) -> RouteConfig:
    """The [route] table over the grid the technology of the top-level settings gives (a field
    the technology fixes is refused by CompileConfig.__post_init__ unless it agrees)."""
    hw = {k: top[k] for k in ("crossbar", "encoding", "tech") if isinstance(top.get(k), str)}
    hw.update({k: top[k] for k in BIT_FIELDS  # the slices size a site: gcells_per_site
               if isinstance(top.get(k), int) and not isinstance(top[k], bool)})
    spec = CompileConfig(**hw).spec()  # bad types: reported later
    known = {f.name for f in fields(RouteConfig)}
    unknown = set(v) - known
    if unknown:
        raise ConfigError(f"[route]: unknown setting(s) {sorted(unknown)}; known: "
                          f"{', '.join(sorted(known - set(TECH_ROUTE_FIELDS)))}")
    hints = typing.get_type_hints(RouteConfig)
    return RouteConfig.for_spec(spec, **{k: _checked(f"route.{k}", x, hints[k])
                                         for k, x in v.items()})


def _dataclass_of(tp):
    for t in typing.get_args(tp) or (tp,):
        if isinstance(t, type) and hasattr(t, "__dataclass_fields__"):
            return t
    return None


def _build(cls, d: dict, section: str):
    known = {f.name for f in fields(cls)} - (set(RESTART_FIELDS) if cls is TrainConfig else set())
    restart = set(d) & set(RESTART_FIELDS) if cls is TrainConfig else set()
    if any(d[k] != getattr(TrainConfig(), k) for k in restart):
        stage = {"clip_train": "clip", "prune_train": "prune"}.get(section, "clip or prune")
        raise ConfigError(f"[{section}] {', '.join(sorted(restart))}: the learning-rate restart "
                          f"is set by {stage}.fine_tune_epochs, fine_tune_lr and "
                          "fine_tune_warmup_epochs")
    d = {k: v for k, v in d.items() if k not in restart}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"[{section}]: unknown setting(s) {sorted(unknown)}; known: "
                         f"{', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _checked(f"{section}.{k}", v, hints[k]) for k, v in d.items()})


def _checked(where: str, v, hint):
    """``v`` as setting ``where`` of declared type ``hint`` takes it (a list or a single string
    for a tuple); ConfigError naming the setting if it cannot. Ranges are the config's to check."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = typing.get_args(hint) if union else (hint,)
    if v is None and type(None) in kinds:
        return v
    origins = {typing.get_origin(t) for t in kinds}
    if tuple in origins:
        if isinstance(v, str):
            return (v,)  # --set prune.layers=fc1 means one layer, not ('f', 'c', '1')
        if isinstance(v, list | tuple):
            return tuple(v)
        raise ConfigError(f"{where} must be a list, e.g. {where.split('.')[-1]} = [...], "
                         f"got {v!r}")
    if isinstance(v, dict):
        if origins & {dict, collections.abc.Mapping}:
            return v
        raise ConfigError(f"{where} is a single value, not a table; got {v!r}")
    if int in kinds and float not in kinds:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{where} must be a whole number, got {v!r}")
    elif float in kinds:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ConfigError(f"{where} must be a number, got {v!r}")
        return float(v)  # 4 and 4.0 are one setting (and one fingerprint)
    elif bool in kinds:
        if not isinstance(v, bool):
            raise ConfigError(f"{where} must be true or false, got {v!r}")
    elif str in kinds and not isinstance(v, str):
        raise ConfigError(f"{where} must be text, got {v!r}")
    return v


def _field_type(cls, parents: list[str], leaf: str):
    """The declared type of setting ``parents.leaf`` (None if unknown: validation names it)."""
    for part in parents:
        hint = typing.get_type_hints(cls).get(part)
        cls = _dataclass_of(hint) if hint is not None else None
        if cls is None:
            return None
    return typing.get_type_hints(cls).get(leaf)


def _parse_value(raw: str, tp=None):
    """A --set value: text for string settings ('0x64' stays a string), a comma list for list
    settings ('conv1,fc1'), NAME=VALUE pairs for per-matrix tables ('*=2e-3,fc1=1e-3'), TOML
    otherwise."""
    args = typing.get_args(tp) or (tp,)
    origins = {typing.get_origin(a) for a in args}
    if tuple in origins and re.fullmatch(r"[\w.*\s-]+(,[\w.*\s-]+)*,?", raw):
        return [x.strip() for x in raw.split(",") if x.strip()]
    if origins & {dict, collections.abc.Mapping} and "=" in raw and not raw.startswith("{"):
        from group_scissor.prune import parse_layer_lambda

        return parse_layer_lambda(raw)
    if str in args and not (raw.startswith("[") or raw == "null"):
        return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'" else raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw  # a bare string
    except RecursionError:
        raise ConfigError(f"setting value {raw[:40]!r}... is nested too deeply") from None


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):  # keys other than bare words (e.g. lambda's "*") need quotes
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)
