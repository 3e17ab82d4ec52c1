"""Command-line options built from the scheme configs: each config field is one option, listed
once with its help and the schemes that take it; a scheme rejects the options it does not have.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .base import REGISTRY, SchemeConfig

__all__ = ["CALIB_WINDOWS", "add_scheme_options", "scheme_config", "option_flags"]

# held-out 512-token windows an LM calibrates on by default: 32 take block-sequential GPTQ W4 from
# 33.14 (8 windows) to 30.22 at 4 k and fit the report's budget (docs/evaluation.md)
CALIB_WINDOWS = 32
_DEST = "scheme_opt_"


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def option_flags() -> dict[str, tuple[str, dict[str, dataclasses.Field]]]:
    """flag -> (field name, {scheme name: field}) over every registered config."""
    out: dict[str, tuple[str, dict[str, dataclasses.Field]]] = {}
    for scheme in REGISTRY.values():
        for f in dataclasses.fields(scheme.config):
            name, owners = out.setdefault(_flag(f), (f.name, {}))
            if name != f.name:
                raise TypeError(f"{_flag(f)} names two fields: {name} and {f.name}")
            owners[scheme.name] = f
    return out


_TRUE, _FALSE = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


class _OnOff(argparse.Action):
    """A bool option: ``--x``, ``--x on|off`` (also true/false, yes/no, 1/0) or ``--no-x``."""

    def __init__(self, option_strings, dest, **kw):
        flags = list(option_strings)
        flags += ["--no-" + f[2:] for f in option_strings if f.startswith("--")]
        super().__init__(flags, dest, nargs="?", metavar="on|off", **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string and option_string.startswith("--no-"):
            if values is not None:
                parser.error(f"{option_string} takes no value")
            setattr(namespace, self.dest, False)
            return
        if values is None or values.lower() in _TRUE:
            setattr(namespace, self.dest, True)
        elif values.lower() in _FALSE:
            setattr(namespace, self.dest, False)
        else:
            parser.error(f"{option_string} takes on or off, not {values!r}")


def _kind(f: dataclasses.Field):
    t = str(f.type)
    for name, kind in (("bool", bool), ("float", float), ("int", int), ("str", str)):
        if name in t:
            return kind
    raise TypeError(f"option {f.name} has a type the command line cannot parse: {t}")


def add_scheme_options(parser: argparse.ArgumentParser) -> None:
    """One argument per scheme option (default None: an option is applied only when given)."""
    group = parser.add_argument_group("scheme options (each scheme takes only its own)")
    for flag, (name, owners) in option_flags().items():
        first = next(iter(owners.values()))
        kind = _kind(first)
        by_help: dict[str, list[str]] = {}  # the same help once, with every scheme it serves
        for s, f in owners.items():
            by_help.setdefault(f.metadata.get("help", ""), []).append(s)
        text = "; ".join(f"{h} ({', '.join(ss)})" for h, ss in by_help.items())
        defaults = {repr(f.default) if f.default is not None else "none" for f in owners.values()}
        text += f"; default {', '.join(sorted(defaults))}"
        kw: dict[str, Any] = {"dest": _DEST + name, "default": None, "help": text}
        if kind is not bool:
            kw["metavar"] = name.upper()
        if kind is bool:
            kw["action"] = _OnOff
        else:
            kw["type"] = kind
            if first.metadata.get("choices"):
                kw["choices"] = first.metadata["choices"]
        group.add_argument(flag, **kw)


def scheme_config(args: argparse.Namespace) -> SchemeConfig:
    """The config of ``args.scheme`` from the options given; an option the scheme does not take
    is an error naming it and the scheme's own options."""
    if args.scheme not in REGISTRY:
        raise ValueError(f"--scheme must be one of {', '.join(REGISTRY)}, not {args.scheme!r}")
    scheme = REGISTRY[args.scheme]
    own = {f.name for f in dataclasses.fields(scheme.config)}
    given, foreign = {}, []
    for flag, (name, _owners) in option_flags().items():
        value = getattr(args, _DEST + name, None)
        if value is None:
            continue
        if name in own:
            given[name] = value
        else:
            foreign.append(flag)
    if foreign:
        takes = ", ".join(_flag(f) for f in dataclasses.fields(scheme.config)) or "none"
        raise ValueError(
            f"{', '.join(foreign)}: not an option of scheme {scheme.name} (its options: {takes})"
        )
    return scheme.config(**given)
