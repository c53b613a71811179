"""Schemes from the dicts a scenario's ``schemes:`` entries are written in.

:func:`make_scheme` validates one entry exactly as a scenario file is validated (the same
defaults, the same errors) and builds the scheme; :func:`build_scheme` builds an entry that is
already validated (the runner's path). Both give the objects a scenario run uses, so a scheme
made in a notebook sends the same bits as the same entry in a YAML file::

    scheme = make_scheme({"type": "separate", "codec": {"name": "bpg", "chroma": "420"},
                          "mcs": {"code": "wifi-1944-1/2", "modulation": "bpsk"}}, {"cpp": "1/16"})
"""

from __future__ import annotations

from linksim.link import Bandwidth, Scheme

__all__ = ["build_scheme", "make_scheme"]

def build_scheme(spec: dict, bandwidth: Bandwidth, ladders=None) -> Scheme:
    """The scheme of a *validated* entry (as :attr:`linksim.scenario.Scenario.schemes` holds).

    :param spec: A validated scheme entry (``type`` one of separate, capacity, deepjscc, linear); a
        deepjscc entry's list of checkpoints (a rate sweep) gives the one trained at ``bandwidth``'s ρ.
    :param bandwidth: The budget of an image.
    :param ladders: A :class:`~linksim.digital.separate.LadderCache` shared by the codec schemes of a
        run; None: each codec scheme gets its own (on disk under ``$LINKSIM_CACHE``).
    """
    if spec["type"] == "deepjscc":
        from linksim.jscc.scheme import DeepJSCCScheme

        return DeepJSCCScheme(spec["name"], bandwidth, _model_at(spec["model"], bandwidth), device=spec.get("device"))
    if spec["type"] == "linear":
        from linksim.jscc.linear import LinearScheme

        return LinearScheme(spec["name"], bandwidth, spec["basis"], spec["variances"])
    common = dict(name=spec["name"], bandwidth=bandwidth, codec=spec["codec"], downscale=spec["downscale"],
                  ladders=ladders, failure_fill=spec["failure_fill"])
    if spec["type"] == "separate":
        from linksim.digital.mcs import MCS
        from linksim.digital.separate import SeparateScheme

        return SeparateScheme(mcs=[MCS(m["code"], m["modulation"]) for m in spec["mcs"]], decoder=spec["decoder"], **common)
    from linksim.digital.capacity import CapacityScheme

    return CapacityScheme(**common)


def _model_at(model: str | list[str], bandwidth: Bandwidth) -> str:
    """The deepjscc checkpoint of a validated ``model`` (one name, or one per bandwidth of a rate
    sweep) for ``bandwidth``: the one trained at its ρ (validation made it exactly one)."""
    if isinstance(model, str):
        return model
    from linksim.jscc.scheme import bcr_matches, checkpoint_config

    return next(name for name in model if bcr_matches(checkpoint_config(name), bandwidth))


def make_scheme(spec: dict, bandwidth: Bandwidth | dict, ladders=None) -> Scheme:
    """Validate one scenario-style scheme entry and build it.

    :param spec: A mapping as under ``schemes:`` in a scenario file, e.g.
        ``{"type": "deepjscc", "model": "deepjscc-awgn-r1_48"}`` (``name`` defaults to the type).
    :param bandwidth: A :class:`~linksim.link.Bandwidth` or the scenario's mapping
        (``{"cpp": "1/16"}`` or ``{"bcr": 1/48}``).
    :param ladders: As :func:`build_scheme`.
    :raises ConfigError: as a scenario file would, the field named from ``scheme`` (``scheme.mcs``).
    """
    from linksim.scenario import validate_bandwidth, validate_scheme

    if isinstance(bandwidth, Bandwidth):
        bandwidth = {"cpp": bandwidth.cpp} if bandwidth.cpp is not None else {"bcr": bandwidth.bcr}
    bandwidth = validate_bandwidth(bandwidth)
    validated = validate_scheme(spec, bandwidth, where="scheme")
    return build_scheme(validated, Bandwidth(**bandwidth), ladders)
