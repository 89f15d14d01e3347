"""SDXL through the local provider: two text encoders, pooled embeddings, same pixels as diffusers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local import LocalProvider  # noqa: E402
from imagegen.providers.local._prompt import PromptEncoder  # noqa: E402

from imagegen.request import GenerateRequest  # noqa: E402
from imagegen.settings import Settings  # noqa: E402
from tests.local_fixtures import build_sdxl_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_sdxl")
    pipe = build_sdxl_pipeline(root / "models" / "Stable-diffusion" / "tiny_xl")
    provider = LocalProvider(Settings(models_dir=root / "models", home=root / "home", device="cpu"))
    yield pipe, provider, provider.card_for("tiny_xl")
    torch.set_num_threads(before)


def test_sdxl_card_family_and_no_clip_skip(setup):
    _, _, card = setup
    assert card.family == "sdxl" and not card.capabilities.clip_skip


def test_sdxl_embeddings_equal_diffusers_encode_prompt(setup):
    pipe, _, _ = setup
    ours, pooled = PromptEncoder(pipe).encode("a red cat")
    reference, _, reference_pooled, _ = pipe.encode_prompt("a red cat", device="cpu", do_classifier_free_guidance=False)
    assert ours.shape == (1, 77, 32)
    assert torch.equal(ours, reference) and torch.equal(pooled, reference_pooled)


def test_sdxl_pixels_equal_raw_diffusers(setup):
    from diffusers import EulerAncestralDiscreteScheduler

    pipe, provider, card = setup
    request = GenerateRequest(prompt="a red cat", seed=9, steps=3, width=64, height=64, sampler="Euler a")
    ours = provider.run(request, card)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    reference = pipe("a red cat", negative_prompt="", num_inference_steps=3, guidance_scale=7.0, width=64, height=64,
                     generator=[torch.Generator("cpu").manual_seed(9)]).images[0]
    assert np.array_equal(np.asarray(ours.images[0].pil()), np.asarray(reference))


def test_sdxl_weighted_long_prompt_and_hires_run(setup):
    from imagegen.request import HiresFix

    _, provider, card = setup
    prompt = "a (red:1.2) cat BREAK " + ", ".join(["a big tree on a hill"] * 15)
    request = GenerateRequest(prompt=prompt, seed=1, steps=2, width=64, height=64, clip_skip=2,
                              hires=HiresFix(scale=1.5, steps=2, denoising_strength=0.5))
    result = provider.run(request, card)
    assert (result.images[0].width, result.images[0].height) == (96, 96)


def test_sdxl_embedding_file_equals_diffusers_loading_each_encoder(setup, tmp_path):
    from diffusers import EulerAncestralDiscreteScheduler
    from safetensors.torch import save_file

    pipe, provider, card = setup
    folder = provider.settings.models_dir / "embeddings"
    folder.mkdir(exist_ok=True)
    generator = torch.Generator().manual_seed(2)
    clip_l, clip_g = torch.randn(2, 16, generator=generator) * 3, torch.randn(2, 16, generator=generator) * 3
    save_file({"clip_l": clip_l, "clip_g": clip_g}, str(folder / "xlthing.safetensors"))
    save_file({"emb_params": clip_l[:1]}, str(folder / "sd15only.safetensors"))

    request = GenerateRequest(prompt="a red cat, xlthing, sd15only", seed=9, steps=3, width=64, height=64,
                              sampler="Euler a")
    ours = provider.run(request, card)
    pipe.load_textual_inversion({"x": clip_l}, token="xlthing", text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion({"x": clip_g}, token="xlthing", text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="linspace")
    reference = pipe("a red cat, xlthing, sd15only", negative_prompt="", num_inference_steps=3, guidance_scale=7.0,
                     width=64, height=64, generator=[torch.Generator("cpu").manual_seed(9)]).images[0]
    assert np.array_equal(np.asarray(ours.images[0].pil()), np.asarray(reference))
    assert any("sd15only.safetensors not used" in w and "clip_g" in w for w in ours.warnings)
