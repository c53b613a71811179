"""Command-line flags generated from the settings dataclasses of the trainers.

Each settings field is declared with :func:`setting`, which stores its help text (and, where
the default does not say it, the flag's spelling, ``nargs``, ``type``, ``choices``, ``metavar``
or ``action``) in ``dataclasses.field(metadata=...)``. So a default and its help are written
once, beside the field: :func:`add_settings` turns the fields into argparse options and
:func:`settings_from_args` builds the settings back from the parsed arguments.

Inferred from the default when not given: a bool → ``store_true`` (``store_false`` when the
default is True), an int or float → that ``type``, a tuple/list → ``nargs='+'`` of its
elements' type. A field without a default is a required option.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

__all__ = ["add_settings", "flag_name", "fraction", "setting", "settings_from_args"]

_MISSING = dataclasses.MISSING


def setting(default: Any = _MISSING, *, help: str, flag: str | None = None, factory=_MISSING, **argparse_options):
    """A settings field with its command-line option: ``help`` (required), ``flag`` (default
    ``--field-name``) and any ``argparse.add_argument`` keyword (``nargs``, ``type``, …)."""
    if not help:
        raise ValueError("every setting needs a help text")
    metadata = {"help": help, "flag": flag, "argparse": argparse_options}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def fraction(text: str) -> float:
    """An argparse ``type``: a positive number or fraction (``1/48``)."""
    from fractions import Fraction

    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"got {text!r} — expected a number or a fraction like 1/48") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"got {text!r} — expected a positive ratio")
    return value


def flag_name(f: dataclasses.Field) -> str:
    """The option string of settings field ``f`` (e.g. ``--snr-range``)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _default(f: dataclasses.Field):
    if f.default is not _MISSING:
        return f.default
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return _MISSING


def _options(f: dataclasses.Field) -> dict:
    """The ``add_argument`` keywords of field ``f``: its metadata, completed from its default."""
    # argparse formats help with %: a literal "2 % warm-up" must reach it as "2 %% warm-up"
    options = {"dest": f.name, "help": f.metadata["help"].replace("%", "%%"), **f.metadata.get("argparse", {})}
    default = _default(f)
    if default is _MISSING:
        options["required"] = True
    else:
        options["default"] = default
    if isinstance(default, bool) and "action" not in options:
        options["action"] = "store_false" if default else "store_true"
    if options.get("action") in ("store_true", "store_false"):
        return options
    if default not in (_MISSING, None, [], ()):
        options["help"] += " (default: %(default)s)"
    if isinstance(default, (tuple, list)) and default:
        options.setdefault("nargs", "+")
        options.setdefault("type", type(default[0]))
    elif isinstance(default, (int, float)) and not isinstance(default, bool):
        options.setdefault("type", type(default))
    return options


def add_settings(parser: argparse.ArgumentParser, settings_class, skip: tuple[str, ...] = ()) -> None:
    """Add one option per field of the dataclass ``settings_class`` (those declared with
    :func:`setting`; names in ``skip`` left out) to ``parser``."""
    for f in dataclasses.fields(settings_class):
        if f.name in skip or "help" not in f.metadata:
            continue
        parser.add_argument(flag_name(f), **_options(f))


def settings_from_args(settings_class, args: argparse.Namespace, **overrides):
    """``settings_class(**fields)`` from parsed arguments (``overrides`` win); list values
    become tuples where the field's default is a tuple or None."""
    values = {}
    for f in dataclasses.fields(settings_class):
        if not f.init or not hasattr(args, f.name):
            continue
        value, default = getattr(args, f.name), _default(f)
        if isinstance(value, list) and (isinstance(default, tuple) or default is None):
            value = tuple(value)  # e.g. --snr-range LOW HIGH: a pair, as the field's default is
        values[f.name] = value
    values.update(overrides)
    return settings_class(**values)
