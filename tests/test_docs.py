"""The documentation: a short README, docs/ for the rest, and every number in them checkable.

What is checked: the README's length and its test command; every relative link and anchor of the
README, docs/ and the notebook's Markdown; no words about how the project was made; every "±" says
what it is; the README's headline numbers against results/reproduce.json; every table copied from a
results file still equal to it; the README's example runs and prints what it says; the package map
lists every module.
"""

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from ncsn_toy.commands.bench import format_bench
from ncsn_toy.commands.report import mean_std

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
NOTEBOOK = ROOT / "NCSN_toy_Example.ipynb"
REPRODUCE_JSON = ROOT / "results" / "reproduce.json"
TEST_COMMAND = "pip install -r requirements.txt && pytest"

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
# "a ± b" with spaces around: an uncertainty (a bare "±10" is a sign)
UNCERTAINTY = re.compile(r"\S ± \S")
# what b is, and over how many: "sd over 5 seeds", "standard error over 3 training seeds"
MEANING = re.compile(r"\b(sd|standard deviations?|standard errors?) over \d[\d,]* \w+", re.I)
MARKER = re.compile(r'^<!-- (table|rows): (\S+), "(.+)" -->$', re.M)
INTERNAL_WORDS = [
    r"\bissues? ?#?\d+",  # an issue number
    r"(?<![\w&])(?<!\]\()#\d+\b",  # "#13" (not a link's anchor, not an HTML entity)
    r"\bwaves?\b",
    r"\bthe issue\b",
    r"\b(this|last|that) session\b",
    r"\bseed (project|original)\b",  # "seed" is a random seed here
    r"\bthe seed's\b",
]


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def without_code(text: str) -> str:
    """``text`` with fenced code blocks blanked (their lines kept, so blocks stay apart)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def notebook_markdown() -> str:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0).strip("`"), heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, heading in HEADING.findall(without_code(text)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def blocks(text: str) -> list[str]:
    """Paragraphs, lists and tables: runs of non-blank lines, code blocks left out."""
    return [b.strip("\n") for b in re.split(r"\n[ \t]*\n", without_code(text)) if b.strip()]


def is_table(block: str) -> bool:
    return all(line.startswith("|") for line in block.splitlines())


def tables_under_headings(text: str) -> dict[str, list[str]]:
    """The first table under each ``### heading`` of a results file, as lines."""
    tables = {}
    heading = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("### "):
            heading = line[4:].strip()
        elif line.startswith("|") and heading is not None and heading not in tables:
            end = i
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            tables[heading] = lines[i:end]
    return tables


def source_tables(source: str) -> dict[str, list[str]]:
    if source == "results/reproduce.md":
        return tables_under_headings((ROOT / source).read_text())
    if source == "results/bench.json":
        return tables_under_headings(format_bench(json.loads((ROOT / source).read_text())))
    raise AssertionError(f"unknown source {source!r}")


def markers() -> list[tuple[Path, str, str, str, list[str]]]:
    """Every copied table: (page, kind, source, heading, the table's lines on the page)."""
    found = []
    for page in DOCS:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            match = MARKER.match(line)
            if not match:
                continue
            start = i + 1
            while start < len(lines) and not lines[start].strip():
                start += 1
            end = start
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            found.append((page, *match.groups(), lines[start:end]))
    return found


def one_heading(tables: dict[str, list[str]], prefix: str) -> str:
    matches = [heading for heading in tables if heading.startswith(prefix)]
    assert len(matches) == 1, f"{prefix!r} names {len(matches)} tables: {matches}"
    return matches[0]


# --- the README is a guide --------------------------------------------------------------------


def test_readme_is_at_most_300_lines():
    assert len(README.read_text().splitlines()) <= 300


def test_readme_test_command_is_the_one_ci_runs():
    assert TEST_COMMAND in README.read_text()
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text().splitlines()


def test_readme_links_every_docs_page():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in links(README)}
    assert DOCS, "no docs/*.md"
    assert [page_id(p) for p in DOCS if p.resolve() not in linked] == []


