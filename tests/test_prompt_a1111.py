"""A1111 prompt syntax: attention weights, BREAK, prompt editing schedules, extra-network tags.

Expected values are A1111's own doctests (modules/prompt_parser.py, WebUI 1.10) where it has them.
"""

from __future__ import annotations

import pytest

from imagegen.errors import PromptSyntaxError
from imagegen.prompt.a1111 import (
    escape_attention,
    extract_extra_networks,
    format_weighted,
    parse_prompt_attention,
)
from imagegen.prompt.a1111_schedule import prompt_at_step, prompt_schedule


def _approx(pairs):
    return [(text, pytest.approx(weight)) for text, weight in pairs]


@pytest.mark.parametrize(("text", "expected"), [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
      (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
    ("((x))", [("x", 1.21)]),
    ("[x]", [("x", 1 / 1.1)]),
    ("[[x]]", [("x", 1 / 1.21)]),
    ("(x:.5)", [("x", 0.5)]),
    ("(x:-1)", [("x", -1.0)]),
    ("(x: 1.3 )", [("x", 1.3)]),
    ("a:b", [("a:b", 1.0)]),
    ("a \\\\ b", [("a \\ b", 1.0)]),
    ("", [("", 1.0)]),
])
def test_attention_matches_a1111(text, expected):
    assert parse_prompt_attention(text) == _approx(expected)


def test_break_is_a_marker_with_weight_minus_one():
    assert parse_prompt_attention("a cat BREAK (a dog)") == _approx(
        [("a cat", 1.0), ("BREAK", -1.0), ("", 1.0), ("a dog", 1.1)])
    assert parse_prompt_attention("BREAKFAST") == [("BREAKFAST", 1.0)]  # only the whole word


def test_malformed_weight_is_a_syntax_error_naming_the_token():
    with pytest.raises(PromptSyntaxError) as caught:
        parse_prompt_attention("a (cat:1.2.3)")
    assert caught.value.column == 7 and caught.value.token == ":1.2.3)"


def test_escape_attention_makes_text_literal():
    text = "a (cat) [b] \\ c"
    assert parse_prompt_attention(escape_attention(text)) == [(text, 1.0)]


def test_format_weighted():
    assert format_weighted("cat", 1.0) == "cat"
    assert format_weighted("cat", 1.25) == "(cat:1.25)"
    assert parse_prompt_attention(format_weighted("cat", 0.8)) == [("cat", pytest.approx(0.8))]


# -- prompt editing and alternation -------------------------------------------------------


@pytest.mark.parametrize(("prompt", "steps", "expected"), [
    ("test", 10, [(10, "test")]),
    ("a [b:3]", 10, [(3, "a "), (10, "a b")]),
    ("a [b: 3]", 10, [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", 10, [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", 10, [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", 10, [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", 10, [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", 10, [(10, "a [unbalanced")]),
    ("a [b:.5] c", 10, [(5, "a  c"), (10, "a b c")]),
    ("a [b:.5] c", 40, [(20, "a  c"), (40, "a b c")]),
    ("((a][:b:c [d:3]", 10, [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", 3, [(1, "a"), (2, "(b:1.1)"), (3, "a")]),
    ("[fe|]male", 4, [(1, "female"), (2, "male"), (3, "female"), (4, "male")]),
    ("[fe|||]male", 4, [(1, "female"), (2, "male"), (3, "male"), (4, "male")]),
    ("a | b", 10, [(10, "a | b")]),  # a stray `|` makes the prompt unparseable: used as-is
])
def test_schedules_match_a1111(prompt, steps, expected):
    assert prompt_schedule(prompt, steps) == expected


def test_removing_text_after_a_step():
    assert prompt_schedule("a [b::4] c", 10) == [(4, "a b c"), (10, "a  c")]


def test_hires_pass_schedules_offset_integers_and_use_fractions_over_one_to_two():
    assert prompt_schedule("a [b:15]", 10, hires_steps=20) == [(5, "a "), (20, "a b")]
    assert prompt_schedule("a [b:1.5]", 10, hires_steps=20) == [(10, "a "), (20, "a b")]


def test_old_scheduling_reads_numbers_below_one_as_fractions():
    assert prompt_schedule("a [b:0.3]", 10, use_old_scheduling=True) == [(3, "a "), (10, "a b")]


# WebUI 1.10's grammar reads the step as lark's SIGNED_NUMBER (ASCII digits, optional sign); the
# expected values follow its collect_steps/at_step: a step below 1 adds no boundary, and every
# step is then past it.
@pytest.mark.parametrize(("prompt", "steps", "expected"), [
    ("[a:-3]", 10, [(10, "a")]),
    ("x [:+1] y", 10, [(1, "x  y"), (10, "x  y")]),
    ("[a:b:+0.5]", 10, [(5, "a"), (10, "b")]),
    ("[a:b:-0.5]", 10, [(10, "b")]),
    ("c [a:b: -1e1 ]", 10, [(10, "c b")]),
    ("[a:b:+2]", 10, [(2, "a"), (10, "b")]),
])
def test_signed_numbers_schedule_as_in_webui(prompt, steps, expected):
    assert prompt_schedule(prompt, steps) == expected


def test_signed_numbers_in_the_hires_pass():
    assert prompt_schedule("[a:b:+15]", 10, hires_steps=20) == [(5, "a"), (20, "b")]
    assert prompt_schedule("[a:b:-1.5]", 10, hires_steps=20) == [(20, "b")]


@pytest.mark.parametrize("prompt", [
    "[a:b:5] x\\",          # a lone trailing backslash
    "[a:b:5] x\\\ny",       # a backslash before a newline
    "[a:b:5] \\\\\\",   # an escaped backslash, then a lone one
    "[a:b:5] x \\\n",
])
def test_a_backslash_that_escapes_nothing_makes_webui_use_the_prompt_as_written(prompt):
    assert prompt_schedule(prompt, 10) == [(10, prompt)]


def test_escaped_backslashes_and_brackets_still_schedule():
    assert prompt_schedule("[a:b:5] x\\\\", 10) == [(5, "a x\\\\"), (10, "b x\\\\")]
    assert prompt_schedule("[a:b:5] \\[x\\]", 10) == [(5, "a \\[x\\]"), (10, "b \\[x\\]")]


@pytest.mark.parametrize("prompt", ["[a:b:\uff15]", "[a:b:\u0665]", "[a:\u0969]", "x [a:b:1\u0660] y"])
def test_non_ascii_digits_are_plain_text(prompt):
    assert prompt_schedule(prompt, 10) == [(10, prompt)]


def test_prompt_at_step_walks_the_schedule():
    schedule = prompt_schedule("a [b:c:3]", 10)
    assert [prompt_at_step(schedule, step) for step in (1, 3, 4, 10)] == ["a b", "a b", "a c", "a c"]


# -- extra networks ------------------------------------------------------------------------


def test_lora_tags_are_extracted_and_removed():
    text, loras = extract_extra_networks("a cat <lora:fubuki:0.8> <lyco:hopper:1.2>, night <lora:plain>")
    assert text == "a cat  , night "
    assert [(lora.name, lora.weight) for lora in loras] == [("fubuki", 0.8), ("hopper", 1.2), ("plain", 1.0)]


def test_named_and_extra_lora_arguments():
    warnings: list[str] = []
    _, loras = extract_extra_networks("<lora:a:te=0.5:unet=0.7>", warnings)
    assert loras[0].weight == 0.5
    assert "separate UNet weight" in warnings[0]


def test_other_extra_networks_are_removed_with_a_warning():
    warnings: list[str] = []
    text, loras = extract_extra_networks("x <hypernet:anime:0.6> y", warnings)
    assert (text, loras) == ("x  y", [])
    assert "hypernet:anime" in warnings[0]


@pytest.mark.parametrize(("tag", "message"), [
    ("<lora:big:7>", "outside -5..5"),
    ("<lora:bad:abc>", "expected a number"),
    ("<lora:inf:inf>", "finite"),
    ("<lora: :1>", "has no name"),
])
def test_bad_lora_tags_name_the_token(tag, message):
    with pytest.raises(PromptSyntaxError, match=message) as caught:
        extract_extra_networks("a " + tag)
    assert caught.value.token == tag and caught.value.column == 3
