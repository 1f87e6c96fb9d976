"""Every number with a decimal point in the notebook's prose, and whether the notebook prints it.

A number in a Markdown cell is supported when the notebook's code holds it (a float literal of the
same value, e.g. a step size) or when a code cell of the same section or of an earlier one prints
it, at least as precisely and within the rounding of both: the prose "0.22" is supported by a
printed "0.218", not by "0.213" nor by "0.2". A learner never reads a number that the notebook has
not yet shown. Sections are the Markdown cells' "## " headings. Signs are ignored (prose gives
magnitudes: "off by 0.02 nats" for a printed "-0.0236").
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# a number with a decimal point, not part of a word or of a longer number (prose)
PROSE_NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.]*\d)")
# what is not a quantity: link targets, addresses, arXiv identifiers, a paper's section numbers
NOT_PROSE = re.compile(r"\]\([^)]*\)|https?://\S+|arXiv:\S+|\bSec\. \d+\.\d+")
# a number printed by a cell: with a decimal point, in plain or scientific notation
PRINTED_NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?(?![\w.]*\d)")


@dataclass(frozen=True)
class Number:
    """A number as written: its value and the half-width of its rounding."""

    text: str
    value: float
    half_unit: float

    @classmethod
    def parse(cls, text: str) -> Number:
        mantissa, _, exponent = text.lower().lstrip("-").partition("e")
        decimals = len(mantissa.partition(".")[2])
        scale = 10.0 ** int(exponent or 0)
        return cls(text, abs(float(text)), 0.5 * 10.0**-decimals * scale)

    def supported_by(self, printed: Number) -> bool:
        """Whether ``printed`` shows this number: given at least as precisely, and rounding to
        it (their intervals overlap in more than an end point: a printed "0.214" does not support
        "0.213", and a printed "0.2" supports "0.2" but not "0.21")."""
        return (
            printed.half_unit <= self.half_unit * (1 + 1e-9)
            and abs(self.value - printed.value) < self.half_unit + printed.half_unit - 1e-12
        )


@dataclass
class Section:
    """One "## " section of the notebook: its prose numbers, printed numbers and code floats."""

    title: str
    prose: list[str]
    printed: list[Number]
    code_floats: set[float]


def prose_numbers(markdown: str) -> list[str]:
    """The numbers with a decimal point in a Markdown cell, links and addresses left out."""
    return PROSE_NUMBER.findall(NOT_PROSE.sub(" ", markdown))


def printed_numbers(cell: dict) -> list[Number]:
    """The numbers a code cell printed or displayed (streams, results, Markdown, plain text)."""
    texts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            texts.append(_text(output["text"]))
        for kind in ("text/plain", "text/markdown"):
            if kind in output.get("data", {}):
                texts.append(_text(output["data"][kind]))
    return [Number.parse(match) for text in texts for match in PRINTED_NUMBER.findall(text)]


def code_floats(source: str) -> set[float]:
    """The float literals of a code cell, as positive values."""
    return {
        abs(node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, float)
    }


def sections(cells: list[dict]) -> list[Section]:
    """The notebook's cells grouped by their "## " headings (the part before the first is one)."""
    found = [Section("(before the first section)", [], [], set())]
    for cell in cells:
        source = _text(cell["source"])
        if cell["cell_type"] == "markdown":
            if source.startswith("## "):
                found.append(Section(source.splitlines()[0], [], [], set()))
            found[-1].prose.extend(prose_numbers(source))
        elif cell["cell_type"] == "code":
            found[-1].printed.extend(printed_numbers(cell))
            found[-1].code_floats.update(code_floats(source))
    return found


def unsupported(cells: list[dict]) -> list[str]:
    """Every prose number that neither the code nor an output shown so far supports, by section."""
    every_float = set().union(*(section.code_floats for section in sections(cells)))
    shown: list[Number] = []
    missing = []
    for section in sections(cells):
        shown.extend(section.printed)
        for text in section.prose:
            number = Number.parse(text)
            if number.value in every_float:
                continue
            if not any(number.supported_by(printed) for printed in shown):
                missing.append(f"{section.title}: {text}")
    return missing


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)
