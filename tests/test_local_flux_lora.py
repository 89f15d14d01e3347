"""FLUX LoRAs on the local adapter: the layouts people have (diffusers/peft, ai-toolkit as
Replicate's trainers write it, kohya, XLabs) change the output exactly as raw diffusers'
`load_lora_weights` does; several at once with their weights; another family's LoRA is refused
naming both; the LoRA's hash is in the infotext. Also single-file transformers in BFL's names."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local import LocalProvider  # noqa: E402

from imagegen.errors import ModelLoadError  # noqa: E402
from imagegen.prompt.infotext import parse_infotext  # noqa: E402
from imagegen.request import GenerateRequest, LoraRef  # noqa: E402
from imagegen.settings import Settings  # noqa: E402
from tests.local_flow_fixtures import flow_provider, pixels, raw  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
STEPS = 3
FORMATS = ["flux_diffusers", "flux_aitoolkit", "flux_kohya", "flux_xlabs"]


@pytest.fixture(scope="session")
def provider(flow, tmp_path_factory):
    return flow_provider(flow, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def dev(flow):
    return raw(flow.flux_dev)


def request(**fields) -> GenerateRequest:
    base = {"prompt": "a red cat", "seed": 1234, "steps": STEPS, "width": SIZE, "height": SIZE}
    return GenerateRequest(**{**base, **fields})


def raw_with(pipe, loras: list[tuple[str, float]], flow) -> np.ndarray:
    names = []
    for index, (name, _) in enumerate(loras):
        pipe.load_lora_weights(str(flow.lora_dir / f"{name}.safetensors"), adapter_name=f"ref_{index}")
        names.append(f"ref_{index}")
    pipe.set_adapters(names, adapter_weights=[w for _, w in loras])
    try:
        out = pipe("a red cat", num_inference_steps=STEPS, guidance_scale=3.5, width=SIZE, height=SIZE,
                   generator=[torch.Generator("cpu").manual_seed(1234)]).images[0]
    finally:
        pipe.unload_lora_weights()
    return pixels(out)


@pytest.mark.parametrize("name", FORMATS)
def test_each_layout_changes_the_output_exactly_as_raw_load_lora_weights(provider, dev, flow, name):
    card = provider.card_for("tiny_flux_dev")
    base = provider.run(request(), card)
    ours = provider.run(request(loras=[LoraRef(name=name, weight=0.8)]), card)
    assert not np.array_equal(pixels(ours.images[0]), pixels(base.images[0]))
    assert np.array_equal(pixels(ours.images[0]), raw_with(dev, [(name, 0.8)], flow))
    info = parse_infotext(ours.images[0].infotext)
    assert info["Lora hashes"].startswith(f"{name}: ") and len(info["Lora hashes"].split(": ")[1]) == 12


def test_the_four_layouts_hold_the_same_lora(provider):
    card = provider.card_for("tiny_flux_dev")
    images = [pixels(provider.run(request(loras=[LoraRef(name=n, weight=1.0)]), card).images[0]) for n in FORMATS]
    for other in images[1:]:
        assert np.abs(other - images[0]).max() <= 1


def test_tags_and_several_loras_with_their_weights(provider, dev, flow):
    card = provider.card_for("tiny_flux_dev")
    tagged = provider.run(request(prompt="a red cat <lora:flux_kohya:0.6>",
                                  loras=[LoraRef(name="flux_detail", weight=1.2)]), card)
    reference = raw_with(dev, [(("flux_detail"), 1.2), ("flux_kohya", 0.6)], flow)
    assert np.array_equal(pixels(tagged.images[0]), reference)
    hashes = parse_infotext(tagged.images[0].infotext)["Lora hashes"]
    assert "flux_kohya: " in hashes and "flux_detail: " in hashes
    # switching back to no LoRA gives the base image again (adapters off, not merged)
    plain = provider.run(request(), card)
    again = provider.run(request(), card)
    assert np.array_equal(pixels(plain.images[0]), pixels(again.images[0]))


def test_a_lora_path_from_a_cloud_fine_tune_loads_by_path(provider, dev, flow):
    path = flow.lora_dir / "flux_aitoolkit.safetensors"  # what job.lora_path points at
    ours = provider.run(request(loras=[LoraRef(name=str(path), weight=1.0)]), provider.card_for("tiny_flux_dev"))
    assert np.array_equal(pixels(ours.images[0]), raw_with(dev, [("flux_aitoolkit", 1.0)], flow))


def test_a_lora_of_another_family_is_refused_naming_both(provider, flow, tiny):
    with pytest.raises(ModelLoadError, match=r"Stable Diffusion 1\.x.*FLUX\.1"):
        provider.run(request(loras=[LoraRef(name=str(tiny.lora), weight=1.0)]), provider.card_for("tiny_flux_dev"))
    sd = LocalProvider(Settings(models_dir=tiny.models_dir, device="cpu"))
    with pytest.raises(ModelLoadError, match=r"FLUX\.1.*Stable Diffusion 1\.x"):
        sd.run(GenerateRequest(prompt="a cat", seed=1, steps=2, width=64, height=64,
                               loras=[LoraRef(name=str(flow.lora_dir / "flux_kohya.safetensors"), weight=1.0)]),
               sd.card_for("tiny"))


def test_single_file_with_the_base_found_in_the_models_dir_equals_the_folder(provider, flow):
    folder = provider.run(request(), provider.card_for("tiny_flux_dev"))
    card = provider.card_for("tiny_dev_single")
    assert card.family == "flux-dev"
    result = provider.run(request(), card)  # no base option: a FLUX.1 [dev] folder of the models dir
    assert result.raw["base"] == str(flow.flux_dev)
    assert np.array_equal(pixels(result.images[0]), pixels(folder.images[0]))
    # BFL's original names are read as FLUX.1 [dev] too (loading them goes through diffusers'
    # converter, which assumes the real 3072-wide model: checked on real weights, not here)
    assert provider.card_for("tiny_dev_bfl").family == "flux-dev"


def test_a_lora_file_as_the_model_runs_on_its_base(provider, flow):
    """`model="local:<job.lora_path>"`: a cloud fine-tune's LoRA on the local base of its family."""
    path = flow.lora_dir / "flux_kohya.safetensors"
    card = provider.card_for(str(path))
    assert card.family == "flux-dev" and card.kind == "finetune" and card.weights == ""
    ours = provider.run(request(), card)
    listed = provider.run(request(loras=[LoraRef(name=str(path), weight=1.0)]), provider.card_for("tiny_flux_dev"))
    assert np.array_equal(pixels(ours.images[0]), pixels(listed.images[0]))
    assert "flux_kohya" in parse_infotext(ours.images[0].infotext)["Lora hashes"]
    with pytest.raises(ModelLoadError, match="cannot be run as a model"):
        provider.card_for(str(flow.lora_dir / "klein_style.safetensors"))  # layout says nothing of its family
