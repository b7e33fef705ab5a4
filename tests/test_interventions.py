"""Tests for intervention_training.interventions: parsing the <intervention> block."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intervention_training.intervention_block import (
    LATEX_COMMANDS,
    MAX_BLOCK_CHARS,
    REPAIRS,
    STATUSES,
    ParsedProposal,
    _parse_proposal,
    parse_proposal,
)

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def block(body: str) -> str:
    return f"Some verification log...\n\n<intervention>{body}</intervention>"


def check_invariants(result: ParsedProposal, n_steps: object) -> None:
    assert isinstance(result, ParsedProposal)
    assert result.status in STATUSES
    assert set(result.repairs) <= set(REPAIRS)
    assert list(result.repairs) == sorted(set(result.repairs))
    if result.status == "ok":
        assert isinstance(result.location, int) and not isinstance(result.location, bool)
        assert isinstance(n_steps, int) and 1 <= result.location <= n_steps
        assert isinstance(result.content, str) and result.content.strip() == result.content
        assert result.content
        assert result.block is not None
    else:
        assert result.location is None and result.content is None
    if result.status == "no_block":
        assert result.block is None


# --- well-formed blocks ---------------------------------------------------------------------------


def test_plain_block() -> None:
    r = parse_proposal(block('{"content": "Check the sign of x.", "location": 3}'), 5)
    assert r == ParsedProposal(
        "ok", 3, "Check the sign of x.", (), '{"content": "Check the sign of x.", "location": 3}'
    )


def test_key_order_and_whitespace() -> None:
    text = (
        '<intervention>\n  {\n "location" : 2 ,\n "content" : "  Retry.  "\n }\n</intervention>\n'
    )
    r = parse_proposal(text, 2)
    assert (r.status, r.location, r.content, r.repairs) == ("ok", 2, "Retry.", ())


def test_tags_case_and_spacing() -> None:
    r = parse_proposal('< Intervention >{"content": "x", "location": 1}</ INTERVENTION >', 1)
    assert (r.status, r.location, r.content) == ("ok", 1, "x")


def test_properly_escaped_latex_is_unchanged() -> None:
    content = r"Use \frac{1}{2} and \times, \neq, \(x\); a\nb"
    text = block(json.dumps({"content": content, "location": 1}))
    r = parse_proposal(text, 1)
    assert r.status == "ok" and r.content == content and r.repairs == ()


def test_json_escapes_kept() -> None:
    r = parse_proposal(
        block(r'{"content": "say \"hi\"\nthen a\tb \\ c \/ \u00e9", "location": 1}'), 1
    )
    assert r.status == "ok"
    assert r.content == 'say "hi"\nthen a\tb \\ c / é'
    assert r.repairs == ()


# --- the last-block rule --------------------------------------------------------------------------


def test_last_block_wins() -> None:
    text = (
        'The format is <intervention>{"content": "...", "location": 1}</intervention>.\n'
        "Verification: step 2 is wrong.\n"
        '<intervention>{"content": "first try", "location": 2}</intervention>\n'
        'Final: <intervention>{"content": "final", "location": 3}</intervention>'
    )
    r = parse_proposal(text, 4)
    assert (r.status, r.location, r.content) == ("ok", 3, "final")


def test_last_block_wins_even_if_invalid() -> None:
    text = (
        '<intervention>{"content": "good", "location": 2}</intervention>\n'
        '<intervention>{"content": "...", "location": N}</intervention>'
    )
    r = parse_proposal(text, 4)
    assert r.status == "invalid_json"
    assert r.block == '{"content": "...", "location": N}'


def test_quoted_format_before_real_block() -> None:
    text = (
        'I must end with <intervention>{"content": "<step>", "location": <N>}</intervention>.\n'
        "...\n"
        '<intervention>{"content": "Consider n mod 4.", "location": 6}</intervention>'
    )
    r = parse_proposal(text, 7)
    assert (r.status, r.location, r.content) == ("ok", 6, "Consider n mod 4.")


# --- LaTeX backslashes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "latex",
    [
        r"\frac{1}{2}",
        r"\times",
        r"\neq",
        r"\ne",
        r"\nabla",
        r"\beta",
        r"\binom{n}{k}",
        r"\theta",
        r"\text{ if }",
        r"\tfrac12",
        r"\right)",
        r"\rho",
        r"\forall",
        r"\sqrt{2}",
        r"\cdot",
        r"\(x\)",
        r"\[x\]",
        r"\{1,2\}",
        r"a\,b\;c\!d",
        r"50\%",
        r"\underline{x}",
        r"\uparrow",
        r"\alpha_1",
        r"\tbinom{a}{b}",
        r"\newfoo{x}",  # unknown command starting with an escape letter, followed by "{"
        r"\to",
    ],
)
def test_unescaped_latex_survives(latex: str) -> None:
    content = f"Note that {latex} here."
    r = parse_proposal(block('{"content": "' + content + '", "location": 1}'), 1)
    assert r.status == "ok"
    assert r.content == content
    assert "latex_backslashes" in r.repairs


def test_frac_and_times_not_formfeed_or_tab() -> None:
    r = parse_proposal(block(r'{"content": "\frac{1}{2} \times 3", "location": 1}'), 1)
    assert r.content == r"\frac{1}{2} \times 3"
    assert "\f" not in r.content and "\t" not in r.content


def test_json_escape_followed_by_word_is_an_escape() -> None:
    r = parse_proposal(block(r'{"content": "First.\nThen \frac{a}{b}.\tDone", "location": 1}'), 1)
    assert r.status == "ok"
    assert r.content == "First.\nThen \\frac{a}{b}.\tDone"


def test_mixed_escaped_and_unescaped_backslashes() -> None:
    r = parse_proposal(
        block(r'{"content": "\\frac{1}{2} + \frac{1}{3} = \\\frac{5}{6}", "location": 1}'), 1
    )
    assert r.status == "ok"
    assert r.content == r"\frac{1}{2} + \frac{1}{3} = \\frac{5}{6}"


def test_backslash_at_end_of_string() -> None:
    # `\"` is an escaped quote, so the string runs on; the object is then incomplete.
    r = parse_proposal(block(r'{"content": "a \", "location": 1}'), 1)
    assert r.status == "invalid_json"


def test_documented_ambiguity_escape_followed_by_command_name() -> None:
    # A real JSON newline escape directly followed by the letters of a known command is read as
    # LaTeX: "\neq" is never a newline + "eq". This is the documented trade-off.
    r = parse_proposal(block(r'{"content": "a\neq b", "location": 1}'), 1)
    assert r.content == r"a\neq b"


def test_latex_commands_all_start_with_json_escape_letters() -> None:
    assert all(cmd[0] in "bfnrt" for cmd in LATEX_COMMANDS)


# --- locations ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "location", "repair"),
    [
        ("5", 5, None),
        ('"5"', 5, "location_string"),
        ('" 5 "', 5, "location_string"),
        ('"5."', 5, "location_string"),
        ("5.0", 5, "location_float"),
        ('"5.0"', 5, "location_float"),
        ('"Step 5"', 5, "step_prefix"),
        ('"step 5"', 5, "step_prefix"),
        ('"STEP #5"', 5, "step_prefix"),
        ('"Step5"', 5, "step_prefix"),
        ("Step 5", 5, "step_prefix"),
        ("step5", 5, "step_prefix"),
        ("'Step 5'", 5, "step_prefix"),
        # the verification prompt labels steps "Substep i"
        ('"Substep 5"', 5, "step_prefix"),
        ("Substep 5", 5, "step_prefix"),
        ('"substep 5"', 5, "step_prefix"),
        ("substep 5", 5, "step_prefix"),
        ('"SUBSTEP 5"', 5, "step_prefix"),
        ('"substep #5"', 5, "step_prefix"),
        ("substep #5", 5, "step_prefix"),
        ('"Substep5"', 5, "step_prefix"),
        ('"Sub-step 5"', 5, "step_prefix"),
        ("'Substep 5'", 5, "step_prefix"),
        ('"Substep 5."', 5, "step_prefix"),
    ],
)
def test_location_forms(raw: str, location: int, repair: str | None) -> None:
    r = parse_proposal(block('{"content": "x", "location": ' + raw + "}"), 6)
    assert (r.status, r.location) == ("ok", location)
    if repair:
        assert repair in r.repairs


@pytest.mark.parametrize(
    "raw",
    [
        "5.5",
        '"five"',
        "true",
        "false",
        "null",
        "[5]",
        '{"n": 5}',
        '"Step 5 and 6"',
        '"Substep 5 and 6"',
        '"Substeps 5"',
        '"Line 5"',
        "NaN",
        "Infinity",
    ],
)
def test_location_not_integer(raw: str) -> None:
    r = parse_proposal(block('{"content": "x", "location": ' + raw + "}"), 6)
    assert r.status == "location_not_integer"


@pytest.mark.parametrize(
    ("raw", "n_steps"),
    [
        ("0", 6),
        ("-1", 6),
        ('"-2"', 6),
        ("7", 6),
        ("1", 0),
        ("1", -3),
        ("9" * 40, 6),
        ("9" * 5000, 10**6),  # beyond int's digit limit: still out of range, no exception
        ('"' + "9" * 5000 + '"', 6),
        ("1e30", 6),
    ],
)
def test_location_out_of_range(raw: str, n_steps: int) -> None:
    r = parse_proposal(block('{"content": "x", "location": ' + raw + "}"), n_steps)
    assert r.status == "location_out_of_range"


def test_location_bounds_inclusive() -> None:
    body = '{"content": "x", "location": %d}'
    assert parse_proposal(block(body % 1), 4).status == "ok"
    assert parse_proposal(block(body % 4), 4).status == "ok"
    assert parse_proposal(block(body % 5), 4).status == "location_out_of_range"


@pytest.mark.parametrize("n_steps", [None, "3", 3.0, True, object(), []])
def test_non_integer_n_steps_never_ok(n_steps: object) -> None:
    r = parse_proposal(block('{"content": "x", "location": 1}'), n_steps)  # type: ignore[arg-type]
    assert r.status == "location_out_of_range"


# --- other repairs --------------------------------------------------------------------------------


def test_single_quotes() -> None:
    r = parse_proposal(block("{'content': 'Let\\'s try n = 2; it\\'s small', 'location': 2}"), 3)
    assert (r.status, r.content) == ("ok", "Let's try n = 2; it's small")
    assert "single_quotes" in r.repairs


def test_single_quotes_with_bare_apostrophe_and_double_quote() -> None:
    r = parse_proposal(block("""{'content': 'Let's say "x"', 'location': 2}"""), 3)
    assert (r.status, r.content) == ("ok", 'Let\'s say "x"')
    assert {"single_quotes", "unescaped_quote"} <= set(r.repairs)


def test_trailing_commas() -> None:
    r = parse_proposal(block('{"content": "x", "location": 2, }'), 3)
    assert (r.status, r.location, r.repairs) == ("ok", 2, ("trailing_comma",))
    r = parse_proposal(block('{"content": "x", "location": 2,\n\n}'), 3)
    assert r.status == "ok"


def test_comma_inside_string_is_kept() -> None:
    r = parse_proposal(block('{"content": "a, }", "location": 2}'), 3)
    assert (r.status, r.content, r.repairs) == ("ok", "a, }", ())


@pytest.mark.parametrize(
    "body",
    [
        '```json\n{"content": "x", "location": 2}\n```',
        '\n```\n{"content": "x", "location": 2}\n```\n',
        '```JSON {"content": "x", "location": 2}```',
    ],
)
def test_code_fences(body: str) -> None:
    r = parse_proposal(block(body), 3)
    assert (r.status, r.location, r.content) == ("ok", 2, "x")
    assert "code_fence" in r.repairs


def test_surrounding_text_in_block() -> None:
    r = parse_proposal(block('Here it is: {"content": "x", "location": 2} (done)'), 3)
    assert r.status == "ok" and "surrounding_text" in r.repairs


def test_unquoted_keys() -> None:
    r = parse_proposal(block('{content: "x", location: 2}'), 3)
    assert r.status == "ok" and "unquoted_key" in r.repairs


def test_unescaped_inner_double_quotes() -> None:
    r = parse_proposal(block('{"content": "Call it "good" now", "location": 2}'), 3)
    assert (r.status, r.content) == ("ok", 'Call it "good" now')
    assert "unescaped_quote" in r.repairs


def test_raw_newlines_in_string() -> None:
    r = parse_proposal(block('{"content": "line one\nline two", "location": 2}'), 3)
    assert (r.status, r.content) == ("ok", "line one\nline two")


def test_key_case_and_nested_object() -> None:
    r = parse_proposal(block('{" Content ": "x", "LOCATION": 2}'), 3)
    assert r.status == "ok" and "key_case" in r.repairs
    r = parse_proposal(block('{"intervention": {"content": "x", "location": 2}}'), 3)
    assert (r.status, r.location) == ("ok", 2) and "nested_object" in r.repairs


# --- unterminated blocks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [
        '{"content": "x", "location": 2}',
        '{"content": "x", "location": 2}\n',
        '{"content": "x", "location": 2}</',
        '{"content": "x", "location": 2}</interv',
        '{"content": "x", "location": 2}</INTERVENTION',
        '```json\n{"content": "x", "location": 2}\n```',
    ],
)
def test_missing_close_tag_repaired(tail: str) -> None:
    r = parse_proposal("log...\n<intervention>" + tail, 3)
    assert (r.status, r.location, r.content) == ("ok", 2, "x")
    assert "missing_close_tag" in r.repairs


