"""The local provider against plain diffusers on a tiny random-weight SD 1.x checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local import LocalProvider  # noqa: E402

from imagegen.errors import ConfigError, ModelLoadError, UserCancelledError  # noqa: E402
from imagegen.prompt.infotext import parse_infotext  # noqa: E402
from imagegen.request import GenerateRequest, HiresFix, LoraRef  # noqa: E402
from imagegen.result import read_infotext  # noqa: E402
from imagegen.settings import Settings  # noqa: E402
from tests.local_fixtures import raw_pipeline  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
STEPS = 3


@pytest.fixture(scope="session")
def provider(tiny, tmp_path_factory):
    return LocalProvider(Settings(models_dir=tiny.models_dir, home=tmp_path_factory.mktemp("home"), device="cpu"))


@pytest.fixture(scope="session")
def card(provider):
    return provider.card_for("tiny")


@pytest.fixture(scope="session")
def raw(tiny):
    pipe = raw_pipeline(tiny.pipeline_dir)
    pipe.original_scheduler_config = dict(pipe.scheduler.config)
    return pipe


def request(**fields) -> GenerateRequest:
    base = {"prompt": "a red cat", "seed": 1234, "steps": STEPS, "width": SIZE, "height": SIZE, "sampler": "Euler"}
    return GenerateRequest(**{**base, **fields})


def pixels(image) -> np.ndarray:
    return np.asarray(image.pil() if hasattr(image, "pil") else image).astype(np.int16)


def raw_run(raw, scheduler, seeds, prompt="a red cat", steps=STEPS, **kwargs):
    import diffusers

    name, flags = scheduler
    raw.scheduler = getattr(diffusers, name).from_config(raw.original_scheduler_config, **flags)
    return raw(prompt, negative_prompt="", num_inference_steps=steps, guidance_scale=7.0, width=SIZE, height=SIZE,
               generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], **kwargs).images


# A1111 name -> the diffusers scheduler and flags it must equal (sd_local.md §3.3-3.4).
SAMPLERS = {
    "Euler": ("EulerDiscreteScheduler", {"timestep_spacing": "linspace"}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {"timestep_spacing": "linspace"}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True, "timestep_spacing": "linspace",
                                                 "algorithm_type": "dpmsolver++"}),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"use_exponential_sigmas": True, "timestep_spacing": "linspace",
                                                     "algorithm_type": "sde-dpmsolver++"}),
    "Heun": ("HeunDiscreteScheduler", {"timestep_spacing": "linspace"}),
    "LMS Karras": ("LMSDiscreteScheduler", {"use_karras_sigmas": True, "timestep_spacing": "linspace"}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {"use_karras_sigmas": True, "timestep_spacing": "linspace"}),
    "DDIM": ("DDIMScheduler", {"timestep_spacing": "leading", "steps_offset": 1}),
    "UniPC": ("UniPCMultistepScheduler", {"timestep_spacing": "leading", "steps_offset": 1}),
}


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_adapter_pixels_equal_raw_diffusers_with_the_same_scheduler(provider, card, raw, sampler):
    ours = provider.run(request(sampler=sampler), card)
    reference = raw_run(raw, SAMPLERS[sampler], [1234])
    assert np.array_equal(pixels(ours.images[0]), pixels(reference[0]))


def same_image(a, b) -> bool:
    """Equal up to float rounding: batched matmuls round differently from single ones (~1e-6),
    which can move a pixel by one level; a different seed changes most pixels by far more."""
    diff = np.abs(pixels(a) - pixels(b))
    return diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_batch_image_i_equals_single_run_with_seed_plus_i(provider, card):
    batch = provider.run(request(sampler="Euler a", seed=10, batch_size=3), card)
    assert [im.seed for im in batch.images] == [10, 11, 12]
    singles = [provider.run(request(sampler="Euler a", seed=10 + i), card).images[0] for i in range(3)]
    for index, image in enumerate(batch.images):
        assert same_image(image, singles[index])
    assert not same_image(batch.images[1], singles[0])


def test_batch_count_times_batch_size_gives_consecutive_seeds(provider, card):
    result = provider.run(request(seed=50, batch_size=2, batch_count=2), card)
    assert [im.seed for im in result.images] == [50, 51, 52, 53]
    last = provider.run(request(seed=53), card)
    assert same_image(result.images[3], last.images[0])


def test_lora_changes_output_exactly_as_diffusers_load_lora_weights(provider, card, raw, tiny):
    base = provider.run(request(), card)
    ours = provider.run(request(loras=[LoraRef(name="tiny_style", weight=0.7)]), card)
    tagged = provider.run(request(prompt="a red cat <lora:tiny_style:0.7>"), card)
    raw.load_lora_weights(str(tiny.lora), adapter_name="style")
    raw.set_adapters(["style"], adapter_weights=[0.7])
    try:
        reference = raw_run(raw, SAMPLERS["Euler"], [1234])
    finally:
        raw.unload_lora_weights()
    assert not np.array_equal(pixels(ours.images[0]), pixels(base.images[0]))
    assert np.array_equal(pixels(ours.images[0]), pixels(reference[0]))
    assert np.array_equal(pixels(tagged.images[0]), pixels(reference[0]))
    assert "Lora hashes" in parse_infotext(tagged.images[0].infotext)


def test_two_loras_with_weights_match_diffusers_set_adapters(provider, card, raw, tiny):
    loras = [LoraRef(name="tiny_style", weight=0.6), LoraRef(name="tiny_detail", weight=-0.8)]
    ours = provider.run(request(loras=loras), card)
    raw.load_lora_weights(str(tiny.lora), adapter_name="a")
    raw.load_lora_weights(str(tiny.models_dir / "Lora" / "tiny_detail.safetensors"), adapter_name="b")
    raw.set_adapters(["a", "b"], adapter_weights=[0.6, -0.8])
    try:
        reference = raw_run(raw, SAMPLERS["Euler"], [1234])
    finally:
        raw.unload_lora_weights()
    assert np.array_equal(pixels(ours.images[0]), pixels(reference[0]))


def test_switching_loras_off_restores_the_base_without_reloading(provider, card):
    provider.run(request(), card)
    loads = provider.cache.loads
    before = provider.run(request(), card)
    provider.run(request(loras=[LoraRef(name="tiny_style", weight=1.0)]), card)
    after = provider.run(request(), card)
    assert np.array_equal(pixels(before.images[0]), pixels(after.images[0]))
    assert provider.cache.loads == loads and after.load_s == 0.0


def test_warm_cache_second_request_does_not_reload(tiny, tmp_path):
    fresh = LocalProvider(Settings(models_dir=tiny.models_dir, home=tmp_path, device="cpu"))
    first = fresh.run(request(), fresh.card_for("tiny"))
    second = fresh.run(request(), fresh.card_for("tiny"))
    assert first.load_s > 0 and second.load_s == 0.0
    assert fresh.cache.loads == 1
    assert first.cost_usd == 0.0 and first.gpu_seconds > 0


class UnetCalls:
    """Counts UNet forward passes (each denoising step is one call with CFG batched)."""

    def __init__(self, unet):
        self.count = 0
        self.handle = unet.register_forward_hook(self._hook)

    def _hook(self, *args):
        self.count += 1


@pytest.mark.parametrize(("steps", "hires_steps", "denoise", "expected_hires"), [(4, 3, 0.5, 3), (4, 0, 0.7, 4)])
def test_hires_fix_runs_a1111_step_count(provider, card, steps, hires_steps, denoise, expected_hires):
    hires = HiresFix(scale=2.0, upscaler="Latent", steps=hires_steps, denoising_strength=denoise)
    provider.run(request(steps=1), card)  # warm
    calls = UnetCalls(provider.cache.model.base.unet)
    try:
        result = provider.run(request(steps=steps, hires=hires), card)
    finally:
        calls.handle.remove()
    assert calls.count == steps + expected_hires
    assert result.raw["hires_steps"] == expected_hires
    assert (result.images[0].width, result.images[0].height) == (2 * SIZE, 2 * SIZE)
    info = parse_infotext(result.images[0].infotext)
    assert info["Hires upscaler"] == "Latent" and info["Denoising strength"] == f"{denoise:g}"


def test_hires_fix_with_an_image_upscaler(provider, card):
    hires = HiresFix(scale=1.5, upscaler="Lanczos", steps=2, denoising_strength=0.5)
    result = provider.run(request(hires=hires), card)
    assert (result.images[0].width, result.images[0].height) == (96, 96)


def test_img2img_runs_a1111_step_count(provider, card):
    init = provider.run(request(), card).images[0].pil()
    calls = UnetCalls(provider.cache.model.base.unet)
    try:
        result = provider.run(request(steps=10, init_image=init, denoising_strength=0.35), card)
    finally:
        calls.handle.remove()
    assert calls.count == int(0.35 * 10) + 1  # A1111: t_enc + 1 steps
    assert result.raw["first_pass_steps"] == 4


def test_inpaint_with_mask_runs_at_the_request_size(provider, card):
    from PIL import Image

    init = provider.run(request(), card).images[0].pil()
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (16, 16, 48, 48))
    result = provider.run(request(init_image=init, mask_image=mask, denoising_strength=0.8), card)
    assert (result.images[0].width, result.images[0].height) == (SIZE, SIZE)


def test_controlnet_openpose_from_keypoints_changes_the_image(provider, card):
    points = [0.0] * 54
    for index, (x, y) in {0: (32, 10), 1: (32, 20), 2: (22, 20), 3: (18, 34), 5: (42, 20), 6: (46, 34),
                          8: (26, 40), 11: (38, 40)}.items():
        points[3 * index: 3 * index + 3] = [x, y, 1.0]
    pose = {"canvas_width": SIZE, "canvas_height": SIZE, "people": [{"pose_keypoints_2d": points}]}
    plain = provider.run(request(), card)
    unit = {"model": "tiny_openpose", "pose": pose, "weight": 1.0}
    posed = provider.run(request(controlnets=[unit]), card)
    assert not np.array_equal(pixels(plain.images[0]), pixels(posed.images[0]))
    again = provider.run(request(controlnets=[unit]), card)
    assert np.array_equal(pixels(posed.images[0]), pixels(again.images[0]))


def test_clip_skip_2_differs_from_1_and_does_not_crash(provider, card):
    one = provider.run(request(clip_skip=1), card)
    two = provider.run(request(clip_skip=2), card)
    assert not np.array_equal(pixels(one.images[0]), pixels(two.images[0]))
    assert parse_infotext(two.images[0].infotext)["Clip skip"] == "2"


def test_prompt_longer_than_77_tokens_works(provider, card):
    long_prompt = ", ".join(["a red cat on a big hill"] * 20)
    result = provider.run(request(prompt=long_prompt), card)
    assert len(result.images) == 1


def test_prompt_editing_changes_the_prompt_mid_run(provider, card):
    def run(prompt):
        return pixels(provider.run(request(prompt=prompt, steps=4), card).images[0])

    edited, cat, dog = run("a [cat:dog:2] photo"), run("a cat photo"), run("a dog photo")
    assert not np.array_equal(edited, cat) and not np.array_equal(edited, dog)
    assert np.array_equal(run("a [cat:dog:4] photo"), cat)  # the switch after the last step never happens


def test_infotext_carries_each_image_seed_and_is_stored_in_the_png(provider, card):
    result = provider.run(request(seed=77, batch_size=2, negative_prompt="blurry"), card)
    second = result.images[1]
    info = parse_infotext(read_infotext(second.data))
    assert info["Seed"] == "78" and info["Negative prompt"] == "blurry"
    assert info["Sampler"] == "Euler" and info["Steps"] == str(STEPS) and info["Size-1"] == str(SIZE)


def test_progress_reports_every_step_and_cancel_stops_between_steps(provider, card):
    events = []
    provider.run(request(steps=4), card, progress=events.append)
    steps = [(e.step, e.total) for e in events if e.stage == "step"]
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]

    def cancel(event):
        if event.stage == "step" and event.step == 2:
            raise UserCancelledError("stopped")

    with pytest.raises(UserCancelledError):
        provider.run(request(steps=4), card, progress=cancel)


def test_missing_checkpoint_is_a_model_load_error_naming_the_path(provider, tmp_path):
    missing = tmp_path / "nothing.safetensors"
    with pytest.raises(ModelLoadError, match="nothing.safetensors"):
        provider.card_for(str(missing))


def test_corrupt_checkpoint_is_a_model_load_error(provider, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ModelLoadError, match="broken.safetensors"):
        provider.card_for(str(broken))


def test_missing_lora_is_a_model_load_error(provider, card):
    with pytest.raises(ModelLoadError, match="no_such_lora"):
        provider.run(request(prompt="a cat <lora:no_such_lora:1>"), card)


def test_unknown_provider_option_names_the_key(provider, card):
    bad = request(provider_options={"local": {"vae_tilling": True}})
    with pytest.raises(ConfigError, match="vae_tilling"):
        provider.prepare(bad, [card])
    with pytest.raises(ConfigError, match="vae_tilling"):
        provider.run(bad, card)


def test_memory_options_keep_the_image(provider, card):
    plain = provider.run(request(), card)
    opts = {"local": {"attention_slicing": True, "vae_tiling": True}}
    sliced = provider.run(request(provider_options=opts), card)
    assert np.abs(pixels(plain.images[0]) - pixels(sliced.images[0])).max() <= 1


def test_inexact_sampler_is_a_check_warning(provider, card):
    warnings = provider.prepare(request(sampler="DPM adaptive"), [card])[0].warnings
    assert any("DPM adaptive" in w for w in warnings)


def test_cards_are_free_local_models_with_family(provider, card):
    assert card.id == "local:tiny" and card.family == "sd15" and card.price.per_gpu_second == 0
    assert card.elo.value is None
    assert [c.id for c in provider.models()] == [c.id for c in provider.models() if c.provider == "local"]
    assert "local:tiny" in [c.id for c in provider.models()]


def test_controlnet_applies_to_the_hires_pass_too(provider, card):
    pose = {"people": [{"pose_keypoints_2d": [32, 10, 1, 32, 20, 1] + [0.0] * 48}]}
    hires = HiresFix(scale=1.5, upscaler="Latent", steps=2, denoising_strength=0.5)
    result = provider.run(request(controlnets=[{"model": "tiny_openpose", "pose": pose}], hires=hires), card)
    assert (result.images[0].width, result.images[0].height) == (96, 96)


def test_unknown_hires_upscaler_lists_the_built_in_ones(provider, card):
    with pytest.raises(ConfigError, match="Latent \\(bicubic\\)"):
        provider.run(request(hires=HiresFix(upscaler="No Such Upscaler")), card)


def test_esrgan_upscaler_file_without_spandrel_asks_for_the_upscale_extra(provider, card, tiny):
    pytest.importorskip("PIL")
    try:
        import spandrel  # noqa: F401
        pytest.skip("spandrel is installed")
    except ImportError:
        pass
    model_file = tiny.models_dir / "ESRGAN" / "4x-Tiny.pth"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    model_file.write_bytes(b"")
    with pytest.raises(ConfigError, match="upscale"):
        provider.run(request(hires=HiresFix(upscaler="4x-Tiny", steps=1)), card)


def test_esrgan_upscaler_through_spandrel(provider, card, tiny):
    pytest.importorskip("spandrel")
    from spandrel.architectures.ESRGAN import ESRGAN

    model_file = tiny.models_dir / "ESRGAN" / "2x-TinyNet.pth"
    model_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2).state_dict(), model_file)
    result = provider.run(request(hires=HiresFix(upscaler="2x-TinyNet", scale=2, steps=1)), card)
    assert (result.images[0].width, result.images[0].height) == (2 * SIZE, 2 * SIZE)


def test_the_client_routes_local_references_to_this_provider(provider):
    from imagegen.client import ImageGen

    with ImageGen(providers=[provider]) as gen:
        result = gen.generate(request(model="local:tiny", seed=5))
    assert result.provider == "local" and result.model == "local:tiny" and result.cost_usd == 0
    assert result.images[0].seed == 5


def test_demo_card_is_listed_only_when_the_demo_model_is_installed(provider):
    from imagegen.providers.local._provider import DEMO_DIR

    ids = [c.id for c in provider.models()]
    if (DEMO_DIR / "model_index.json").is_file():
        demo = provider.card_for("demo")
        assert "local:demo" in ids and demo.kind == "builtin" and demo.family == "demo"
        assert demo.capabilities.clip_skip and demo.capabilities.img2img and not demo.capabilities.lora
    else:
        assert "local:demo" not in ids
        with pytest.raises(ModelLoadError, match="demo"):
            provider.card_for("demo")


def test_controlnet_with_img2img_and_inpaint_runs(provider, card):
    from PIL import Image

    init = provider.run(request(), card).images[0].pil()
    mask = Image.new("L", (SIZE, SIZE), 255)
    unit = {"model": "tiny_openpose", "image": Image.new("RGB", (SIZE, SIZE), (255, 0, 0))}
    img2img = provider.run(request(init_image=init, denoising_strength=0.5, controlnets=[unit], batch_size=2),
                                card)
    inpaint = provider.run(request(init_image=init, mask_image=mask, controlnets=[unit, unit], batch_size=2),
                                card)
    assert img2img.images[0].width == inpaint.images[0].width == SIZE


def test_a_request_without_seed_gets_a_random_one_reported_per_image(provider, card):
    result = provider.run(request(seed=None, batch_size=2), card)
    first, second = (im.seed for im in result.images)
    assert second == first + 1
    assert f"Seed: {first}," in result.images[0].infotext


def test_a1111_kohya_format_lora_gives_the_same_image_as_the_diffusers_format(provider, card, tiny):
    from tests.local_fixtures import to_kohya

    to_kohya(tiny.lora, tiny.models_dir / "Lora" / "tiny_style_kohya.safetensors")
    diffusers_format = provider.run(request(prompt="a red cat <lora:tiny_style:0.9>"), card)
    kohya_format = provider.run(request(prompt="a red cat <lora:tiny_style_kohya:0.9>"), card)
    assert same_image(diffusers_format.images[0], kohya_format.images[0])


def test_variation_strength_1_is_the_variation_seeds_own_image(provider, card):
    # slerp at 1 returns the variation noise exactly; with a deterministic sampler nothing else
    # draws from the generators, so the image is the plain run of the variation seed.
    varied = provider.run(request(seed=1234, variation_seed=99, variation_strength=1.0), card)
    plain = provider.run(request(seed=99), card)
    assert np.array_equal(pixels(varied.images[0]), pixels(plain.images[0]))


def test_variation_equals_diffusers_given_a1111_slerp_noise(provider, card, raw):
    from imagegen.providers.local._run import slerp

    ours = provider.run(request(seed=1234, variation_seed=99, variation_strength=0.3, batch_count=2), card)
    shape = (1, raw.unet.config.in_channels, SIZE // raw.vae_scale_factor, SIZE // raw.vae_scale_factor)
    seed_noise = torch.randn(shape, generator=torch.Generator().manual_seed(1234))[0]
    for index, subseed in enumerate((99, 100)):  # every image keeps the seed; image k uses subseed + k
        sub_noise = torch.randn(shape, generator=torch.Generator().manual_seed(subseed))[0]
        latents = slerp(0.3, seed_noise, sub_noise)[None]
        reference = raw_run(raw, SAMPLERS["Euler"], [1234], latents=latents)
        assert np.array_equal(pixels(ours.images[index]), pixels(reference[0]))
        params = parse_infotext(ours.images[index].infotext)
        assert (params["Seed"], params["Variation seed"], params["Variation seed strength"]) == \
            ("1234", str(subseed), "0.3")
    rebuilt = GenerateRequest.from_infotext(ours.images[1].infotext)
    assert (rebuilt.seed, rebuilt.variation_seed, rebuilt.variation_strength) == (1234, 100, 0.3)


def test_slerp_matches_a1111_on_both_branches():
    from imagegen.providers.local._run import slerp

    a, b = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(1)), torch.randn(4, 8, 8)
    mid = slerp(0.5, a, b)
    # Spherical: the norm along dim 1 stays near the ends' norms, unlike a straight average.
    assert torch.norm(mid, dim=1).mean() > torch.norm((a + b) / 2, dim=1).mean() * 1.2
    assert torch.equal(slerp(0.25, a, a * 1.0), a * 0.25 + a * 0.75)  # A1111's near-parallel branch


def test_variation_on_img2img_is_ignored_with_a_warning(provider, card):
    from PIL import Image

    init = Image.new("RGB", (SIZE, SIZE), (200, 30, 30))
    result = provider.run(request(init_image=init, variation_seed=5, variation_strength=0.5,
                                       denoising_strength=0.5, batch_size=2), card)
    assert any("variation seed ignored" in w for w in result.warnings)
    assert [image.seed for image in result.images] == [1234, 1235]