def test_package_map_lists_every_module():
    text = README.read_text()
    start = text.index("\n## The package")
    section = text[start : text.index("\n## ", start + 1)]
    package = ROOT / "ncsn_toy"
    modules = [*package.rglob("*.py"), *package.rglob("*.ipynb")]
    names = [str(p.relative_to(package)) for p in modules if "__pycache__" not in p.parts]
    assert [name for name in sorted(names) if f"`{name}`" not in section] == []


def test_readme_example_runs_and_prints_what_it_says():
    text = README.read_text()
    start = text.index("## A first taste")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)
    promised = re.search(r"^# prints (.+)$", code, re.M).group(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    assert printed.getvalue().strip() == promised


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_python_blocks_are_python(page):
    for code in re.findall(r"^```python\n(.*?)^```", page.read_text(), re.M | re.S):
        compile(code, str(page), "exec")


# --- links ------------------------------------------------------------------------------------


def links(page: Path, text: str | None = None) -> list[str]:
    """Relative link targets (Markdown links and images) of a page, code left out."""
    text = CODE_SPAN.sub("", without_code(page.read_text() if text is None else text))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def resolves(page: Path, target: str) -> bool:
    """Whether ``target``, relative to ``page``, names a file (and a heading of it, after a #)."""
    path, _, anchor = target.partition("#")
    resolved = (page.parent / path) if path else page
    if not resolved.exists():
        return False
    return not anchor or anchor in anchors(resolved.read_text())


@pytest.mark.parametrize("page", [*PAGES, NOTEBOOK], ids=page_id)
def test_relative_links_resolve(page):
    text = notebook_markdown() if page == NOTEBOOK else page.read_text()
    assert [target for target in links(page, text) if not resolves(page, target)] == []


def test_link_checks_can_fail():
    page = DOCS[0]
    assert links(page, "[x](no_such_file.md) ![y](../gif/none.png) [z](https://e.org)") == [
        "no_such_file.md",
        "../gif/none.png",
    ]
    assert not resolves(README, "docs/results.md#no-such-heading")
    assert resolves(README, "docs/results.md#the-samplers-the-papers-fig-3")
    assert "why-sigma_max--800" in anchors("### Why sigma_max = 800")
    assert slug("`fit`: one recipe for any mixture") == "fit-one-recipe-for-any-mixture"


# --- words ------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", [*PAGES, NOTEBOOK], ids=page_id)
def test_no_words_about_how_the_project_was_made(page):
    text = notebook_markdown() if page == NOTEBOOK else page.read_text()
    found = [m.group(0) for p in INTERNAL_WORDS for m in re.finditer(p, text, re.I)]
    assert found == []


def test_internal_words_are_caught():
    text = "as issue 13 asked (#11), the first wave; the seed project's figure"
    found = [m.group(0) for p in INTERNAL_WORDS for m in re.finditer(p, text, re.I)]
    assert found == ["issue 13", "#11", "wave", "seed project"]
    anchors_and_entities = "[a](x.md#5-scores) [b](#5-scores) &#177;"
    assert not any(re.search(p, anchors_and_entities, re.I) for p in INTERNAL_WORDS)


# --- "±" says what it is ------------------------------------------------------------------------


def unexplained_uncertainties(text: str) -> list[str]:
    """Blocks with an "a ± b" whose meaning is not stated: in the block itself or, for a table, in
    its caption (the paragraph right above it, comments skipped)."""
    bad = []
    caption = ""
    for block in blocks(text):
        if block.startswith("<!--"):
            continue
        context = block + "\n" + caption if is_table(block) else block
        flat = " ".join(block.split())
        if UNCERTAINTY.search(flat) and not MEANING.search(" ".join(context.split())):
            bad.append(block.splitlines()[0][:100])
        caption = block
    return bad


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_plus_minus_says_what_it_is(page):
    assert unexplained_uncertainties(page.read_text()) == []


def test_plus_minus_check_can_fail():
    assert unexplained_uncertainties("weight 0.78 ± 0.01.") == ["weight 0.78 ± 0.01."]
    assert unexplained_uncertainties("Over seeds:\n\n| a |\n|---|\n| 1 ± 2 |") == ["| a |"]
    stated = "± is the sd over 5 seeds:\n\n| a |\n|---|\n| 1 ± 2 |\n\nat (±10, ±10)"
    assert unexplained_uncertainties(stated) == []


# --- the headline numbers against results/reproduce.json ----------------------------------------

# README row (its first cell starts so) -> the row of the "samplers" table of reproduce.json
HEADLINE = {
    "exact i.i.d. samples": "exact i.i.d. samples",
    "Langevin dynamics, exact score": "Langevin, exact score (paper",
    "annealed Langevin dynamics, exact score": "annealed Langevin, exact score (paper",
    "consistent annealed sampling, exact score": "consistent annealed sampling, exact score",
    "annealed Langevin with the trained network": "annealed Langevin, trained NCSN",
    "probability-flow ODE of the score SDE": "probability flow, exact score, multistep",
}


def reproduce_result() -> dict:
    return json.loads(REPRODUCE_JSON.read_text())


def json_row(rows: list[dict], evaluations: int | None = None, **prefixes: str) -> dict:
    """The one row of two Gaussians whose fields start with ``prefixes`` (and with that many score
    evaluations, if given)."""
    found = [
        row
        for row in rows
        if row["mixture"] == "two_gaussians"
        and evaluations in (None, row["evaluations"])
        and all(str(row[key]).startswith(value) for key, value in prefixes.items())
    ]
    assert len(found) == 1, prefixes
    return found[0]


def headline_table() -> tuple[str, dict[str, list[str]]]:
    """The README's headline: its caption and its rows (cells by first cell)."""
    text = README.read_text()
    start = text.index("## The paper's Fig. 3, measured")
    section = blocks(text[start : text.index("\n## ", start + 1)])
    index = next(i for i, block in enumerate(section) if is_table(block))
    rows = {}
    for line in section[index].splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return section[index - 1], rows


def test_headline_table_matches_reproduce_json():
    result = reproduce_result()
    caption, rows = headline_table()
    seeds = set()
    for readme_label, json_label in HEADLINE.items():
        row = json_row(result["samplers"], sampler=json_label)
        cells = next(cells for label, cells in rows.items() if label.startswith(readme_label))
        weight = mean_std([w[1] for w in row["weights"]])  # the (5, 5) mode, as the table prints
        assert cells[1:] == [str(row["evaluations"]), weight], readme_label
        seeds.add(len(row["weights"]))
    assert len(seeds) == 1, "the headline rows come from runs of different sizes"
    stated = f"sd over {seeds.pop()} seeds of {result['config']['n_particles']:,} particles"
    assert stated in caption
    assert rows["truth"][2] == "0.800"


def test_headline_rows_use_at_least_20_seeds():
    rows = reproduce_result()["samplers"]
    assert all(len(json_row(rows, sampler=label)["weights"]) >= 20 for label in HEADLINE.values())


# --- tables copied from the results files -------------------------------------------------------


def test_copied_tables_are_marked():
    assert {page.name for page, *_ in markers()} >= {"results.md", "speed.md"}


@pytest.mark.parametrize(
    ("page", "kind", "source", "heading", "table"),
    markers(),
    ids=[f"{page.name}: {heading}" for page, _, _, heading, _ in markers()],
)
def test_copied_table_equals_its_source(page, kind, source, heading, table):
    tables = source_tables(source)
    original = tables[one_heading(tables, heading)]
    assert table, f"no table after the marker of {heading!r}"
    if kind == "table":
        assert table == original
    else:
        assert table[:2] == original[:2], "not the source's header"
        rows = iter(original[2:])
        missing = [row for row in table[2:] if row not in rows]  # in the source's order
        assert missing == []


@pytest.mark.parametrize("source", ["results/reproduce.md", "results/bench.json"])
def test_every_results_table_is_in_docs(source):
    copied = [heading for _, _, s, heading, _ in markers() if s == source]
    tables = source_tables(source)
    assert [h for h in tables if not any(h.startswith(prefix) for prefix in copied)] == []
