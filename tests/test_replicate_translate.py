"""How a GenerateRequest becomes Flux model inputs on Replicate, before any call is made."""

from __future__ import annotations

import pytest
from imagegen.providers.replicate import ReplicateProvider
from imagegen.providers.replicate._provider import NO_TOKEN
from imagegen.providers.replicate._schemas import MODELS, finetune_card
from imagegen.providers.replicate._translate import plan_request

from imagegen.request import GenerateRequest, LoraRef
from imagegen.settings import Settings

VERSION = "a" * 64


@pytest.fixture(scope="module")
def provider() -> ReplicateProvider:
    return ReplicateProvider(Settings(replicate_api_token="r8_test_token"))


def card(provider: ReplicateProvider, short: str):
    return next(c for c in provider.models() if c.model == f"black-forest-labs/{short}")


def plan(provider, short, **fields):
    return plan_request(GenerateRequest(prompt="a fox", **fields), card(provider, short), seed=11)


def test_every_model_in_the_schema_table_has_a_card_with_a_sourced_price(provider):
    ids = {c.model for c in provider.models()}
    assert ids == set(MODELS)
    for c in provider.models():
        assert c.price.units and c.price.source


def test_supported_ratio_is_sent_as_is_without_warning(provider):
    p = plan(provider, "flux-dev", aspect_ratio="16:9")
    assert p.predictions[0].input["aspect_ratio"] == "16:9"
    assert p.size == (1344, 768) and p.warnings == []


def test_unsupported_ratio_snaps_to_nearest_with_a_warning(provider):
    p = plan(provider, "flux-schnell", aspect_ratio="7:3")
    assert p.predictions[0].input["aspect_ratio"] == "21:9"
    assert any("7:3" in w and "21:9" in w for w in p.warnings)


def test_small_square_uses_quarter_megapixel_render(provider):
    p = plan(provider, "flux-schnell", width=512, height=512)
    assert p.predictions[0].input["aspect_ratio"] == "1:1"
    assert p.predictions[0].input["megapixels"] == "0.25"
    assert p.size == (512, 512) and p.warnings == []


def test_odd_size_on_ratio_only_model_warns_with_rendered_size(provider):
    p = plan(provider, "flux-dev", width=1000, height=600)
    assert p.predictions[0].input["aspect_ratio"] == "16:9"
    assert any("1000x600" in w and "1344x768" in w for w in p.warnings)


def test_pro_takes_custom_size_rounded_to_multiples_of_32(provider):
    p = plan(provider, "flux-1.1-pro", width=1000, height=600)
    sent = p.predictions[0].input
    assert (sent["aspect_ratio"], sent["width"], sent["height"]) == ("custom", 992, 608)
    assert any("992x608" in w for w in p.warnings)


def test_steps_are_clamped_to_the_model_range(provider):
    assert plan(provider, "flux-schnell", steps=20).predictions[0].input["num_inference_steps"] == 4
    assert plan(provider, "flux-pro", steps=30).predictions[0].input["steps"] == 30
    assert "steps" not in plan(provider, "flux-1.1-pro", steps=30).predictions[0].input


def test_cfg_scale_becomes_guidance_clamped_with_a_warning(provider):
    p = plan(provider, "flux-pro", cfg_scale=7)
    assert p.predictions[0].input["guidance"] == 5
    assert any("guidance 5" in w for w in p.warnings)
    assert plan(provider, "flux-dev", cfg_scale=3.5).predictions[0].input["guidance"] == 3.5


def test_jpeg_is_spelled_jpg_and_ultra_webp_is_converted_from_jpg(provider):
    assert plan(provider, "flux-dev", output_format="jpeg").predictions[0].input["output_format"] == "jpg"
    p = plan(provider, "flux-1.1-pro-ultra", output_format="webp")
    assert p.predictions[0].input["output_format"] == "jpg" and p.convert_to == "webp"


def test_batch_is_one_prediction_per_image_with_seed_plus_i(provider):
    p = plan(provider, "flux-schnell", batch_size=6, seed=100)
    assert [pp.input["seed"] for pp in p.predictions] == [100, 101, 102, 103, 104, 105]
    assert all("num_outputs" not in pp.input for pp in p.predictions)


def test_num_outputs_option_groups_images_and_says_seeds_are_shared(provider):
    p = plan(provider, "flux-schnell", batch_size=6, seed=100,
             provider_options={"replicate": {"num_outputs": 4}})
    assert [(pp.input["seed"], pp.input["num_outputs"]) for pp in p.predictions] == [(100, 4), (104, 2)]
    assert p.predictions[0].seeds == [100, None, None, None]
    assert any("reproducible seed" in w for w in p.warnings)


def test_dev_lora_maps_two_loras_and_clamps_the_scale(provider):
    p = plan(provider, "flux-dev-lora", loras=[LoraRef(name="fofr/flux-mona-lisa", weight=0.9),
                                               LoraRef(name="https://x.example/s.safetensors", weight=4)])
    sent = p.predictions[0].input
    assert (sent["lora_weights"], sent["lora_scale"]) == ("fofr/flux-mona-lisa", 0.9)
    assert (sent["extra_lora"], sent["extra_lora_scale"]) == ("https://x.example/s.safetensors", 3)
    assert any("clamped to 3" in w for w in p.warnings)


