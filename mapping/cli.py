"""``group-scissor map``: map a registered model (optionally a trained checkpoint) onto crossbars.

Register with ``app.command("map")(map_command)``; writes DIR/mapping.json, mapping.csv and
mapping.txt and prints the table.
"""

from pathlib import Path
from typing import Annotated

import typer

from common.errors import ConfigError
from mapping.network import map_model
from mapping.report import format_table, write_reports
from mapping.spec import ENCODINGS, CrossbarSpec, Technology


def load_for_mapping(model: str, checkpoint, crossbar: str, encoding: str, tech):
    """(module, CrossbarSpec, ModelInfo) for the mapping commands: the registered model, loaded
    from ``checkpoint`` if given, and the crossbar spec with its technology file."""
    import models  # lazy: keeps `--help` fast

    technology = Technology.from_file(tech) if tech is not None else Technology()
    spec = CrossbarSpec.parse(crossbar, encoding=encoding, tech=technology)
    try:
        info = models.info(model)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    if checkpoint is None:
        return info.factory(), spec, info
    if not Path(checkpoint).is_file():
        raise ConfigError(f"checkpoint {checkpoint} does not exist")
    from models.checkpoint import load_model

    return load_model(info.name, checkpoint), spec, info


def map_command(
    model: Annotated[str, typer.Option(help="Registered model name, e.g. lenet or convnet.")],
    checkpoint: Annotated[Path | None, typer.Option(
        help="Trained checkpoint to map (low-rank / sparse weights); default: the dense "
             "randomly initialised model.")] = None,
    crossbar: Annotated[str, typer.Option(
        help="Crossbar size ROWSxCOLS, e.g. 64x64, 128x128, 32x128.")] = "64x64",
    encoding: Annotated[str, typer.Option(
        help=f"Signed-weight encoding: {', '.join(ENCODINGS)}.")] = "differential",
    tech: Annotated[Path | None, typer.Option(
        help="TOML/JSON file overriding technology figures (cell_area_um2, adc_area_um2, ...).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("build/map"),
) -> Path:
    """Map MODEL onto crossbars; write mapping.json, mapping.csv and mapping.txt into OUT."""
    net_module, spec, info = load_for_mapping(model, checkpoint, crossbar, encoding, tech)
    net = map_model(net_module, spec, info.input_shape)
    extra = {"model": info.name, "checkpoint": None if checkpoint is None else str(checkpoint)}
    write_reports(net, out, extra)
    typer.echo(format_table(net))
    typer.echo(f"wrote {out / 'mapping.json'}, mapping.csv, mapping.txt")
    return out / "mapping.json"
