"""Any text into any prompt parser gives a result or a PromptSyntaxError, never another exception."""

from __future__ import annotations

import pydantic
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegen.errors import PromptSyntaxError
from imagegen.prompt.a1111 import extract_extra_networks, parse_prompt_attention
from imagegen.prompt.a1111_schedule import prompt_schedule
from imagegen.prompt.infotext import format_infotext, parse_infotext
from imagegen.prompt.midjourney import parse_midjourney, render_midjourney
from imagegen.prompt.translate import to_flux, to_midjourney, to_sd
from imagegen.request import GenerateRequest

# Mostly the characters the grammars care about, plus anything at all.
_SYNTAX = st.text(alphabet="ab c:-\u2014\u2013{},\\/.09()[]|<>=\"'\n\t" + "ar v s no iw sref https://x.png BREAK",
                  max_size=60)
_TEXT = _SYNTAX | st.text(max_size=60)
_MJ_WORDS = st.lists(st.sampled_from(
    ["a", "cat", "--ar", "16:9", "--v", "7", "6.1", "--niji", "--no", "x,", "y", "::", "::-1", "::2", "{", "}",
     "\\,", ",", "--sref", "random", "--cref", "https://a.com/i.png", "--iw", "2", "--q", "4", "--oref",
     "--repeat", "3", "\u2014s", "100", "--style", "raw", "cute", "--p", "--tile", "--w", "--relax", "--{v",
     "5,", "niji}", "\\", "\\{", "https://b.com/p.jpg", "(", "[x:2]", "\u2013-ar", "\u2014no", "/imagine",
     "prompt:", "<https://s.mj.run/a1>", "https://s.mj.run/b2", "<x>"]), max_size=14).map(
    lambda words: "".join(words) if len(words) % 3 == 0 else " ".join(words))
_FUZZ = settings(max_examples=300, deadline=None)


@_FUZZ
@given(_TEXT | _MJ_WORDS)
def test_midjourney_parser_never_fails_unexpectedly(text):
    try:
        prompt = parse_midjourney(text)
    except PromptSyntaxError as error:
        assert error.column is None or 1 <= error.column <= max(1, len(text) + 1)
        return
    assert parse_midjourney(render_midjourney(prompt)) == prompt


@_FUZZ
@given(_TEXT | _MJ_WORDS)
def test_midjourney_expansion_never_fails_unexpectedly(text):
    try:
        requests = GenerateRequest.expand_midjourney(text)
    except (PromptSyntaxError, pydantic.ValidationError):
        return
    assert 1 <= len(requests) <= 40
    for request in requests:  # and each job survives a trip through Midjourney text
        assert GenerateRequest.expand_midjourney(to_midjourney(request)) == [request]


@_FUZZ
@given(_TEXT)
def test_attention_parser_never_fails_unexpectedly(text):
    try:
        pieces = parse_prompt_attention(text)
    except PromptSyntaxError:
        return
    assert pieces and all(isinstance(weight, float) for _, weight in pieces)


@_FUZZ
@given(_TEXT, st.integers(1, 150))
def test_schedule_parser_never_fails_unexpectedly(text, steps):
    schedule = prompt_schedule(text, steps)
    assert schedule[-1][0] == steps and all(1 <= end <= steps for end, _ in schedule)


@_FUZZ
@given(_TEXT)
def test_extra_network_parser_never_fails_unexpectedly(text):
    try:
        extract_extra_networks(text, [])
    except PromptSyntaxError:
        pass


@_FUZZ
@given(_TEXT | st.lists(_TEXT, max_size=4).map("\nSteps: 1, Sampler: Euler, Size: 512x512, ".join))
def test_infotext_parser_never_fails_unexpectedly(text):
    res = parse_infotext(text)
    assert parse_infotext(format_infotext(res)) == parse_infotext(format_infotext(parse_infotext(format_infotext(res))))
    try:
        GenerateRequest.from_infotext(text)
    except (PromptSyntaxError, pydantic.ValidationError):
        pass


@_FUZZ
@given(_TEXT)
def test_translation_never_fails_unexpectedly(text):
    try:
        request = GenerateRequest(prompt=text)
    except pydantic.ValidationError:
        return
    try:
        to_flux(request)
        to_sd(request)
    except PromptSyntaxError:
        pass
