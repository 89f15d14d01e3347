"""Midjourney-style prompts: permutations, --repeat, mapping to GenerateRequest, round trips."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from imagegen.errors import ImageGenError, PromptSyntaxError
from imagegen.prompt.midjourney import (
    MidjourneyParams,
    MidjourneyPrompt,
    PromptPart,
    StyleRef,
    expand_prompts,
    parse_midjourney,
    render_midjourney,
)
from imagegen.prompt.midjourney_request import to_midjourney
from imagegen.prompt.permutations import count_permutations, expand_permutations
from imagegen.request import GenerateRequest

# -- permutations ------------------------------------------------------------------------


def test_permutation_gives_one_job_per_option_in_order():
    assert expand_permutations("a {red, green, yellow} bird") == ["a red bird", "a green bird", "a yellow bird"]


def test_several_groups_form_a_cartesian_product():
    jobs = expand_permutations("a {red, green} bird in the {jungle, desert}")
    assert jobs == ["a red bird in the jungle", "a red bird in the desert",
                    "a green bird in the jungle", "a green bird in the desert"]


def test_nested_groups_expand_inside_each_option_as_documented():
    text = ("A {sculpture, painting} of a {seagull {on a pier, on a beach}, "
            "poodle {on a sofa, in a truck}}.")
    jobs = expand_permutations(text)
    assert len(jobs) == 8 == count_permutations(text)
    assert jobs[:4] == ["A sculpture of a seagull on a pier.", "A sculpture of a seagull on a beach.",
                        "A sculpture of a poodle on a sofa.", "A sculpture of a poodle in a truck."]


def test_escaped_comma_is_a_literal_comma_inside_an_option():
    assert expand_permutations("{red, pastel \\, yellow} bird") == ["red bird", "pastel, yellow bird"]


def test_escaped_braces_are_literal_braces():
    assert expand_permutations("a \\{b\\} c") == ["a {b} c"]


def test_empty_option_and_glued_group():
    assert expand_permutations("a{b, c}d") == ["abd", "acd"]
    assert expand_permutations("cat {, --style raw}") == ["cat ", "cat --style raw"]


def test_permutation_of_parameter_values_and_of_a_parameter_name():
    requests = GenerateRequest.expand_midjourney("a cat --ar {3:2, 1:1, 2:3, 1:2}")
    assert [r.aspect_ratio for r in requests] == ["3:2", "1:1", "2:3", "1:2"]
    models = GenerateRequest.expand_midjourney("a cat --{v 5, niji}")
    assert [(r.midjourney.version, r.midjourney.niji) for r in models] == [("5", None), (None, "6")]


def test_research_example_three_gives_six_jobs():
    requests = GenerateRequest.expand_midjourney('vintage travel poster of {Lisbon, Kyoto, Reykjavik} with the word "VISIT" '
                                 "in bold letters --ar 2:3 --v 6.1 --s {100, 400}")
    assert len(requests) == 6
    assert {r.midjourney.stylize for r in requests} == {100, 400}
    assert requests[2].prompt.startswith("vintage travel poster of Kyoto")


def test_forty_jobs_are_allowed_and_forty_one_are_not():
    assert len(GenerateRequest.expand_midjourney("a {1,2,3,4,5,6,7,8} {a,b,c,d,e} cat")) == 40
    with pytest.raises(PromptSyntaxError, match="41 jobs"):
        GenerateRequest.expand_midjourney("a {" + ",".join(str(i) for i in range(41)) + "} cat")


def test_an_exploding_permutation_is_refused_without_expanding_it():
    group = "{" + ",".join("abcdefghij") + "}"
    with pytest.raises(PromptSyntaxError, match="more than 400 jobs"):
        expand_permutations(group * 12)  # 10^12 jobs


def test_repeat_unrolls_into_identical_jobs_and_counts_toward_forty():
    requests = GenerateRequest.expand_midjourney("a {red, blue} bird --repeat 2")
    assert [r.prompt for r in requests] == ["a red bird", "a red bird", "a blue bird", "a blue bird"]
    assert all(r.midjourney is None or r.midjourney.repeat is None for r in requests)
    with pytest.raises(PromptSyntaxError, match="60 jobs"):
        GenerateRequest.expand_midjourney("a {b, c} --r 30")


def test_permutations_are_refused_in_relax_mode():
    with pytest.raises(PromptSyntaxError, match="Fast or Turbo"):
        GenerateRequest.expand_midjourney("a {b, c} --relax")


def test_an_error_in_one_permutation_names_that_job():
    with pytest.raises(PromptSyntaxError, match="permutation 2") as caught:
        GenerateRequest.expand_midjourney("a cat --ar {1:1, 1:0}")
    assert caught.value.token == "1:0"


def test_parse_of_a_single_option_group_is_allowed():
    assert parse_midjourney("a {red} bird").parts == (PromptPart("a red bird"),)


# -- mapping to GenerateRequest -----------------------------------------------------------


def test_contract_example_maps_to_request_fields():
    request = GenerateRequest.from_midjourney("a white cat --ar 9:16 --no text --seed 7")
    assert (request.prompt, request.aspect_ratio, request.negative_prompt, request.seed) == (
        "a white cat", "9:16", "text", 7)
    assert request.midjourney is None  # nothing Midjourney-only was asked for
    assert request.size() == (384, 680)


def test_no_list_and_negative_weights_both_become_the_negative_prompt():
    request = GenerateRequest.from_midjourney("tulips:: red::-.5 --no text, watermark")
    assert request.prompt == "tulips"
    assert request.negative_prompt == "text, watermark, red"
    assert request.midjourney.extra["multi_prompt"] == [["tulips", 1.0], ["red", -0.5]]


def test_midjourney_only_parameters_are_kept_typed():
    request = GenerateRequest.from_midjourney(
        "https://a.com/x.png a cat --iw 1.5 --s 250 --c 20 --weird 100 --q 2 --tile --style raw --v 6.1 "
        "--stop 80 --sref https://a.com/s.png::2 --sw 300 --cref https://a.com/c.png --cw 40 --p abc")
    mj = request.midjourney
    assert (mj.stylize, mj.chaos, mj.weird, mj.quality, mj.tile, mj.style, mj.version, mj.stop) == (
        250, 20, 100, 2.0, True, "raw", "6.1", 80)
    assert mj.image_prompts == ["https://a.com/x.png"] and mj.image_weight == 1.5
    assert mj.sref == ["https://a.com/s.png::2"] and mj.cref == ["https://a.com/c.png"]
    assert mj.extra == {"sw": 300, "cw": 40, "personalize": ["abc"]}


def test_niji_is_kept_as_the_anime_model_hint():
    assert GenerateRequest.from_midjourney("a fox --niji 6").midjourney.niji == "6"


def test_overrides_set_request_fields_on_top():
    request = GenerateRequest.from_midjourney("a cat --seed 1", model="local:sd15", steps=30)
    assert (request.model, request.steps, request.seed) == ("local:sd15", 30, 1)


def test_image_only_prompt_cannot_become_a_request():
    assert parse_midjourney("https://a.com/x.png").image_prompts == ("https://a.com/x.png",)
    with pytest.raises(PromptSyntaxError, match="no positive text"):
        GenerateRequest.from_midjourney("https://a.com/x.png")


def test_parse_errors_are_imagegen_errors():
    with pytest.raises(ImageGenError):
        GenerateRequest.from_midjourney("a cat --ar")


def test_to_midjourney_renders_a_plain_request():
    request = GenerateRequest(prompt="a cat", negative_prompt="text, blur", width=768, height=512, seed=5)
    assert to_midjourney(request) == "a cat --ar 3:2 --no text, blur --seed 5"


def test_to_midjourney_keeps_multi_prompt_weights():
    text = "cyberpunk night market:: neon signage::1.5 rain::-0.5 --ar 21:9 --c 20 --v 6"
    assert to_midjourney(GenerateRequest.from_midjourney(text)) == text


def test_edited_prompt_wins_over_stored_multi_prompt_parts():
    request = GenerateRequest.from_midjourney("a::2 b").model_copy(update={"prompt": "something else"})
    assert to_midjourney(request) == "something else"


# -- round trips (property tests) -------------------------------------------------------------

_WORD = st.text(alphabet="abcdefgxyz éü,.'\"!?()[]0123456789", min_size=1, max_size=12).map(str.strip).filter(
    lambda t: t and t[0] not in ".0123456789" and "  " not in t)
_WEIGHT = st.sampled_from([1.0, 1.0, 2.0, 0.5, -0.5, 1.25, 3.0, -1.0, 100.0, 0.0])
_URL = st.sampled_from(["https://a.com/x.png", "https://b.org/p/q.jpg", "http://c.net/z.webp?s=1"])


@st.composite
def _prompts(draw):
    parts = tuple(PromptPart(t, w) for t, w in draw(st.lists(st.tuples(_WORD, _WEIGHT), max_size=3)))
    assume(not parts or sum(p.weight for p in parts) > 0)
    images = tuple(draw(st.lists(_URL, max_size=2)))
    assume(parts or images)
    params = dict(
        aspect=draw(st.none() | st.sampled_from(["1:1", "16:9", "139:100", "2:3"])),
        chaos=draw(st.none() | st.integers(0, 100)),
        negative=tuple(draw(st.lists(st.sampled_from(["text", "red car", "blurry faces"]), max_size=2))),
        quality=draw(st.none() | st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0])),
        repeat=draw(st.none() | st.integers(2, 40)),
        seed=draw(st.none() | st.integers(0, 2**32 - 1)),
        stop=draw(st.none() | st.integers(10, 100)),
        style=draw(st.none() | st.sampled_from(["raw", "random-32", "Ab12cd"])),
        stylize=draw(st.none() | st.integers(0, 1000)),
        tile=draw(st.booleans()),
        weird=draw(st.none() | st.integers(0, 3000)),
        personalize=draw(st.none() | st.lists(st.sampled_from(["p1", "xk-9"]), max_size=2).map(tuple)),
        speed=draw(st.sampled_from([None, "fast", "turbo"])),
        draft=draw(st.booleans()),
        loop=draw(st.booleans()),
    )
    if images:
        params["image_weight"] = draw(st.none() | st.sampled_from([0.0, 0.5, 1.75, 3.0]))
    if parts and draw(st.booleans()):
        params["sref"] = tuple(draw(st.lists(st.builds(StyleRef, st.sampled_from(["1", "random", "https://s.io/a.png"]),
                                                        st.none() | _WEIGHT), min_size=1, max_size=2)))
        params["sw"] = draw(st.none() | st.integers(0, 1000))
    return MidjourneyPrompt(parts=parts, image_prompts=images, params=MidjourneyParams(**params))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_prompts())
def test_parse_of_render_gives_back_the_same_prompt(prompt):
    assert parse_midjourney(render_midjourney(prompt)) == prompt


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(_prompts())
def test_request_survives_to_midjourney_and_back(prompt):
    assume(any(part.weight >= 0 for part in prompt.parts))
    request = GenerateRequest.from_midjourney(render_midjourney(prompt))
    assert GenerateRequest.from_midjourney(to_midjourney(request)) == request


def test_expand_prompts_keeps_repeat_on_the_parsed_prompt():
    assert [p.params.repeat for p in expand_prompts("a {b, c} --r 2")] == [2, 2]


# -- as Midjourney reads prompts people paste -----------------------------------------------


@pytest.mark.parametrize("text", [
    "<https://s.mj.run/9mZ5ZfqmDno> <https://s.mj.run/Hd3tRzLkDUI> a woman in red --iw 2 --v 6",
    "https://s.mj.run/9mZ5ZfqmDno https://s.mj.run/Hd3tRzLkDUI a woman in red --iw 2 --v 6",
])
def test_midjourney_short_links_are_image_prompts(text):
    prompt = parse_midjourney(text)
    assert prompt.image_prompts == ("https://s.mj.run/9mZ5ZfqmDno", "https://s.mj.run/Hd3tRzLkDUI")
    assert prompt.parts == (PromptPart("a woman in red"),) and prompt.params.image_weight == 2
    assert prompt.warnings == ()
    assert parse_midjourney(render_midjourney(prompt)) == prompt


def test_an_angle_bracketed_image_url_is_the_bare_url():
    prompt = parse_midjourney("<https://cdn.example.com/a.png> a cat --sref <https://s.mj.run/abc>")
    assert prompt.image_prompts == ("https://cdn.example.com/a.png",)
    assert prompt.params.sref == (StyleRef("https://s.mj.run/abc"),)


def test_other_links_without_an_image_extension_are_still_refused():
    with pytest.raises(PromptSyntaxError, match="must end in"):
        parse_midjourney("<https://example.com/page> a cat")


def test_repeated_no_is_merged():
    assert parse_midjourney("a cat --no text --no people, dogs --ar 2:3").params.negative == (
        "text", "people", "dogs")
    assert GenerateRequest.from_midjourney("a cat --no text --no people").negative_prompt == "text, people"


@pytest.mark.parametrize("text", ["a cat \u2013-ar 9:16 \u2014no dogs", "a cat \u2013ar 9:16 \u2014-no dogs",
                                  "a cat \u2014ar 9:16 --no dogs"])
def test_an_en_or_em_dash_before_a_parameter_name_is_two_hyphens(text):
    prompt = parse_midjourney(text)
    assert (prompt.parts, prompt.params.aspect, prompt.params.negative) == ((PromptPart("a cat"),), "9:16", ("dogs",))


@pytest.mark.parametrize("text", ["a cat \u2013 a dog", "tea\u2014no sugar", "a cat \u2014arrow", "a cat \u2013ish"])
def test_dashes_in_prose_stay_text(text):
    assert parse_midjourney(text).parts == (PromptPart(text),)


@pytest.mark.parametrize("text", ["/imagine prompt: a cat --ar 16:9", "/imagine prompt:a cat --ar 16:9",
                                  "  /IMAGINE prompt: a cat --ar 16:9", "/imagine a cat --ar 16:9"])
def test_a_leading_imagine_command_is_stripped(text):
    assert GenerateRequest.from_midjourney(text) == GenerateRequest.from_midjourney("a cat --ar 16:9")


def test_errors_after_an_imagine_command_count_columns_from_the_text_as_given():
    with pytest.raises(PromptSyntaxError) as caught:
        parse_midjourney("/imagine prompt: a cat --zzz")
    assert caught.value.column == 24 and caught.value.token == "--zzz"


def test_imagine_inside_the_text_is_kept():
    assert parse_midjourney("a sign saying /imagine prompt: x").parts == (PromptPart("a sign saying /imagine prompt: x"),)
    assert parse_midjourney("/imagined worlds").parts == (PromptPart("/imagined worlds"),)


def test_iw_without_an_image_prompt_is_a_warning():
    prompt = parse_midjourney("a cat --iw 1.5")
    assert prompt.params.image_weight == 1.5
    assert prompt.warnings == ("--iw 1.5 has no effect: the prompt starts with no image prompt",)
    assert GenerateRequest.from_midjourney("a cat --iw 1.5").midjourney.image_weight == 1.5
    jobs = expand_prompts("a {cat, dog} --iw 1")
    assert all("no effect" in job.warnings[0] and "in permutation" in job.warnings[0] for job in jobs)