@pytest.mark.parametrize(
    "tail",
    [
        '{"content": "x", "location": 2',
        '{"content": "x, and then',
        "",
        '{"content": "x", "location": 2}\nand some more prose',
        "{not json}",
    ],
)
def test_unterminated_block(tail: str) -> None:
    r = parse_proposal("log...\n<intervention>" + tail, 3)
    assert r.status == "unterminated_block"
    assert r.block == tail


def test_unterminated_complete_but_invalid_object_reports_validation() -> None:
    r = parse_proposal('<intervention>{"content": "x", "location": 9}', 3)
    assert r.status == "location_out_of_range" and "missing_close_tag" in r.repairs


# --- other failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("", "no_block"),
        ("no block at all", "no_block"),
        ('{"content": "x", "location": 1}', "no_block"),
        ('{"content": "x", "location": 1}</intervention>', "no_block"),
        (block(""), "invalid_json"),
        (block("   "), "invalid_json"),
        (block('{"content": "x", "location": 1'), "invalid_json"),
        (block('{"content": "x" "location": 1}'), "invalid_json"),
        (block("just prose"), "invalid_json"),
        (block("[1, 2]"), "not_an_object"),
        (block("3"), "not_an_object"),
        (block('"text"'), "not_an_object"),
        (block('{"location": 1}'), "missing_content"),
        (block('{"text": "x", "location": 1}'), "missing_content"),
        (block('{"content": 5, "location": 1}'), "content_not_string"),
        (block('{"content": null, "location": 1}'), "content_not_string"),
        (block('{"content": ["a"], "location": 1}'), "content_not_string"),
        (block('{"content": "", "location": 1}'), "no_error_found"),
        (block('{"content": " \\n\\t ", "location": 1}'), "no_error_found"),
        (block('{"content": "x"}'), "missing_location"),
        (block('{"content": "x", "step": 1}'), "missing_location"),
        (block("[" * 5000 + "]" * 5000), "invalid_json"),  # nesting beyond the recursion limit
        (block("[[[1]]]"), "not_an_object"),
        (block("{" * 5000 + "}" * 5000), "invalid_json"),
    ],
)
def test_failure_statuses(text: str, status: str) -> None:
    r = parse_proposal(text, 3)
    assert r.status == status
    check_invariants(r, 3)


