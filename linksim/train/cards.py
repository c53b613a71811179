"""MODEL_CARD.md of every trained checkpoint: one layout, each trainer contributes its content.

Layout::

    # <name>

    <intro: what the model is, one or more paragraphs or bullet rows>

    ## <section>          (e.g. Training — command, data, steps, wall time; Validation; Use)

    <rows>

A trainer builds a :class:`ModelCard` from its ``config.json`` record (so a card can be
rewritten later from the record alone, e.g. when an evaluation is added) with the shared
rows below for what all records hold (command, wall time and hardware, loss curve).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ModelCard", "command_row", "hardware_words", "loss_curve", "wall_time_row"]


@dataclass
class ModelCard:
    """A model card: title, intro lines, then ``(heading, lines)`` sections in order."""

    name: str
    intro: list[str]
    sections: list[tuple[str, list[str]]] = field(default_factory=list)

    def text(self) -> str:
        """The Markdown text (ends with one newline)."""
        lines = [f"# {self.name}", "", *self.intro, ""]
        for heading, body in self.sections:
            lines += [f"## {heading}", "", *body, ""]
        return "\n".join(lines)


def command_row(record: dict) -> str:
    """``- command: `linksim train …``` (or the Python API when the run had no command line)."""
    return f"- command: `{record.get('command') or '(Python API)'}`"


def hardware_words(record: dict) -> str:
    """Where a run trained: the CPU threads, and the GPU they fed if there was one."""
    cpu = f"{record.get('threads', '?')} CPU thread(s) ({record.get('machine', '')})"
    device = record.get("device", "cpu")  # records written before the field trained on the CPU
    return cpu if device == "cpu" else f"{device}, {cpu} feeding it"


def wall_time_row(record: dict, seconds: float | None = None) -> str:
    """``- wall time X min on <hardware>`` (``seconds``: default the record's ``wall_seconds``)."""
    seconds = record.get("wall_seconds", 0) if seconds is None else seconds
    return f"- wall time {seconds / 60:.1f} min on {hardware_words(record)}"


def loss_curve(history: list[dict], rows: int, steps_column: bool = False) -> list[str]:
    """A Markdown table of at most ``rows`` evenly spaced entries of a loss history
    (``{"step", "loss", "steps"}`` each: the mean over the ``steps`` steps up to ``step``)."""
    shown = history if len(history) <= rows else [history[round(i * (len(history) - 1) / (rows - 1))]
                                                  for i in range(rows)]
    if steps_column:
        return (["| up to step | mean loss | steps |", "|---|---|---|"]
                + [f"| {r['step']} | {r['loss']:.4g} | {r['steps']} |" for r in shown])
    return ["| up to step | mean loss |", "|---|---|"] + [f"| {r['step']} | {r['loss']:.4g} |" for r in shown]