def test_local_lora_file_or_too_many_loras_is_a_hard_miss(provider):
    assert plan(provider, "flux-dev-lora", loras=[LoraRef(name="my_style.safetensors")]).missing
    three = [LoraRef(name=f"o/m{i}") for i in range(3)]
    assert any("at most 2" in m for m in plan(provider, "flux-dev-lora", loras=three).missing)


def test_passthrough_is_validated_against_the_model_schema(provider):
    assert plan(provider, "flux-dev", provider_options={"replicate": {"go_fast": False}}).missing == []
    bad = plan(provider, "flux-dev", provider_options={"replicate": {
        "raw": True, "megapixels": "2", "seed": 3, "output_quality": 101}}).missing
    assert any("replicate.raw: not an input" in m for m in bad)
    assert any("replicate.megapixels must be one of" in m for m in bad)
    assert any("replicate.seed: set by" in m for m in bad)
    assert any("output_quality must be at most 100" in m for m in bad)


def test_passthrough_overriding_a_translated_value_is_reported(provider):
    p = plan(provider, "flux-dev", aspect_ratio="16:9",
             provider_options={"replicate": {"aspect_ratio": "1:1"}})
    assert p.predictions[0].input["aspect_ratio"] == "1:1"
    assert any("overrides the translated aspect_ratio" in w for w in p.warnings)


def test_check_warns_about_everything_flux_ignores(provider):
    request = GenerateRequest(prompt="a fox", negative_prompt="blurry", sampler="Euler a",
                              vae="sdxl-vae", clip_skip=2, aspect_ratio="7:3")
    result = provider.prepare(request, [card(provider, "flux-dev")])[0]
    text = " | ".join(result.warnings)
    for word in ("negative_prompt", "sampler", "vae", "clip_skip", "7:3"):
        assert word in text
    assert result.ok


def test_check_without_token_is_a_hard_miss_naming_the_variable():
    bare = ReplicateProvider(Settings(replicate_api_token=None))
    result = bare.prepare(GenerateRequest(prompt="a fox"), [bare.models()[0]])[0]
    assert result.missing[0] == NO_TOKEN
    assert len(bare.models()) == len(MODELS)  # cards are still listed


def test_finetune_version_gets_a_card_priced_per_h100_second(provider):
    c = provider.card_for(f"me/my-lora:{VERSION}")
    assert c is not None and c.kind == "finetune" and c.price.per_gpu_second == 0.001525
    assert provider.card_for("me/my-lora") is None and finetune_card("not a ref") is None
    p = plan_request(GenerateRequest(prompt="TOK dog", cfg_scale=4, width=1000, height=600,
                                     loras=[LoraRef(name="o/extra", weight=0.5)]), c, seed=1)
    sent = p.predictions[0].input
    assert p.target.version == VERSION and sent["guidance_scale"] == 4
    assert (sent["aspect_ratio"], sent["width"], sent["height"]) == ("custom", 992, 608)  # multiples of 16, ties to even
    assert (sent["extra_lora"], sent["extra_lora_scale"]) == ("o/extra", 0.5)


def test_a1111_syntax_is_flattened_for_flux_with_warnings():
    from imagegen.providers.replicate._schemas import official_cards
    from imagegen.providers.replicate._translate import plan_request

    from imagegen import GenerateRequest, ModelCard

    card = next(c for c in official_cards() if c.id.endswith("flux-dev"))
    plan = plan_request(GenerateRequest(prompt="a cat, (fluffy:1.3) BREAK [old] box", seed=1), card)
    assert plan.predictions[0].input["prompt"] == "a cat, fluffy, old box"
    assert any("weights" in w for w in plan.warnings)
    assert isinstance(card, ModelCard)


def test_style_raw_turns_on_ultra_raw_mode_and_other_mj_options_warn():
    from imagegen.providers.replicate._schemas import official_cards
    from imagegen.providers.replicate._translate import plan_request

    from imagegen import GenerateRequest

    cards = {c.model.split("/")[-1]: c for c in official_cards()}
    request = GenerateRequest.from_midjourney("a fox --style raw --s 300 --seed 2")
    ultra = plan_request(request, cards["flux-1.1-pro-ultra"])
    assert ultra.predictions[0].input["raw"] is True
    assert not any("--style" in w for w in ultra.warnings)
    assert any("--s 300" in w for w in ultra.warnings)
    dev = plan_request(request, cards["flux-dev"])
    assert "raw" not in dev.predictions[0].input
    assert any("--style raw" in w for w in dev.warnings)


# -- edits, references, megapixels: every change of meaning is a warning -------------------------


def _png(width: int = 40, height: int = 30) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, "PNG")
    return out.getvalue()


def any_card(provider, model):
    return next(c for c in provider.models() if c.model == model)


