"""A1111 infotext: the real strings of the WebUI research notes parse, format and round-trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import imagegen
from imagegen.errors import PromptSyntaxError
from imagegen.prompt.infotext import (
    format_infotext,
    infotext_from_request,
    parse_infotext,
    quote,
    split_infotext,
)
from imagegen.request import GenerateRequest, HiresFix, LoraRef

# A1111's own docstring example (modules/infotext_utils.py): old format, 8-char model hash.
A1111_DOCSTRING = """girl with an artist's beret, determined, blue eyes, desert scene, computer monitors, heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish), detailed, intricate
Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy, disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly), (poorly drawn hands), messy drawing
Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"""

# v1.9.3 from a LoRA-training README: Schedule type, hires, VAE, quoted Lora hashes.
V193_HIRES = """... <lora:fubuki:1> <lora:space_hopper:1>
Negative prompt: bad fingers
Steps: 20, Sampler: DPM++ 2M SDE, Schedule type: Karras, CFG scale: 7, Seed: 2245042501, Size: 512x768, Model hash: d4c1719023, Model: animekawa_v10, VAE hash: 735e4c3a44, VAE: vaeFtMse840000EmaPruned_vae.safetensors, Denoising strength: 0.6, Hires upscale: 2, Hires steps: 10, Hires upscaler: R-ESRGAN 4x+ Anime6B, Lora hashes: "fubuki: ce30cae7c555, space_hopper: f4112c058273", Version: v1.9.3"""

# A tool's unit test: legacy combined sampler, ENSD, Clip skip, Latent hires, multi-line prompt.
LEGACY_MULTILINE = """(colorful:1.3),
dreamlike fantasy landscape where everything is a shade of pink,
 <lora:NAI-cutesexyrobutts:1>
