"""Real prompts and infotexts from public sources (tests/data/prompt_corpus.json, each with its
source) read the way WebUI 1.10 and Midjourney read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from imagegen.errors import ImageGenError
from imagegen.prompt.a1111_schedule import prompt_schedule
from imagegen.prompt.infotext import format_infotext, parse_infotext
from imagegen.request import GenerateRequest

CORPUS = json.loads((Path(__file__).parent / "data" / "prompt_corpus.json").read_text(encoding="utf-8"))


def test_every_entry_names_its_source():
    assert CORPUS["schedules"]["source"].startswith("https://github.com/")
    assert all(entry["source"].startswith("https://github.com/") for entry in CORPUS["infotexts"] + CORPUS["midjourney"])


@pytest.mark.parametrize("case", CORPUS["schedules"]["cases"], ids=lambda case: case["prompt"][:40])
def test_webui_schedule_doctests(case):
    if "known_difference" in case:
        pytest.xfail(case["known_difference"])
    assert prompt_schedule(case["prompt"], case["steps"]) == [tuple(pair) for pair in case["expected"]]


@pytest.mark.parametrize("case", CORPUS["schedules"]["hires_cases"], ids=lambda case: case["prompt"])
def test_webui_hires_schedule_doctests(case):
    assert prompt_schedule(case["prompt"], case["steps"], hires_steps=case["hires_steps"]) == [
        tuple(pair) for pair in case["expected"]]


@pytest.mark.parametrize("entry", CORPUS["infotexts"], ids=lambda entry: entry["text"][:40])
def test_real_infotexts_read_as_webui_reads_them(entry):
    res = parse_infotext(entry["text"])
    assert {key: res[key] for key in entry["fields"]} == entry["fields"]
    assert not any(key in res for key in entry["absent"])
    assert format_infotext(res) == entry["text"]


@pytest.mark.parametrize("entry", CORPUS["midjourney"], ids=lambda entry: entry["text"][:40])
def test_real_midjourney_prompts_expand_as_midjourney_does(entry):
    assert [request.prompt for request in GenerateRequest.expand_midjourney(entry["text"])] == entry["jobs"]


# -- real WebUI infotexts and Midjourney prompts found in public repositories ----------------

INFOTEXTS = CORPUS["webui_infotexts"]
MIDJOURNEY = CORPUS["midjourney_prompts"]


def test_the_real_world_corpus_is_large_and_cited():
    assert len(INFOTEXTS) >= 20 and len(MIDJOURNEY) >= 20
    assert all(entry["source"].startswith("https://") for entry in INFOTEXTS + MIDJOURNEY)
    assert any("Version: v1." in entry["text"] for entry in INFOTEXTS)
    assert any("Lora hashes:" in entry["text"] for entry in INFOTEXTS)
    assert any("Hires upscale:" in entry["text"] for entry in INFOTEXTS)
    for flag in ("--ar", "--v", "--niji", "--no", "--style raw", "--sref", "--stylize", "--s ", "::", "--profile"):
        assert any(flag in entry["text"] for entry in MIDJOURNEY), flag


@pytest.mark.parametrize("entry", INFOTEXTS, ids=lambda entry: entry["text"][:40])
def test_real_webui_infotext_reads_as_written(entry):
    res = parse_infotext(entry["text"])
    assert {key: res.get(key) for key in entry["fields"]} == entry["fields"]


@pytest.mark.parametrize("entry", INFOTEXTS, ids=lambda entry: entry["text"][:40])
def test_real_webui_infotext_builds_a_request(entry):
    if "request_error" in entry:
        with pytest.raises((ImageGenError, ValidationError)) as caught:
            GenerateRequest.from_infotext(entry["text"])
        assert type(caught.value).__name__ == entry["request_error"]["error"]
        return
    request = GenerateRequest.from_infotext(entry["text"])
    expected = entry["request"]
    assert request.prompt and request.prompt in entry["text"] or "<" in entry["text"]
    for key in ("steps", "seed", "width", "height"):
        if key in expected:
            assert getattr(request, key) == expected[key], key
    assert [{"name": lora.name, "weight": lora.weight} for lora in request.loras] == expected.get("loras", [])
    if "hires" in expected:
        assert request.hires is not None
        assert (request.hires.resize_width, request.hires.resize_height) == (
            expected["hires"]["resize_width"], expected["hires"]["resize_height"])
    sampler = parse_infotext(entry["text"]).get("Sampler")
    if sampler:  # legacy names carry the schedule: "DPM++ 2M Karras" = DPM++ 2M + Karras
        assert " ".join(filter(None, (request.sampler, request.scheduler))) == sampler


@pytest.mark.parametrize("entry", INFOTEXTS, ids=lambda entry: entry["text"][:40])
def test_real_webui_infotext_round_trips(entry):
    res = parse_infotext(entry["text"])
    written = format_infotext(res)
    again = parse_infotext(written)
    assert again == res
    assert again.defaults_added == res.defaults_added
    assert (written == entry["text"]) == ("rewritten" not in entry), entry.get("rewritten")


@pytest.mark.parametrize("entry", MIDJOURNEY, ids=lambda entry: entry["text"][:40])
def test_real_midjourney_prompt_reads_as_written(entry):
    if "known_difference" in entry:
        pytest.xfail(entry["known_difference"])
    request = GenerateRequest.from_midjourney(entry["text"])
    assert [job.prompt for job in GenerateRequest.expand_midjourney(entry["text"])] == [request.prompt]
    expect = entry["expect"]
    assert request.prompt == expect["prompt"]
    assert request.negative_prompt == expect["negative_prompt"]
    assert request.aspect_ratio == expect.get("aspect_ratio")
    assert request.seed == expect.get("seed")
    options = request.midjourney
    assert (options is None) == (not entry["midjourney"] and "::" not in entry["text"])
    for key, value in entry["midjourney"].items():
        got = options.extra.get(key) if key == "personalize" else getattr(options, key)
        assert got == value, key


def test_profile_is_read_as_personalization_and_repeats_add_up():
    request = GenerateRequest.from_midjourney("a cat --sref 1 --sref 2::3 --profile ab1 --profile cd2 --v 7")
    assert request.midjourney.sref == ["1", "2::3"]
    assert request.midjourney.extra["personalize"] == ["ab1", "cd2"]
    with pytest.raises(ImageGenError, match="does not work with --v 5"):
        GenerateRequest.from_midjourney("a cat --profile ab1 --v 5")
    with pytest.raises(ImageGenError, match="conflicts with --p"):
        GenerateRequest.from_midjourney("a cat --p ab1 --profile cd2")


def test_pre_1_0_hires_and_hypernet_infotexts_write_back_as_they_were():
    text = "a cat<lora:x:1>\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 960x1600, Hypernet: h, First pass size: 0x0"
    res = parse_infotext(text)
    assert (res["Size-1"], res["Size-2"], res["Hires resize-1"], res["Hires resize-2"]) == (448, 704, 960, 1600)
    assert res["Prompt"] == "a cat<lora:x:1><hypernet:h:1.0>"
    assert format_infotext(res) == text
    assert parse_infotext(format_infotext(res)) == res