def test_an_open_init_image_on_an_edit_model_warns_that_the_prompt_is_an_instruction(provider):
    kontext = any_card(provider, "black-forest-labs/flux-kontext-pro")
    open_ = plan_request(GenerateRequest(prompt="a red barn", init_image=_png(), denoising_strength=0.4), kontext)
    assert any("edited by instruction" in w for w in open_.warnings)
    assert any("denoising_strength 0.4 ignored" in w for w in open_.warnings)
    said = plan_request(GenerateRequest(prompt="make it red", init_image=_png(), edit=True), kontext)
    assert not any("edited by instruction" in w for w in said.warnings)
    assert said.predictions[0].input["aspect_ratio"] == "match_input_image"
    # an img2img model keeps img2img when the request leaves it open
    dev = plan_request(GenerateRequest(prompt="a red barn", init_image=_png()), card(provider, "flux-dev"))
    assert "image" in dev.predictions[0].input and not dev.warnings


def test_midjourney_references_map_onto_the_models_reference_inputs_with_warnings(provider):
    text = ("https://e.x/look.png a fox --sref https://e.x/style.png 12345 --cref https://e.x/face.png "
            "--iw 2")
    request = GenerateRequest.from_midjourney(text)
    flux2 = plan_request(request, any_card(provider, "black-forest-labs/flux-2-pro"), seed=1)
    assert flux2.predictions[0].input["input_images"] == [
        "https://e.x/look.png", "https://e.x/style.png", "https://e.x/face.png"]
    joined = " | ".join(flux2.warnings)
    assert "image prompt(s) sent as reference images" in joined
    assert "--sref sent as a reference image: the model may copy its content" in joined
    assert "1 of 2 sent" in joined  # the style code 12345 is not an image
    assert "--cref sent as a reference image" in joined
    photon = plan_request(request, any_card(provider, "luma/photon"), seed=1)
    sent = photon.predictions[0].input
    assert (sent["image_reference_url"], sent["style_reference_url"], sent["character_reference_url"]) == (
        "https://e.x/look.png", "https://e.x/style.png", "https://e.x/face.png")
    # a model with no reference input keeps the old warning: ignored
    schnell = plan_request(request, card(provider, "flux-schnell"), seed=1)
    assert any("--sref" in w and "ignores" in w for w in schnell.warnings)
    assert "input_images" not in schnell.predictions[0].input


def test_midjourney_references_never_push_out_the_requests_own_images(provider):
    request = GenerateRequest.from_midjourney("a fox --cref https://e.x/face.png",
                                              reference_images=[_png()] * 5)
    klein = plan_request(request, any_card(provider, "black-forest-labs/flux-2-klein-4b"), seed=1)
    assert len(klein.predictions[0].input["images"]) == 5 and not klein.missing
    assert any("--cref" in w and "ignores" in w for w in klein.warnings)


def test_output_megapixels_pick_the_nearest_preset_and_say_so(provider):
    pro = any_card(provider, "black-forest-labs/flux-2-pro")
    exact = plan_request(GenerateRequest(prompt="x", output_megapixels=4), pro, seed=1)
    assert exact.predictions[0].input["resolution"] == "4 MP" and not exact.warnings
    near = plan_request(GenerateRequest(prompt="x", output_megapixels=3), pro, seed=1)
    assert any("output_megapixels 3 unavailable: using the nearest, 4 MP" in w for w in near.warnings)
    fixed = plan_request(GenerateRequest(prompt="x", output_megapixels="2K"), any_card(provider, "google/imagen-4"))
    assert any("renders about 1 MP" in w for w in fixed.warnings)
    preset = plan_request(GenerateRequest(prompt="x", output_megapixels="2K"),
                          any_card(provider, "google/nano-banana-2"))
    assert preset.predictions[0].input["resolution"] == "2K"
    assert preset.estimate_usd(any_card(provider, "google/nano-banana-2")) == pytest.approx(0.101)


def test_models_without_a_seed_input_get_no_seed(provider):
    plan = plan_request(GenerateRequest(prompt="x"), any_card(provider, "google/imagen-4"), seed=99)
    assert "seed" not in plan.predictions[0].input and plan.predictions[0].seeds == [None]


def test_input_images_are_priced_by_their_megapixels(provider):
    flex = any_card(provider, "black-forest-labs/flux-2-flex")
    big = plan_request(GenerateRequest(prompt="x", reference_images=[_png(2048, 1024)]), flex, seed=1)
    assert big.input_pixels == (2048 * 1024,)
    assert big.estimate_usd(flex) == pytest.approx(0.06 * 1 + 0.06 * 2)  # 1 MP out, 2 MP in


def test_request_validation_for_the_new_fields():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="edit says how to read init_image"):
        GenerateRequest(prompt="x", edit=True)
    with pytest.raises(ValidationError, match="either width and height or output_megapixels"):
        GenerateRequest(prompt="x", width=512, height=512, output_megapixels=1)
    assert GenerateRequest(prompt="x", output_megapixels="4K").output_megapixels == 16.0
    needs = GenerateRequest(prompt="x", reference_images=[_png()] * 2, init_image=_png(), edit=True).needs()
    assert (needs.reference_images, needs.edit) == (2, True)