Negative prompt: (worst quality:1.4), (low quality:1.4) , (monochrome:1.1)
Steps: 40, Sampler: DPM++ 2M Karras, CFG scale: 12, Seed: 2416682767, Size: 640x512, Model hash: 0f0eaaa61e, Model: pastelmix-better-vae-fp16, Denoising strength: 0.55, Clip skip: 2, ENSD: 31337, Hires upscale: 2, Hires steps: 20, Hires upscaler: Latent"""

LCM_V194 = """a portrait
Steps: 6, Sampler: LCM, Schedule type: Automatic, CFG scale: 1.5, Seed: 3748719078, Size: 768x1024, Model hash: 19bbe9faa4, Model: fantasticmix_k2, VAE hash: 07af11b95c, VAE: vae-ft-mse-840000-ema-pruned.safetensors, Clip skip: 2, Lora hashes: "LCM_15: aaebf6360f7d, ip-adapter-faceid-plusv2_sd15_lora: a95a0f4bdcb9", TI hashes: "MajicNegative_V2: a53884ef726b, badhandv4: 5e40d722fc3d", Downcast alphas_cumprod: True, Version: v1.9.4"""

OLD_UNQUOTED_HASHES = """a face
Steps: 20, Sampler: Euler a, CFG scale: 7, Hires upscaler: R-ESRGAN 4x+ Anime6B, Lora hashes: jpface: bc0b0c346d61, other2: 0123456789ab, Version: v1.3.0"""


def test_docstring_example_parses_like_a1111():
    res = parse_infotext(A1111_DOCSTRING)
    assert res["Prompt"].startswith("girl with an artist's beret") and res["Prompt"].endswith("intricate")
    assert res["Negative prompt"].startswith("ugly, fat") and res["Negative prompt"].endswith("messy drawing")
    assert (res["Steps"], res["Sampler"], res["CFG scale"], res["Seed"]) == ("20", "Euler a", "7", "965400086")
    assert (res["Size-1"], res["Size-2"], res["Model hash"]) == ("512", "512", "45dee52b")
    assert "Size" not in res
    # A1111's defaults for what the text does not say
    assert (res["Clip skip"], res["RNG"], res["Schedule type"], res["Hires resize-1"]) == ("1", "GPU", "Automatic", 0)
    assert res["Emphasis"] == "Original"  # the prompt uses (...) emphasis


def test_quoted_values_are_unquoted_and_unknown_keys_kept():
    res = parse_infotext(V193_HIRES)
    assert res["Lora hashes"] == "fubuki: ce30cae7c555, space_hopper: f4112c058273"
    assert res["VAE hash"] == "735e4c3a44" and res["Version"] == "v1.9.3"
    lcm = parse_infotext(LCM_V194)
    assert lcm["TI hashes"] == "MajicNegative_V2: a53884ef726b, badhandv4: 5e40d722fc3d"
    assert lcm["Downcast alphas_cumprod"] == "True"


def test_old_unquoted_lora_hashes_are_tolerated():
    res = parse_infotext(OLD_UNQUOTED_HASHES)
    assert res["Lora hashes"] == "jpface: bc0b0c346d61"
    assert res["other2"] == "0123456789ab"  # the bogus key A1111's regex yields, kept
    assert res["Version"] == "v1.3.0"


def test_multi_line_prompt_and_negative():
    prompt, negative, pairs = split_infotext(LEGACY_MULTILINE)
    assert prompt == ("(colorful:1.3),\ndreamlike fantasy landscape where everything is a shade of pink,\n"
                      "<lora:NAI-cutesexyrobutts:1>")
    assert negative == "(worst quality:1.4), (low quality:1.4) , (monochrome:1.1)"
    assert pairs[1] == ("Sampler", "DPM++ 2M Karras") and len(pairs) == 13


def test_a_last_line_with_fewer_than_three_params_is_prompt_text():
    res = parse_infotext("a cat\nSteps: 20, Seed: 1")
    assert res["Prompt"] == "a cat\nSteps: 20, Seed: 1" and "Steps" not in res


def test_old_first_pass_size_becomes_hires_resize():
    res = parse_infotext("x\nSteps: 20, Sampler: Euler, Size: 1024x1024, First pass size: 512x512")
    # ints, as WebUI's restore_old_hires_fix_params leaves them
    assert (res["Size-1"], res["Size-2"], res["Hires resize-1"], res["Hires resize-2"]) == (512, 512, 1024, 1024)


def test_docstring_example_maps_to_a_request():
    request = GenerateRequest.from_infotext(A1111_DOCSTRING)
    assert (request.steps, request.sampler, request.scheduler, request.cfg_scale, request.seed) == (
        20, "Euler a", None, 7.0, 965400086)
    assert (request.width, request.height, request.clip_skip, request.hires, request.loras) == (
        512, 512, None, None, [])
    assert request.negative_prompt.startswith("ugly, fat")


def test_v193_example_maps_hires_and_loras():
    request = GenerateRequest.from_infotext(V193_HIRES)
    assert request.prompt == "..."
    assert request.loras == [LoraRef(name="fubuki", weight=1.0), LoraRef(name="space_hopper", weight=1.0)]
    assert (request.sampler, request.scheduler, request.width, request.height) == ("DPM++ 2M SDE", "Karras", 512, 768)
    assert request.hires == HiresFix(scale=2.0, steps=10, upscaler="R-ESRGAN 4x+ Anime6B", denoising_strength=0.6)
    assert request.model is None and request.vae is None
    named = GenerateRequest.from_infotext(V193_HIRES, include_model=True)
    assert (named.model, named.vae) == ("local:animekawa_v10", "vaeFtMse840000EmaPruned_vae.safetensors")


def test_legacy_combined_sampler_is_split_and_clip_skip_read():
    request = GenerateRequest.from_infotext(LEGACY_MULTILINE)
    assert (request.sampler, request.scheduler, request.clip_skip, request.seed) == ("DPM++ 2M", "Karras", 2, 2416682767)
    assert request.hires == HiresFix(scale=2.0, steps=20, upscaler="Latent", denoising_strength=0.55)
    assert request.loras == [LoraRef(name="NAI-cutesexyrobutts", weight=1.0)]
    assert request.prompt == "(colorful:1.3),\ndreamlike fantasy landscape where everything is a shade of pink,"


@pytest.mark.parametrize("text", [A1111_DOCSTRING, V193_HIRES, LCM_V194])
def test_format_of_parse_reproduces_the_original_text(text):
    assert format_infotext(parse_infotext(text)) == text


@pytest.mark.parametrize("text", [A1111_DOCSTRING, V193_HIRES, LEGACY_MULTILINE, LCM_V194, OLD_UNQUOTED_HASHES])
def test_parse_format_parse_is_stable(text):
    once = parse_infotext(text)
    assert parse_infotext(format_infotext(once)) == once


@pytest.mark.parametrize("text", [A1111_DOCSTRING, V193_HIRES, LEGACY_MULTILINE, LCM_V194])
def test_request_round_trips_through_infotext(text):
    request = GenerateRequest.from_infotext(text)
    assert GenerateRequest.from_infotext(infotext_from_request(request)) == request


def test_quoting_follows_a1111():
    assert quote("plain") == "plain"
    assert quote("a, b") == '"a, b"'
    assert quote('say "hi": now') == '"say \\"hi\\": now"'
    assert quote("line\nbreak") == '"line\\nbreak"'
    assert quote(7.0) == "7" and quote(0.55) == "0.55"


def test_infotext_from_request_writes_a1111_key_order():
    request = GenerateRequest(prompt="a cat", negative_prompt="dog", steps=20, sampler="DPM++ 2M Karras",
                              cfg_scale=7, seed=42, width=512, height=768, clip_skip=2,
                              loras=[LoraRef(name="style", weight=0.8)],
                              hires=HiresFix(scale=1.5, steps=10, upscaler="Latent", denoising_strength=0.5))
    text = infotext_from_request(request, model_name="sd15", model_hash="abcdef0123", version="v1.10.1",
                                 extra={"Lora hashes": "style: 0123456789ab"})
    assert text == (
        "a cat <lora:style:0.8>\nNegative prompt: dog\n"
        "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, "
        "Model hash: abcdef0123, Model: sd15, Denoising strength: 0.5, Clip skip: 2, Hires upscale: 1.5, "
        'Hires steps: 10, Hires upscaler: Latent, Lora hashes: "style: 0123456789ab", Version: v1.10.1')
    # The legacy combined name is written the 1.9+ way, and reads back split.
    split = request.model_copy(update={"sampler": "DPM++ 2M", "scheduler": "Karras"})
    assert GenerateRequest.from_infotext(text) == split
    assert infotext_from_request(split, model_name="sd15", model_hash="abcdef0123", version="v1.10.1",
                                 extra={"Lora hashes": "style: 0123456789ab"}) == text


def test_public_names_delegate_here():
    assert imagegen.parse_infotext is parse_infotext and imagegen.format_infotext is format_infotext
    assert GenerateRequest.from_infotext(A1111_DOCSTRING) == GenerateRequest.from_infotext(A1111_DOCSTRING)


def test_non_numeric_field_is_an_error_naming_the_field():
    with pytest.raises(PromptSyntaxError, match="infotext Steps: expected a whole number, got 'many'"):
        GenerateRequest.from_infotext("a\nSteps: many, Sampler: Euler, CFG scale: 7")


def test_unknown_sampler_is_an_error_naming_it():
    with pytest.raises(PromptSyntaxError, match="unknown sampler 'Warp 9'"):
        GenerateRequest.from_infotext("a\nSteps: 5, Sampler: Warp 9, CFG scale: 7")


_VALUE = st.text(alphabet='ab ,:"\\\n1x', min_size=1, max_size=10).filter(lambda v: v == v.strip())


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["Steps", "Sampler", "My key", "Lora hashes", "Hires prompt"]), _VALUE,
                       min_size=3))
def test_any_written_value_reads_back_unchanged(params):
    pairs = split_infotext(format_infotext(params, "a prompt", "neg"))[2]
    assert dict(pairs) == params
