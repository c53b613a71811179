"""Analog joint source–channel coding: DeepJSCC models (:mod:`.models`), the ``deepjscc``
scheme (:mod:`.scheme`) and the linear analog code (:mod:`.linear`); training lives in
:mod:`linksim.train.deepjscc`.

``from linksim.jscc import DeepJSCC, DeepJSCCConfig, DeepJSCCScheme`` works; the names are
imported on first access, so importing one submodule does not import the others.
"""

from __future__ import annotations

import importlib

__all__ = ["DeepJSCC", "DeepJSCCConfig", "DeepJSCCScheme"]

_WHERE = {"DeepJSCC": "models", "DeepJSCCConfig": "models", "DeepJSCCScheme": "scheme"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
