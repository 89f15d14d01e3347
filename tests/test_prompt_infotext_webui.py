"""Infotext read and written as WebUI 1.10 does (`modules/infotext_utils.py`,
`infotext_versions.py`, `processing.create_infotext`); expected values follow that code."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegen.errors import PromptSyntaxError
from imagegen.prompt.a1111 import LoraTag, extract_extra_networks, lora_tag
from imagegen.prompt.infotext import (
    WEBUI_DEFAULTS,
    format_infotext,
    infotext_from_request,
    parse_infotext,
    parse_version,
    )
from imagegen.request import SEED_MAX, GenerateRequest, HiresFix, LoraRef
from imagegen.samplers import SAMPLERS, SCHEDULE_TYPES

PARAMS = "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512"

# -- Version back-compat ------------------------------------------------------------------


@pytest.mark.parametrize(("version", "expected"), [
    ("v1.5.1", {"Downcast alphas_cumprod": True, "Old prompt editing timelines": True, "Pad conds v0": True,
                "Refiner switch by sampling steps": True}),
    ("v1.6.0", {"Downcast alphas_cumprod": True, "Refiner switch by sampling steps": True}),
    ("v1.7.0-RC-5-gf92d6149", {"Downcast alphas_cumprod": True, "Refiner switch by sampling steps": True}),
    ("v1.7.0-225-g9a43e63f", {"Refiner switch by sampling steps": True}),  # the first with the fix
    ("v1.7.0", {"Downcast alphas_cumprod": True, "Refiner switch by sampling steps": True}),
    ("v1.8.0-RC", {"Refiner switch by sampling steps": True}),
    ("v1.8.0", {}),
    ("v1.10.1", {}),
    ("f2.0.1v1.10.1-previous-519-g44eb4ea8", {}),  # Forge: not a version packaging reads
    ("imagegen 0.1.0", {}),
])
def test_version_turns_on_webui_back_compat_flags(version, expected):
    text = f"a [b:c:5]\nSteps: 20, Sampler: DDIM, CFG scale: 7, Refiner: sdxl_refiner, Version: {version}"
    res = parse_infotext(text)
    flags = ("Downcast alphas_cumprod", "Old prompt editing timelines", "Pad conds v0")
    assert {key: res[key] for key in flags if key in res} == {k: v for k, v in expected.items() if k in flags}
    assert res["Refiner switch by sampling steps"] is expected.get("Refiner switch by sampling steps", False)
    assert set(expected) <= res.defaults_added  # not in the text, so not written back
    assert format_infotext(res) == text


def test_old_timelines_and_pad_conds_need_brackets_and_ddim():
    res = parse_infotext("a b\nSteps: 20, Sampler: Euler a, CFG scale: 7, Version: v1.5.1")
    assert "Old prompt editing timelines" not in res and "Pad conds v0" not in res
    assert res["Downcast alphas_cumprod"] is True
    assert res["Refiner switch by sampling steps"] is False  # no Refiner key


def test_parse_version_orders_as_packaging_does():
    order = ["1.0.0.dev1", "1.0.0a1", "1.0.0b2", "1.0.0rc1", "1.0", "1.0.0.post1", "1.0.1", "v1.7.0-RC",
             "v1.7.0", "v1.7.0-225", "1.10.0"]
    keys = [parse_version(text) for text in order]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert parse_version("1.0") == parse_version("1.0.0") == parse_version("v1.0")
    assert parse_version("1.6.0-2") == parse_version("1.6.0.post2")
    assert parse_version(None) is None and parse_version("") is None and parse_version("latest") is None


# -- reading ------------------------------------------------------------------------------


def test_empty_values_are_dropped_and_defaults_apply():
    res = parse_infotext(f"a cat\nClip skip: , {PARAMS}, Hypernet: , Model: ")
    assert res["Clip skip"] == "1" and "Clip skip" in res.defaults_added
    assert "Hypernet" not in res and res["Prompt"] == "a cat"  # no `<hypernet::1.0>` appended
    assert "Model" not in res
    assert GenerateRequest.from_infotext(f"a cat\nClip skip: , {PARAMS}").clip_skip is None


def test_a_quoted_empty_value_is_kept():
    assert parse_infotext(f'a\n{PARAMS}, Model: ""')["Model"] == ""


def test_hires_prompt_equal_to_the_prompt_reads_as_empty():
    res = parse_infotext(f"a cat\nNegative prompt: dog\n{PARAMS}, Hires prompt: a cat, Version: v1.10.1")
    assert (res["Hires prompt"], res["Hires negative prompt"]) == ("", "")
    other = parse_infotext(f'a cat\n{PARAMS}, Hires prompt: "a cat, detailed", Version: v1.10.1')
    assert other["Hires prompt"] == "a cat, detailed"
    unversioned = parse_infotext(f"a cat\n{PARAMS}, Hires negative prompt: x")
    assert (unversioned["Hires prompt"], unversioned["Hires negative prompt"]) == ("", "x")
    # before 1.8.0-139 WebUI keeps the text as it is
    assert parse_infotext(f"a cat\n{PARAMS}, Hires prompt: a cat, Version: v1.8.0")["Hires prompt"] == "a cat"


def test_prompt_keys_on_the_parameter_line_are_ignored():
    res = parse_infotext(f"a cat\nNegative prompt: dog\n{PARAMS}, Prompt: evil, Negative prompt: worse")
    assert (res["Prompt"], res["Negative prompt"]) == ("a cat", "dog")


def test_leading_empty_lines_of_the_negative_prompt_are_dropped():
    res = parse_infotext(f"a cat\n\nmore\nNegative prompt:\n\n  \nbad hands\n\nugly\n{PARAMS}")
    assert res["Prompt"] == "a cat\n\nmore"  # empty lines inside are kept
    assert res["Negative prompt"] == "bad hands\n\nugly"


def test_first_pass_size_gives_int_sizes():
    res = parse_infotext(f"x\n{PARAMS}, First pass size: 0x0".replace("512x512", "1024x768"))
    # WebUI's old_hires_fix_first_pass_dimensions: about 512x512 pixels, sides rounded up to 64
    assert (res["Size-1"], res["Size-2"], res["Hires resize-1"], res["Hires resize-2"]) == (640, 448, 1024, 768)
    request = GenerateRequest.from_infotext(f"x\n{PARAMS}, First pass size: 256x256, Hires upscaler: Latent")
    assert (request.width, request.height) == (256, 256)
    assert (request.hires.resize_width, request.hires.resize_height) == (512, 512)


def test_a_literal_size_key_that_is_not_a_number_is_left_alone():
    res = parse_infotext(f"x\n{PARAMS}, Size-1: big, First pass size: 256x256")
    assert res["Size-1"] == "big" and res["First pass size-1"] == "256"


def test_hires_resize_with_one_side_zero():
    request = GenerateRequest.from_infotext(f"x\n{PARAMS}, Hires resize: 1024x0, Hires upscaler: Latent")
    assert (request.hires.resize_width, request.hires.resize_height) == (1024, None)


def test_variation_fields_read_on_their_own():
    assert GenerateRequest.from_infotext(f"x\n{PARAMS}, Variation seed strength: 0.3").variation_strength == 0.3
    assert GenerateRequest.from_infotext(f"x\n{PARAMS}, Variation seed: 7").variation_seed == 7


# -- writing ------------------------------------------------------------------------------


def test_variation_seed_and_strength_are_written_as_webui_orders_them():
    request = GenerateRequest(prompt="a cat", seed=1, variation_seed=9, variation_strength=0.1, steps=20,
                              sampler="Euler a", cfg_scale=7, width=512, height=512)
    text = infotext_from_request(request, model_name="sd15", vae_name="vae")
    assert text == ("a cat\nSteps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1, "
                    "Size: 512x512, Model: sd15, VAE: vae, Variation seed: 9, Variation seed strength: 0.1")
    assert GenerateRequest.from_infotext(text) == request
    random = request.model_copy(update={"variation_seed": None})
    assert "Variation seed: -1," in infotext_from_request(random)
    none = request.model_copy(update={"variation_strength": 0.0, "variation_seed": None})
    assert "Variation" not in infotext_from_request(none)


def test_a_bare_request_writes_what_webui_always_writes():
    text = infotext_from_request(GenerateRequest(prompt="Steps: 1, Seed: 2"))
    assert text == ("Steps: 1, Seed: 2\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Automatic, CFG scale: 7, "
                    "Seed: -1, Size: 512x512")
    request = GenerateRequest.from_infotext(text)
    assert request.prompt == "Steps: 1, Seed: 2"  # the short line stays prompt text
    assert (request.steps, request.sampler, request.cfg_scale, request.seed) == (
        WEBUI_DEFAULTS["Steps"], WEBUI_DEFAULTS["Sampler"], WEBUI_DEFAULTS["CFG scale"], -1)


def test_a_request_with_two_fields_is_not_read_back_as_prompt():
    request = GenerateRequest(prompt="a cat", steps=30, seed=4, width=512, height=512, sampler="Euler",
                              cfg_scale=5)
    assert GenerateRequest.from_infotext(infotext_from_request(request)) == request


def test_a_lora_tag_in_the_prompt_takes_the_request_weight():
    request = GenerateRequest(prompt="a <lora:style:0.5> cat", loras=[LoraRef(name="style", weight=0.8),
                                                                     LoraRef(name="extra", weight=0.3)])
    text = infotext_from_request(request)
    assert text.split("\n")[0] == "a <lora:style:0.8> cat <lora:extra:0.3>"
    back = GenerateRequest.from_infotext(text)
    assert back.prompt == "a cat"
    assert back.loras == [LoraRef(name="style", weight=0.8), LoraRef(name="extra", weight=0.3)]


def test_other_tags_in_the_prompt_are_left_as_written():
    request = GenerateRequest(prompt="a <lyco:other:0.5> <hypernet:h:1> cat", loras=[LoraRef(name="x")])
    assert infotext_from_request(request).split("\n")[0] == "a <lyco:other:0.5> <hypernet:h:1> cat <lora:x:1>"


@pytest.mark.parametrize("name", ["a:b", "https://huggingface.co/u/r/resolve/main/style.safetensors",
                                  "C:\\loras\\style.safetensors", "a::b", "name:"])
def test_lora_names_holding_colons_read_back(name):
    request = GenerateRequest(prompt="a cat", loras=[LoraRef(name=name, weight=0.7)], seed=3, steps=20,
                              sampler="Euler", cfg_scale=7, width=512, height=512)
    text = infotext_from_request(request)
    assert f"<lora:{name}:0.7>" in text
    assert GenerateRequest.from_infotext(text) == request


def test_webui_named_items_in_lora_tags_are_read():
    warnings: list[str] = []
    text, loras = extract_extra_networks("a <lora:x:0.6:lbw=MIDD> <lora:y:te=0.2>", warnings)
    assert loras == [LoraTag("x", 0.6), LoraTag("y", 0.2)]
    assert "lbw=" in warnings[0]


def test_a_lora_tag_without_any_weight_is_still_an_error():
    with pytest.raises(PromptSyntaxError, match="expected a number"):
        GenerateRequest.from_infotext(f"a <lora:x:strong>\n{PARAMS}")


def test_lora_weights_are_written_exactly():
    assert lora_tag("x", 0.123456789) == "<lora:x:0.123456789>" and lora_tag("x", 1.0) == "<lora:x:1>"


# -- parse(format(x)) == x for every request infotext can express ------------------------------
#
# Infotext cannot say: a backend default (None) for the fields WebUI always writes (they are
# written as WebUI's defaults), aspect_ratio (written as a size), batch settings, images,
# ControlNet, Midjourney options, model/VAE (only with include_model), clip skip 1, a variation
# seed at strength 0, a scale beside a hires resize, a sampler name that carries its schedule
# ("DPM++ 2M Karras" reads back split), LoRA tags inside the prompt (they read back as `loras`);
# and text WebUI itself reads differently: line-edge spaces, a line starting "Negative prompt:",
# a value shaped like `512x512`.

_TEXT_CHARS = st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="<")
_LINE = st.text(_TEXT_CHARS, min_size=1, max_size=12).map(str.strip).filter(
    lambda line: line and not line.startswith("Negative prompt:"))
_LINES = st.tuples(_LINE, st.lists(st.one_of(_LINE, st.just("")), max_size=3)).map(
    lambda parts: "\n".join([parts[0], *parts[1]]))
_SEGMENT = st.text(st.sampled_from("ab.-_/\\ 19"), max_size=5)
_LORA_NAME = st.lists(_SEGMENT, min_size=1, max_size=3).map(":".join).map(str.strip).filter(
    lambda name: name and not any(_is_number(part) for part in name.split(":")[1:]))
_VALUE = st.text(st.characters(exclude_categories=("Cs",)), max_size=10).filter(
    lambda value: not re.match(r"^(\d+)x(\d+)$", value))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@st.composite
def _hires(draw) -> HiresFix:
    width = draw(st.one_of(st.none(), st.integers(64, 8192)))
    height = draw(st.one_of(st.none(), st.integers(64, 8192)))
    resized = width is not None or height is not None
    return HiresFix(scale=2.0 if resized else draw(st.floats(1, 4)), upscaler=draw(_VALUE),
                    steps=draw(st.integers(0, 150)), denoising_strength=draw(st.floats(0, 1)),
                    resize_width=width, resize_height=height)


@st.composite
def expressible_requests(draw) -> GenerateRequest:
    strength = draw(st.one_of(st.just(0.0), st.floats(0, 1, exclude_min=True)))
    return GenerateRequest(
        prompt=draw(_LINES.map(str.strip)),  # appended LoRA tags take a trailing empty line
        negative_prompt=draw(st.one_of(st.just(""), _LINES)),
        width=draw(st.integers(8, 512)) * 8,
        height=draw(st.integers(8, 512)) * 8,
        steps=draw(st.integers(1, 150)),
        cfg_scale=draw(st.floats(0, 30)),
        sampler=draw(st.sampled_from(list(SAMPLERS))),
        scheduler=draw(st.sampled_from([None, *(s for s in SCHEDULE_TYPES if s != "Automatic")])),
        seed=draw(st.integers(-1, SEED_MAX)),
        variation_seed=draw(st.integers(-1, SEED_MAX)) if strength else None,
        variation_strength=strength,
        loras=draw(st.lists(st.builds(LoraRef, name=_LORA_NAME, weight=st.floats(-5, 5)), max_size=3)),
        clip_skip=draw(st.one_of(st.none(), st.integers(2, 12))),
        hires=draw(st.one_of(st.none(), _hires())),
    )


@settings(max_examples=300, deadline=None)
@given(expressible_requests())
def test_every_expressible_request_reads_back_unchanged(request):
    text = infotext_from_request(request)
    assert GenerateRequest.from_infotext(text) == request
    # and what WebUI's parser (ported in parse_infotext) pastes into its fields
    res = parse_infotext(text)
    assert (res["Steps"], res["Seed"], res["Size-1"], res["Size-2"]) == (
        str(request.steps), str(request.seed), str(request.width), str(request.height))
    assert res["Negative prompt"] == request.negative_prompt
    assert float(res["CFG scale"]) == request.cfg_scale
    assert res["Schedule type"] == (request.scheduler or "Automatic")
    if request.hires:
        assert res["Hires upscaler"] == request.hires.upscaler
    assert res["Clip skip"] == str(request.clip_skip or 1)
