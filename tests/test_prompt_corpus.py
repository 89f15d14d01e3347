"""Real prompts and infotexts from public sources (tests/data/prompt_corpus.json, each with its
source) read the way WebUI 1.10 and Midjourney read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
