"""Command-line flags generated from the settings schema: every setting is defined once.

A command names the top-level settings and the config sections it reads; each field becomes a
flag ``--field-name`` whose help is the field's docstring and whose value is parsed exactly as
``--set section.field=VALUE`` (it is one). A field that two of the command's sections share gets
the section as prefix (``--place-seed``, ``--route-seed``). Every command also takes
``--config FILE`` and ``--set`` over the same sections as ``compile``:

    @settings_command(app, "clip", top=("model", "dataset"), sections=("clip_train", "clip"))
    def clip(cfg: CompileConfig, out: Annotated[Path, typer.Option()] = Path("runs/clip")): ...

The command's own parameters (paths, --resume, --force) stay ordinary typer options.
"""

import ast
import collections.abc
import functools
import inspect
import json
import textwrap
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated

import typer

from common.errors import ConfigError, UserError


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """Attribute docstrings of a dataclass and its bases (the string after each field)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if "__dataclass_fields__" not in vars(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for a, b in zip(body, body[1:], strict=False):
            if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
                    and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)
                    and isinstance(b.value.value, str)):
                docs[a.target.id] = " ".join(b.value.value.split())
    return docs


@dataclass(frozen=True)
class Flag:
    param: str
    """Python parameter name (``opt_`` + the flag's name: unique, and never a keyword)."""
    flag: str
    """``--field-name`` (or ``--section-field``)."""
    key: str
    """The --set key: ``field`` (top level) or ``section.field``."""
    is_bool: bool
    help: str
    metavar: str = "TEXT"


def _metavar(hint) -> str:
    kinds = typing.get_args(hint) or (hint,)
    origins = {typing.get_origin(k) or k for k in kinds}
    names = [n for t, n in ((tuple, "A,B,..."), (collections.abc.Mapping, "NAME=X,..."),
                            (dict, "NAME=X,..."), (float, "FLOAT"),
                            (int, "INT"), (str, "TEXT")) if t in origins]
    return "|".join(names[:2]) or "TEXT"


def _is_bool(hint) -> bool:
    return bool in (typing.get_args(hint) or (hint,))


def flags_for(top: tuple[str, ...], sections: tuple[str, ...], exclude=()) -> list[Flag]:
    """The flags of a command reading top-level settings ``top`` and ``sections``."""
    from group_scissor.config import (
        RESTART_FIELDS,
        TECH_ROUTE_FIELDS,
        TRAIN_SECTIONS,
        CompileConfig,
        _dataclass_of,
    )

    hints = typing.get_type_hints(CompileConfig)
    defaults = CompileConfig()
    docs = field_docs(CompileConfig)
    out = [Flag(f"opt_{name}", "--" + name.replace("_", "-"), name, _is_bool(hints[name]),
                f"{docs.get(name, '')} [default: {_show(getattr(defaults, name))}]",
                _metavar(hints[name]))
           for name in top]
    if "model" in top:  # an ONNX file in place of a registered model: --model FILE.onnx too
        out.append(Flag("opt_onnx", "--onnx", "model", False,
                        "An ONNX file (.onnx) holding the network, instead of a registered "
                        "--model (models/onnx_import.py).", "FILE"))
    names: dict[str, int] = {}
    per_section = {}
    for s in sections:
        cls = _dataclass_of(hints[s])
        skip = set(TECH_ROUTE_FIELDS if s == "route" else RESTART_FIELDS if s in TRAIN_SECTIONS
                   else ())
        per_section[s] = [f for f in fields(cls) if f.name not in skip | set(exclude)]
        for f in per_section[s]:
            names[f.name] = names.get(f.name, 0) + 1
    for s in sections:
        cls = _dataclass_of(hints[s])
        sub_hints, sub_docs, base = typing.get_type_hints(cls), field_docs(cls), getattr(defaults, s)
        for f in per_section[s]:
            name = f.name.rstrip("_")
            flag = f"{s}_{name}" if names[f.name] > 1 or name in top else name
            out.append(Flag(f"opt_{flag}", "--" + flag.replace("_", "-"), f"{s}.{f.name}",
                            _is_bool(sub_hints[f.name]),
                            f"{sub_docs.get(f.name, '')} [default: {_show(getattr(base, f.name))}]",
                            _metavar(sub_hints[f.name])))
    return out


def _show(v) -> str:
    return "none" if v is None else json.dumps(v) if isinstance(v, list | tuple | dict) else str(v)


def _raw(v) -> str:
    """A flag's value as the text of a --set override."""
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def friendly_errors(fn):
    """Turn the project's user errors into ``error: ...`` and exit code 2; any other exception
    is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; finished epochs and stages are kept (re-run to resume).",
                       err=True)
            raise typer.Exit(130) from None

    return wrapper


def settings_command(app: typer.Typer, name: str, top: tuple[str, ...] = (),
                     sections: tuple[str, ...] = (), exclude: tuple[str, ...] = ()):
    """Register ``fn(cfg, **own_options)`` as command ``name``, with --config, --set and one
    flag per setting of ``top`` and ``sections``; ``cfg`` is the CompileConfig they give."""

    def decorate(fn):
        flags = flags_for(top, sections, exclude)
        own = [p for p in inspect.signature(fn).parameters.values() if p.name != "cfg"]
        kw_only = inspect.Parameter.KEYWORD_ONLY
        params = [
            inspect.Parameter("config", kw_only, default=None, annotation=Annotated[
                Path | None, typer.Option(metavar="FILE", help="TOML settings file (the layout "
                                                            "of the "
                                               "config.toml that compile writes).")]),
            inspect.Parameter("set_", kw_only, default=None, annotation=Annotated[
                list[str] | None, typer.Option("--set", metavar="SECTION.FIELD=VALUE",
                                               help="Override one setting, "
                                               "SECTION.FIELD=VALUE (e.g. clip.tolerance=0.05); "
                                               "repeatable. Flags win over --set.")]),
        ]
        for f in flags:
            decl = f"{f.flag}/--no-{f.flag[2:]}" if f.is_bool else f.flag
            tp = bool | None if f.is_bool else str | None
            params.append(inspect.Parameter(f.param, kw_only, default=None, annotation=Annotated[
                tp, typer.Option(decl, help=f.help, show_default=False,
                                 metavar=None if f.is_bool else f.metavar)]))
        params += [p.replace(kind=kw_only) for p in own]
        clash = {p.name for p in own} & {f.param for f in flags}
        assert not clash, f"{name}: options {clash} defined twice"

        def command(**kw):
            from group_scissor.config import CompileConfig

            overrides = list(kw.pop("set_") or [])
            onnx = kw.get("opt_onnx")
            if onnx is not None:
                if kw.get("opt_model") is not None:
                    raise ConfigError("give --model or --onnx, not both")
                if not onnx.lower().endswith(".onnx"):
                    raise ConfigError(f"--onnx takes a .onnx file, got {onnx!r}")
            for f in flags:
                v = kw.pop(f.param)
                if v is not None:
                    overrides.append(f"{f.key}={_raw(v)}")
            return fn(CompileConfig.load(kw.pop("config"), overrides), **kw)

        command.__name__, command.__doc__ = fn.__name__, fn.__doc__
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name)(friendly_errors(command))
        return fn

    return decorate
