"""Per-backend prompt translation: what each dialect receives, and every loss reported."""

from __future__ import annotations

import pytest

from imagegen.errors import PromptSyntaxError
from imagegen.prompt.a1111 import parse_prompt_attention
from imagegen.prompt.translate import (
    plain_text,
    split_sd_prompt,
    to_flux,
    to_midjourney,
    to_sd,
    unsupported_midjourney_options,
)
from imagegen.request import GenerateRequest, LoraRef


def test_flux_gets_plain_text_and_a_warning_for_each_loss():
    request = GenerateRequest(prompt="a (cat:1.3) on a [mat], <lora:style:0.7> BREAK sunset",
                              negative_prompt="blurry")
    text, warnings = to_flux(request)
    assert text == "a cat on a mat, sunset"
    assert any("weights" in w for w in warnings)
    assert any("BREAK" in w for w in warnings)
    assert any("<lora:style>" in w for w in warnings)
    assert any("negative prompt" in w and "blurry" in w for w in warnings)


def test_flux_plain_prompt_has_no_warnings():
    assert to_flux(GenerateRequest(prompt="a red fox in snow")) == ("a red fox in snow", [])


def test_flux_resolves_prompt_editing_to_the_final_prompt():
    text, warnings = to_flux(GenerateRequest(prompt="a [dog:cat:5] in a hat", steps=20))
    assert text == "a cat in a hat"
    assert any("prompt editing" in w for w in warnings)


def test_flux_drops_midjourney_weights_with_a_warning():
    text, warnings = to_flux(GenerateRequest.from_midjourney("space::2 ship:: rain::-0.5"))
    assert text == "space, ship"
    assert any("'::' prompt weights" in w for w in warnings)
    assert any("negative prompt" in w and "rain" in w for w in warnings)


def test_flux_refuses_a_prompt_that_is_only_syntax():
    with pytest.raises(PromptSyntaxError):
        to_flux(GenerateRequest(prompt="<lora:a:1>"))


def test_sd_keeps_a1111_weights_and_moves_lora_tags_to_loras():
    request = GenerateRequest(prompt="a (cat:1.3) <lora:style:0.7>", loras=[LoraRef(name="base", weight=0.5)])
    text, loras, warnings = split_sd_prompt(request)
    assert text == "a (cat:1.3)" and to_sd(request) == text
    assert [(lora.name, lora.weight) for lora in loras] == [("base", 0.5), ("style", 0.7)]
    assert warnings == []


def test_sd_prefers_the_loras_field_when_a_tag_repeats_it():
    request = GenerateRequest(prompt="x <lora:base:1>", loras=[LoraRef(name="base", weight=0.5)])
    _, loras, warnings = split_sd_prompt(request)
    assert loras == [LoraRef(name="base", weight=0.5)] and "both" in warnings[0]


def test_sd_turns_midjourney_weights_into_a1111_weights_averaging_one():
    text = to_sd(GenerateRequest.from_midjourney("space::3 ship:: rain::-1"))
    assert text == "(space:1.5), (ship:0.5)"
    weights = [w for t, w in parse_prompt_attention(text) if t.strip(", ")]
    assert weights == [pytest.approx(1.5), pytest.approx(0.5)]


def test_midjourney_dialect_is_the_rendered_string():
    request = GenerateRequest(prompt="a (cat) {x}", negative_prompt="text", aspect_ratio="16:9", seed=3)
    assert to_midjourney(request) == "a (cat) \\{x\\} --ar 16:9 --no text --seed 3"
    assert GenerateRequest.from_midjourney(to_midjourney(request)).prompt == "a (cat) {x}"


def test_plain_text_collects_warnings_in_the_given_list():
    warnings: list[str] = []
    assert plain_text("((masterpiece)), a cat", warnings=warnings) == "masterpiece, a cat"
    assert len(warnings) == 1


def test_midjourney_only_options_a_backend_ignores_are_listed():
    request = GenerateRequest.from_midjourney("a cat --s 250 --tile --sref 1 --sw 300 --niji 6 --seed 4")
    warnings = unsupported_midjourney_options(request, supported=frozenset({"tile"}))
    assert warnings == [
        "--niji 6 is a Midjourney option this backend ignores",
        "--s 250 is a Midjourney option this backend ignores",
        "--sref 1 is a Midjourney option this backend ignores",
        "--sw 300 is a Midjourney option this backend ignores",
    ]
    assert unsupported_midjourney_options(GenerateRequest.from_midjourney("a:: b --seed 1")) == []
