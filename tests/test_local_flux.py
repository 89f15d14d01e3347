"""Local FLUX.1 ([dev], [schnell], Kontext) through the local adapter, against plain diffusers on
tiny random-weight pipelines: same pixels for the same seed and guidance, knobs mapped with
warnings, families read from the weights, single-file transformers with a base folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local._families import checkpoint_family  # noqa: E402
from PIL import Image  # noqa: E402

from imagegen.errors import ConfigError, ModelLoadError  # noqa: E402
from imagegen.prompt.infotext import parse_infotext  # noqa: E402
from imagegen.request import GenerateRequest  # noqa: E402
from tests.local_flow_fixtures import flow_provider, gens, pixels, raw  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
STEPS = 3


@pytest.fixture(scope="session")
def provider(flow, tmp_path_factory):
    return flow_provider(flow, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="session")
def raws(flow):
    cache: dict = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = raw(folder)
        return cache[folder]

    return get


def request(**fields) -> GenerateRequest:
    base = {"prompt": "a red cat", "seed": 1234, "steps": STEPS, "width": SIZE, "height": SIZE}
    return GenerateRequest(**{**base, **fields})


def same_image(a, b) -> bool:
    """Equal up to float rounding (batched matmuls round differently, ~1e-6: a pixel level at most)."""
    diff = np.abs(pixels(a) - pixels(b))
    return diff.max() <= 1 and (diff > 0).mean() < 0.02


def init_image(color=(200, 40, 40)) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), color)
    for x in range(16, 48):
        for y in range(16, 48):
            image.putpixel((x, y), (20, 20, 220))
    return image


def mask_image() -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (0, 0, SIZE // 2, SIZE))
    return mask


# -- families from the weights ------------------------------------------------------------


def test_family_is_read_from_the_weights_never_the_file_name(flow, tmp_path):
    assert checkpoint_family(flow.flux_dev) == "flux-dev"
    assert checkpoint_family(flow.flux_schnell) == "flux-schnell"
    assert checkpoint_family(flow.kontext) == "flux-kontext"
    assert checkpoint_family(flow.dev_single_bfl) == "flux-dev"  # BFL's original names
    schnell = next((flow.flux_schnell / "transformer").glob("*.safetensors"))
    misleading = tmp_path / "flux1-dev-fp8.safetensors"  # a schnell transformer under a dev name
    shutil.copy(schnell, misleading)
    assert checkpoint_family(misleading) == "flux-schnell"
    dev = next((flow.flux_dev / "transformer").glob("*.safetensors"))
    shutil.copy(dev, tmp_path / "sd_xl_base_1.0.safetensors")
    assert checkpoint_family(tmp_path / "sd_xl_base_1.0.safetensors") == "flux-dev"


def test_models_lists_flow_cards_with_their_family_and_weights(provider):
    cards = {card.model: card for card in provider.models()}
    assert cards["tiny_flux_dev"].family == "flux-dev"
    assert cards["tiny_flux_dev"].weights == "flux.1-dev"
    assert cards["tiny_flux_schnell"].weights == "flux.1-schnell"
    assert cards["tiny_kontext"].capabilities.edit
    assert cards["tiny_flux_dev"].price.per_gpu_second == 0.0
    assert not cards["tiny_flux_schnell"].capabilities.cfg


# -- txt2img vs raw diffusers ---------------------------------------------------------------


@pytest.mark.parametrize("cfg", [None, 2.0])
def test_flux_dev_pixels_equal_raw_diffusers_with_the_same_guidance(provider, raws, flow, cfg):
    result = provider.run(request(cfg_scale=cfg), provider.card_for("tiny_flux_dev"))
    reference = raws(flow.flux_dev)("a red cat", num_inference_steps=STEPS, guidance_scale=3.5 if cfg is None else cfg,
                                    width=SIZE, height=SIZE, generator=gens(1234)).images[0]
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
    assert result.raw["pipeline"] == "FluxPipeline"
    if cfg is not None:
        assert any("distilled guidance" in w for w in result.warnings)
    info = parse_infotext(result.images[0].infotext)
    assert info["Seed"] == "1234" and float(info["Distilled CFG Scale"]) == (3.5 if cfg is None else cfg)


def test_flux_schnell_equals_raw_and_warns_about_what_it_ignores(provider, raws, flow):
    result = provider.run(request(steps=2, cfg_scale=7.0, negative_prompt="blurry", sampler="DPM++ 2M",
                                  scheduler="Karras"), provider.card_for("tiny_flux_schnell"))
    reference = raws(flow.flux_schnell)("a red cat", num_inference_steps=2, guidance_scale=0.0, width=SIZE,
                                        height=SIZE, generator=gens(1234), max_sequence_length=256).images[0]
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
    text = " | ".join(result.warnings)
    assert "cfg_scale ignored" in text and "negative_prompt ignored" in text
    assert "sampler 'DPM++ 2M' has no meaning" in text and "schedule type 'Karras' ignored" in text
    # the generic capability warnings are replaced, not repeated
    assert sum("negative_prompt" in w for w in result.warnings) == 1


def test_true_cfg_makes_the_negative_prompt_count_as_in_raw_diffusers(provider, raws, flow):
    req = request(negative_prompt="blue", provider_options={"local": {"true_cfg_scale": 4.0}})
    result = provider.run(req, provider.card_for("tiny_flux_dev"))
    reference = raws(flow.flux_dev)("a red cat", negative_prompt="blue", true_cfg_scale=4.0, num_inference_steps=STEPS,
                                    guidance_scale=3.5, width=SIZE, height=SIZE, generator=gens(1234)).images[0]
    plain = provider.run(request(), provider.card_for("tiny_flux_dev"))
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
    assert not np.array_equal(pixels(result.images[0]), pixels(plain.images[0]))
    assert not any("negative_prompt ignored" in w for w in result.warnings)
    assert float(parse_infotext(result.images[0].infotext)["True CFG scale"]) == 4.0


def test_batch_image_i_is_seed_plus_i_from_its_own_generator(provider):
    card = provider.card_for("tiny_flux_dev")
    batch = provider.run(request(seed=10, batch_size=3), card)
    assert [im.seed for im in batch.images] == [10, 11, 12]
    for index in range(3):
        single = provider.run(request(seed=10 + index), card).images[0]
        assert same_image(batch.images[index], single)
    assert not same_image(batch.images[0], batch.images[1])


def test_image_is_reproducible_from_its_infotext(provider):
    card = provider.card_for("tiny_flux_dev")
    first = provider.run(request(seed=77, cfg_scale=2.5), card).images[0]
    again = GenerateRequest.from_infotext(first.infotext, width=SIZE, height=SIZE)
    assert again.seed == 77 and again.cfg_scale == 2.5 and again.steps == STEPS
    assert np.array_equal(pixels(provider.run(again, card).images[0]), pixels(first))


def test_sizes_round_down_to_multiples_of_16_with_a_warning(provider):
    result = provider.run(request(width=72, height=88), provider.card_for("tiny_flux_schnell"))
    assert (result.images[0].width, result.images[0].height) == (64, 80)
    assert any("multiples of 16" in w for w in result.warnings)


def test_a1111_weights_are_plain_text_for_t5(provider):
    card = provider.card_for("tiny_flux_schnell")
    weighted = provider.run(request(prompt="a (red:1.3) cat BREAK"), card)
    plain = provider.run(request(prompt="a red cat"), card)
    assert np.array_equal(pixels(weighted.images[0]), pixels(plain.images[0]))
    assert any("prompt weights" in w for w in weighted.warnings)
    assert any("BREAK ignored" in w for w in weighted.warnings)


# -- img2img, inpaint, Kontext edit ---------------------------------------------------------


def test_img2img_equals_raw_flux_img2img_with_a1111_step_rule(provider, flow):
    from diffusers import FluxImg2ImgPipeline

    result = provider.run(request(init_image=init_image(), denoising_strength=0.6, steps=5),
                          provider.card_for("tiny_flux_dev"))
    pipe = FluxImg2ImgPipeline.from_pretrained(flow.flux_dev, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    # A1111 runs int(0.6 * 5) + 1 = 4 of 5 steps
    reference = pipe("a red cat", image=[init_image()], strength=4 / 5, num_inference_steps=5, guidance_scale=3.5,
                     width=SIZE, height=SIZE, generator=gens(1234)).images[0]
    assert result.raw["kind"] == "img2img"
    assert np.array_equal(pixels(result.images[0]), pixels(reference))


def test_inpaint_equals_raw_flux_inpaint(provider, flow):
    from diffusers import FluxInpaintPipeline

    result = provider.run(request(init_image=init_image(), mask_image=mask_image(), denoising_strength=0.75, steps=4),
                          provider.card_for("tiny_flux_dev"))
    pipe = FluxInpaintPipeline.from_pretrained(flow.flux_dev, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    reference = pipe("a red cat", image=[init_image()], mask_image=[mask_image()], strength=4 / 4,
                     num_inference_steps=4, guidance_scale=3.5, width=SIZE, height=SIZE, generator=gens(1234)).images[0]
    assert result.raw["pipeline"] == "FluxInpaintPipeline"
    assert np.array_equal(pixels(result.images[0]), pixels(reference))


def test_kontext_edit_uses_the_init_image_and_the_instruction(provider, raws, flow):
    req = request(prompt="make it green", init_image=init_image(), denoising_strength=0.5)
    result = provider.run(req, provider.card_for("tiny_kontext"))
    reference = raws(flow.kontext)(prompt="make it green", image=init_image(), num_inference_steps=STEPS,
                                   guidance_scale=2.5, width=SIZE, height=SIZE, max_area=SIZE * SIZE,
                                   generator=gens(1234), _auto_resize=False).images[0]
    other = provider.run(request(prompt="make it green", init_image=init_image((10, 200, 10))),
                         provider.card_for("tiny_kontext"))
    assert result.raw["kind"] == "edit"
    assert np.array_equal(pixels(result.images[0]), pixels(reference))
    assert not np.array_equal(pixels(result.images[0]), pixels(other.images[0]))  # the image conditions it
    assert any("denoising_strength ignored" in w for w in result.warnings)


def test_edit_without_a_size_takes_the_init_image_size_in_multiples_of_16(provider):
    image = Image.new("RGB", (100, 72), (100, 100, 100))
    result = provider.run(GenerateRequest(prompt="a cat", seed=1, steps=2, init_image=image),
                          provider.card_for("tiny_kontext"))
    assert (result.images[0].width, result.images[0].height) == (96, 64)


# -- single-file transformers ---------------------------------------------------------------


def test_single_file_transformer_with_base_folder_equals_the_folder(provider, flow):
    folder = provider.run(request(), provider.card_for("tiny_flux_dev"))
    card = provider.card_for(str(flow.dev_single))
    assert card.family == "flux-dev"
    result = provider.run(request(provider_options={"local": {"base": str(flow.flux_dev)}}), card)
    assert np.array_equal(pixels(result.images[0]), pixels(folder.images[0]))
    assert result.raw["base"] == str(flow.flux_dev)
    # the base of another architecture is refused, naming both
    with pytest.raises(ModelLoadError, match="FLUX.2"):
        provider.run(request(provider_options={"local": {"base": str(flow.klein)}}), card)


def test_bad_local_options_name_the_key(provider):
    card = provider.card_for("tiny_flux_dev")
    with pytest.raises(ConfigError, match="offload"):
        provider.run(request(provider_options={"local": {"offload": "gpu"}}), card)
    with pytest.raises(ConfigError, match="true_cfg_scale"):
        provider.run(request(provider_options={"local": {"true_cfg_scale": "high"}}), card)


def test_kontext_inpaint_equals_raw_kontext_inpaint(provider, raws, flow):
    from diffusers import FluxKontextInpaintPipeline

    result = provider.run(request(prompt="a hat", init_image=init_image(), mask_image=mask_image(),
                                  denoising_strength=0.75, steps=4), provider.card_for("tiny_kontext"))
    pipe = FluxKontextInpaintPipeline.from_pipe(raws(flow.kontext))
    reference = pipe(prompt=["a hat"], image=[init_image()], mask_image=[mask_image()], strength=4 / 4,
                     num_inference_steps=4, guidance_scale=2.5, width=SIZE, height=SIZE, max_area=SIZE * SIZE,
                     _auto_resize=False, generator=gens(1234)).images[0]
    assert result.raw["pipeline"] == "FluxKontextInpaintPipeline"
    assert np.array_equal(pixels(result.images[0]), pixels(reference))


def test_progress_reports_every_step_and_cancel_stops_between_steps(provider):
    from imagegen.errors import UserCancelledError

    card = provider.card_for("tiny_flux_schnell")
    events = []
    provider.run(request(steps=4), card, progress=events.append)
    assert [(e.step, e.total) for e in events if e.stage == "step"] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert events[0].stage == "load"

    def cancel(event):
        if event.stage == "step" and event.step == 2:
            raise UserCancelledError("stopped")

    with pytest.raises(UserCancelledError):
        provider.run(request(steps=4), card, progress=cancel)
    assert provider.run(request(steps=2), card).images  # the warm model still serves