def test_non_string_text() -> None:
    for text in (None, 5, b"<intervention>{}</intervention>", ["x"]):
        r = parse_proposal(text, 3)  # type: ignore[arg-type]
        assert r.status == "no_block"


def test_too_long() -> None:
    content = "x" * (MAX_BLOCK_CHARS + 1)
    r = parse_proposal(block('{"content": "' + content + '", "location": 1}'), 1)
    assert r.status == "too_long"
    r = parse_proposal("<intervention>" + " " * (MAX_BLOCK_CHARS + 1), 1)
    assert r.status == "too_long"
    body = '{"content": "' + "x" * 100 + '", "location": 1}'
    assert parse_proposal(block(body), 1, max_block_chars=len(body)).status == "ok"
    assert parse_proposal(block(body), 1, max_block_chars=len(body) - 1).status == "too_long"


def test_statuses_and_repairs_are_unique() -> None:
    assert len(set(STATUSES)) == len(STATUSES) and "ok" in STATUSES
    assert len(set(REPAIRS)) == len(REPAIRS)


# --- bounded time ---------------------------------------------------------------------------------


def _adversarial_inputs() -> list[str]:
    n = 100_000
    near_limit = MAX_BLOCK_CHARS - 100
    return [
        "x" * n,
        "<intervention>" * (n // 14),
        "<intervention></intervention>" * (n // 29),
        "<" + " " * n,
        "< " * (n // 2),
        "<intervention>" + "{" * n,
        block("{" * (n // 2) + "}" * (n // 2)),
        block('{"content": "' + "\\" * near_limit + '", "location": 1}'),
        block('{"content": "' + "\\t" * (near_limit // 2) + '", "location": 1}'),
        block('{"content": "' + "\\timesx" * (near_limit // 7) + '", "location": 1}'),
        block('{"content": "' + '" ' * (near_limit // 2) + '", "location": 1}'),
        block("{" + "'" * near_limit + "}"),
        block("{" + "step " * (near_limit // 5) + "}"),
        block("{" + "step" + " " * near_limit + "}"),
        block("{" + "," + " " * near_limit + "x}"),
        block("{" + "a" * near_limit + ": 1}"),
        block('{"content": "x", "location": "step' + " " * near_limit + '"}'),
        block('{"content": "x", "location": ' + "9" * near_limit + "}"),
        block("```" + " " * near_limit + "x"),
        block("[" * near_limit),
        "<intervention>" + '{"content": "x", "location": 1}' + " " * (near_limit - 40),
        "\n" * n + block('{"content": "x", "location": 1}'),
    ]


@pytest.mark.parametrize("index", range(len(_adversarial_inputs())))
def test_bounded_time(index: int) -> None:
    text = _adversarial_inputs()[index]
    start = time.perf_counter()
    result = _parse_proposal(text, 5, MAX_BLOCK_CHARS)
    elapsed = time.perf_counter() - start
    check_invariants(result, 5)
    assert elapsed < 0.5, elapsed


# --- properties -----------------------------------------------------------------------------------

any_n_steps = st.one_of(
    st.integers(min_value=-5, max_value=50),
    st.integers(),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
)

# Text likely to contain tag and JSON fragments.
fragments = st.sampled_from(
    [
        "<intervention>",
        "</intervention>",
        "< intervention >",
        "</interv",
        "{",
        "}",
        "[",
        "]",
        '"',
        "'",
        ",",
        ":",
        " ",
        "\n",
        "\\",
        "\\frac",
        "\\times",
        "\\n",
        "\\u00e9",
        "\\u12",
        '"content"',
        '"location"',
        "content",
        "location",
        "Step 3",
        "step",
        "#",
        "3",
        "-1",
        "1e5",
        "5.0",
        "NaN",
        "null",
        "true",
        "```",
        "```json\n",
        "x",
        "é",
        "\x00",
        "\ud800",
    ]
)
fragment_text = st.lists(fragments, max_size=60).map("".join)


@PROPS
@given(st.one_of(st.text(max_size=300), fragment_text), any_n_steps)
def test_never_raises_on_arbitrary_text(text: str, n_steps: object) -> None:
    result = _parse_proposal(text, n_steps, MAX_BLOCK_CHARS)  # no defensive catch-all here
    check_invariants(result, n_steps)
    assert parse_proposal(text, n_steps) == result  # type: ignore[arg-type]


content_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\b\f\n\r\t<"),
    max_size=60,
).filter(lambda s: s.strip())


@PROPS
@given(content_text, st.integers(min_value=1, max_value=30), st.booleans(), st.text(max_size=50))
def test_roundtrip_valid_json(content: str, location: int, ascii_only: bool, preamble: str) -> None:
    body = json.dumps({"content": content, "location": location}, ensure_ascii=ascii_only)
    text = preamble.replace("<", "(") + "<intervention>" + body + "</intervention>"
    r = _parse_proposal(text, 30, MAX_BLOCK_CHARS)
    assert (r.status, r.location, r.content) == ("ok", location, content.strip())
    assert r.repairs == ()


latex_tokens = st.sampled_from(
    [
        r"\frac{1}{2}",
        r"\times",
        r"\neq",
        r"\nabla",
        r"\beta",
        r"\theta",
        r"\text{ and }",
        r"\right)",
        r"\left(",
        r"\rho",
        r"\tau",
        r"\binom{n}{k}",
        r"\sqrt{3}",
        r"\cdot",
        r"\(",
        r"\)",
        r"\[",
        r"\]",
        r"\{",
        r"\}",
        r"\,",
        r"\underline{x}",
        r"\uparrow",
        r"\boxed{7}",
        r"\forall",
        r"\to",
        "x",
        "=",
        "2",
        "n",
        "t",
        "'s",
    ]
)


@PROPS
@given(st.lists(latex_tokens, min_size=1, max_size=15), st.integers(min_value=1, max_value=9))
def test_unescaped_latex_roundtrip(tokens: list[str], location: int) -> None:
    content = " ".join(tokens)
    r = parse_proposal(
        block('{"content": "' + content + '", "location": ' + str(location) + "}"), 9
    )
    assert (r.status, r.location, r.content) == ("ok", location, content)


mutation = st.tuples(
    st.sampled_from(["delete", "insert", "replace"]),
    st.integers(min_value=0, max_value=10_000),
    st.one_of(fragments, st.characters()),
)


@PROPS
@given(
    content_text,
    st.integers(min_value=-3, max_value=12),
    st.lists(mutation, min_size=1, max_size=6),
    any_n_steps,
)
def test_never_raises_on_mutated_blocks(
    content: str, location: int, mutations: list[tuple[str, int, str]], n_steps: object
) -> None:
    text = block(json.dumps({"content": content, "location": location}))
    for op, position, char in mutations:
        i = position % (len(text) + 1)
        if op == "delete":
            text = text[:i] + text[i + 1 :]
        elif op == "insert":
            text = text[:i] + char + text[i:]
        else:
            text = text[:i] + char + text[i + 1 :]
    result = _parse_proposal(text, n_steps, MAX_BLOCK_CHARS)
    check_invariants(result, n_steps)


# --- "no critical error found": an empty content is a verdict, not a parse failure ----------------


@pytest.mark.parametrize(
    "body",
    [
        '{"content": "", "location": 2}',
        '{"content": "   ", "location": 1}',
        '{"content": "", "location": 0}',  # the location does not matter then
        '{"content": "", "location": "Substep 99"}',
        '{"content": ""}',
        "{'content': '', 'location': 1}",
    ],
)
def test_empty_content_is_no_error_found(body: str) -> None:
    r = parse_proposal(block(body), 3)
    assert r.status == "no_error_found"
    assert r.location is None and r.content is None and r.block == body
    check_invariants(r, 3)


def test_no_error_found_replaces_empty_content_in_statuses() -> None:
    assert "no_error_found" in STATUSES and "empty_content" not in STATUSES
    # a content that is not a string stays a parse failure, null included
    assert parse_proposal(block('{"content": null, "location": 1}'), 3).status == (
        "content_not_string"
    )


# --- the interventions stage: drop reasons and double_newlines --------------------------------

ATTEMPT = (
    "### Step 1: Set up\n\nLet x = 2.\n\n### Step 2: Solve\n\nSo x + 1 = 4, giving \\boxed{4}."
)
FIX = "Hold on, x + 1 with x = 2 is not 4.\nLet me redo the sum:\nadd 1 to 2 carefully."


def _proposal(j: int, content: str, location: object) -> dict:
    text = "audit...<intervention>" + json.dumps({"content": content, "location": location})
    return {
        "proposal_id": f"t/1/0/{j}",
        "rollout_id": "t/1/0",
        "problem_id": "t/1",
        "sample_id": 0,
        "proposal_index": j,
        "n_steps": 4,
        "status": "generated",
        "text": text + "</intervention>",
    }


def test_stage_counts_no_error_found_as_its_own_drop_reason() -> None:
    from oracles import build_interventions

    from intervention_training.config import InterventionsParams

    props = [
        _proposal(0, "", 2),
        _proposal(1, "  ", "Substep 3"),
        _proposal(2, FIX, "Substep 4"),
        {**_proposal(3, FIX, 4), "text": "no block"},
    ]
    rows, summary = build_interventions(props, {"t/1": "3"}, InterventionsParams(dedup="none"))
    assert [(r["parse_status"], r["drop_reason"], r["kept"]) for r in rows] == [
        ("no_error_found", "no_error_found", False),
        ("no_error_found", "no_error_found", False),
        ("ok", None, True),
        ("no_block", "no_block", False),
    ]
    assert rows[2]["location"] == 4
    assert summary["dropped"] == {"no_block": 1, "no_error_found": 2}
    assert summary["parsed"] == 1 and summary["kept"] == 1


def test_double_newlines_function() -> None:
    from intervention_training.interventions import double_newlines

    assert double_newlines("a\nb\n\nc") == "a\n\nb\n\n\n\nc"  # as the authors' str.replace
    assert double_newlines("one line") == "one line"


@pytest.mark.parametrize("double", [False, True])
def test_double_newlines_reaches_the_sft_completion_and_the_guided_prefix(tmp_path, double):
    from intervention_training.artifacts import read_artifact, write_artifact
    from intervention_training.config import GuidedParams, InterventionsParams, SftDataParams
    from intervention_training.guided import guided_prefix, write_unchecked_selection
    from intervention_training.interventions import write_interventions
    from intervention_training.sft_data import write_sft_data
    from intervention_training.steps import split_steps

    problem = {
        "problem_id": "t/1",
        "problem": "x = 2; find x + 1.",
        "answer": "3",
        "reference_solution": "2 + 1 = 3.",
        "source": "t",
        "split": "train",
    }
    rollout = {
        "rollout_id": "t/1/0",
        "problem_id": "t/1",
        "sample_id": 0,
        "prompt": "PROMPT:",
        "completion": ATTEMPT,
        "n_tokens": 30,
        "finish_reason": "stop",
        "seed": 1,
    }
    proposal = {
        **_proposal(0, FIX, "Substep 4"),
        "skip_reason": None,
        "reference_turn": "R",
        "verification": "audit...",
        "n_tokens": 20,
        "finish_reason": "stop",
        "seed": 2,
        "constrained": False,
    }
    assert len(split_steps(ATTEMPT)) == 4
    write_artifact([problem], tmp_path / "problems.parquet", "problems")
    write_artifact([rollout], tmp_path / "rollouts.parquet", "rollouts")
    write_artifact([proposal], tmp_path / "proposals.parquet", "proposals")
    params = InterventionsParams(double_newlines=double, max_content_chars=len(FIX))
    write_interventions(
        tmp_path / "problems.parquet",
        tmp_path / "proposals.parquet",
        tmp_path / "interventions.parquet",
        params,
    )
    (iv,) = read_artifact(tmp_path / "interventions.parquet", "interventions").to_pylist()
    assert iv["kept"] and iv["location"] == 4  # the length check reads the model's own text
    write_unchecked_selection(
        tmp_path / "interventions.parquet",
        tmp_path / "selected.parquet",
        tmp_path / "continuations.parquet",
        GuidedParams(enabled=False),
    )
    write_sft_data(
        tmp_path / "problems.parquet",
        tmp_path / "rollouts.parquet",
        tmp_path / "interventions.parquet",
        tmp_path / "selected.parquet",
        tmp_path / "no-model",  # only read for the end-of-turn text, which is off
        tmp_path / "sft.parquet",
        SftDataParams(),
    )
    (row,) = read_artifact(tmp_path / "sft.parquet", "sft").to_pylist()
    prefix = "### Step 1: Set up\n\nLet x = 2.\n\n### Step 2: Solve\n\n"
    expected_fix = FIX.replace("\n", "\n\n") if double else FIX
    assert row["prefix"] == prefix
    assert row["completion"] == prefix + expected_fix
    assert row["intervention"] == iv["content"] == expected_fix
    if double:
        assert split_steps(row["completion"])[3:] == FIX.split("\n")  # each line is a step
    else:
        assert split_steps(row["completion"])[3:] == [FIX]
    # the guided stage continues exactly the text the SFT completion ends with
    assert guided_prefix(rollout, iv) == row["completion"]
