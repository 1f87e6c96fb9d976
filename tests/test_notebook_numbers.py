"""The check that every prose number of the notebook is printed, on small notebooks written for it.

The check itself runs on the executed notebook in tests/test_notebook.py; here it is shown to
find what it must find: numbers that no output supports (the kinds of mismatch the notebook once
had), numbers shown only later, and what is not a quantity (links, arXiv identifiers).
"""

from notebook_numbers import Number, code_floats, printed_numbers, prose_numbers, unsupported


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "source": text}


def code(source: str, printed: str = "") -> dict:
    outputs = [{"output_type": "stream", "name": "stdout", "text": printed}] if printed else []
    return {"cell_type": "code", "source": source, "outputs": outputs}


def test_prose_numbers_leave_out_links_addresses_and_identifiers():
    text = (
        "The small mode lands at $x = -5.42$ ([arXiv:1907.05600](https://arxiv.org/abs/1907.05600)"
        ", see [the docs](docs/v1.2/page.md), Sec. 4.3), std $\\sqrt{1 + 0.2^2} \\approx 1.02$; "
        "5,000 particles, 10 levels."
    )
    assert prose_numbers(text) == ["5.42", "0.2", "1.02"]


def test_a_number_is_supported_by_a_printed_one_as_precise_and_within_its_rounding():
    assert Number.parse("0.22").supported_by(Number.parse("0.218"))
    assert Number.parse("0.0044").supported_by(Number.parse("0.00438"))
    assert Number.parse("0.02").supported_by(Number.parse("-0.0236"))  # signs are not compared
    assert Number.parse("0.2").supported_by(Number.parse("0.2"))
    assert not Number.parse("0.22").supported_by(Number.parse("0.213"))
    assert not Number.parse("0.213").supported_by(Number.parse("0.214"))
    assert not Number.parse("5.44").supported_by(Number.parse("-5.42"))
    # a coarser print does not support a finer number
    assert not Number.parse("0.214").supported_by(Number.parse("0.2"))
    assert not Number.parse("1.02").supported_by(Number.parse("1.0"))
    assert Number.parse("1.4e-06").half_unit == 0.5e-7


def test_printed_numbers_come_from_streams_results_and_markdown():
    cell = {
        "outputs": [
            {"output_type": "stream", "text": "weights [0.213, 0.787], step 10"},
            {"output_type": "execute_result", "data": {"text/plain": "tensor(0.4025)"}},
            {"output_type": "display_data", "data": {"text/markdown": "| 0.020 | -0.0026 |"}},
        ]
    }
    assert [n.text for n in printed_numbers(cell)] == [
        "0.213",
        "0.787",
        "0.4025",
        "0.020",
        "-0.0026",
    ]


def test_code_floats_are_the_float_literals():
    assert code_floats("x = f(0.1, 20, sigma=-2.5)\ny = 'a 3.5 in a string'") == {0.1, 2.5}


def test_the_mismatches_the_notebook_once_had_are_found():
    cells = [
        markdown("## 9. From annealed Langevin to score SDEs"),
        code("print(mean, distance, gap)", "small mode at -5.42, energy distance 0.0171\n"),
        code("gap = ...", "mean |gap| 0.0044 nats\n"),
        markdown(
            "The small mode comes out at $x = -5.44$ (energy distance 0.0195), and the likelihood "
            "agrees to 0.002 nats; the mode at -5.42 and the distance 0.0171 are right."
        ),
    ]
    assert unsupported(cells) == [
        "## 9. From annealed Langevin to score SDEs: 5.44",
        "## 9. From annealed Langevin to score SDEs: 0.0195",
        "## 9. From annealed Langevin to score SDEs: 0.002",
    ]


def test_a_number_shown_only_in_a_later_section_is_not_supported():
    cells = [
        markdown("## 1. First\n\nAnnealing gets 0.78 and the step is 0.1."),
        code("run(step_size=0.1)"),
        markdown("## 2. Second"),
        code("print(w)", "weight 0.780\n"),
        markdown("As printed above, 0.78."),
    ]
    assert unsupported(cells) == ["## 1. First: 0.78"]


def test_a_number_of_the_code_is_supported_anywhere():
    cells = [markdown("## 1. Intro\n\nWith eps = 0.016 ..."), code("sample(step_size=0.016)")]
    assert unsupported(cells) == []
