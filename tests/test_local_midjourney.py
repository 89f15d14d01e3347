"""Midjourney multi-prompts on the local adapter: `::` weights reach the text encoder as A1111
weights and `::-w` parts the negative prompt, pixel for pixel as raw diffusers given the same
embeddings."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local import LocalProvider  # noqa: E402

from imagegen.prompt.infotext import parse_infotext  # noqa: E402
from imagegen.request import GenerateRequest  # noqa: E402
from imagegen.settings import Settings  # noqa: E402
from tests.local_fixtures import raw_pipeline  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

MJ = "a red cat:: blue sky::0.5 fruit::-.5 --seed 9"
SIZE, STEPS = 64, 3


@pytest.fixture(scope="module")
def provider(tiny, tmp_path_factory):
    return LocalProvider(Settings(models_dir=tiny.models_dir, home=tmp_path_factory.mktemp("home"), device="cpu"))


def mj_request(text: str = MJ) -> GenerateRequest:
    return GenerateRequest.from_midjourney(text, steps=STEPS, width=SIZE, height=SIZE, sampler="Euler")


def pixels(result) -> np.ndarray:
    return np.asarray(result.images[0].pil()).astype(np.int16)


def test_weights_and_negative_parts_equal_raw_diffusers_embeddings(provider, tiny):
    import diffusers

    ours = provider.run(mj_request(), provider.card_for("tiny"))

    raw = raw_pipeline(tiny.pipeline_dir)
    raw.scheduler = diffusers.EulerDiscreteScheduler.from_config(raw.scheduler.config, timestep_spacing="linspace")
    plain = raw.encode_prompt("a red cat, blue sky", "cpu", 1, False)[0]
    expected = plain.clone()
    expected[0, 1:4] *= 1.3333  # BOS, then "a red cat": Midjourney's 1 : 0.5 scaled to average 1
    expected[0, 5:7] *= 0.6667  # "," keeps weight 1, then "blue sky"
    expected *= plain.mean() / expected.mean()  # A1111 restores the mean after weighting
    negative = raw.encode_prompt("fruit", "cpu", 1, False)[0]
    reference = raw(prompt_embeds=expected, negative_prompt_embeds=negative, num_inference_steps=STEPS,
                    guidance_scale=7.0, width=SIZE, height=SIZE,
                    generator=[torch.Generator("cpu").manual_seed(9)]).images[0]
    assert np.array_equal(pixels(ours), np.asarray(reference).astype(np.int16))


def test_weights_change_the_image_and_the_infotext_reproduces_it(provider):
    card = provider.card_for("tiny")
    weighted = provider.run(mj_request(), card)
    unweighted = provider.run(mj_request("a red cat, blue sky --no fruit --seed 9"), card)
    assert not np.array_equal(pixels(weighted), pixels(unweighted))
    info = parse_infotext(weighted.images[0].infotext)
    assert info["Prompt"] == "(a red cat:1.3333), (blue sky:0.6667)"
    assert info["Negative prompt"] == "fruit"
    again = provider.run(GenerateRequest.from_infotext(weighted.images[0].infotext), card)
    assert np.array_equal(pixels(again), pixels(weighted))
