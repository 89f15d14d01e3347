"""Textual-inversion embeddings named in the prompt, against diffusers' `load_textual_inversion`."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local import LocalProvider  # noqa: E402
from imagegen.providers.local._embeddings import find_embeddings, mentioned, read_vectors  # noqa: E402
from imagegen.providers.local._prompt import tokenize_weighted  # noqa: E402

from imagegen.errors import ModelLoadError  # noqa: E402
from imagegen.prompt.infotext import parse_infotext  # noqa: E402
from imagegen.request import GenerateRequest  # noqa: E402
from imagegen.settings import Settings  # noqa: E402
from tests.local_fixtures import HIDDEN, raw_pipeline  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE, STEPS = 64, 3


@pytest.fixture(scope="module")
def vectors():
    generator = torch.Generator().manual_seed(5)
    return {"two": torch.randn(2, HIDDEN, generator=generator) * 3,
            "one": torch.randn(1, HIDDEN, generator=generator) * 3}


@pytest.fixture(scope="module")
def models_dir(tiny, tmp_path_factory, vectors):
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("with_embeddings")
    (root / "Stable-diffusion").symlink_to(tiny.models_dir / "Stable-diffusion")
    folder = root / "embeddings"
    folder.mkdir()
    # A1111's own .pt layout, and the .safetensors one.
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": vectors["two"]}, "name": "BadThing",
                "step": 100, "sd_checkpoint_name": "x"}, folder / "BadThing.pt")
    save_file({"emb_params": vectors["one"]}, str(folder / "glowy.safetensors"))
    save_file({"emb_params": torch.randn(1, HIDDEN * 2)}, str(folder / "too_wide.safetensors"))
    return root


@pytest.fixture(scope="module")
def provider(models_dir, tmp_path_factory):
    return LocalProvider(Settings(models_dir=models_dir, home=tmp_path_factory.mktemp("home"), device="cpu"))


@pytest.fixture(scope="module")
def raw(tiny, models_dir):
    pipe = raw_pipeline(tiny.pipeline_dir)
    pipe.load_textual_inversion(str(models_dir / "embeddings" / "BadThing.pt"), token="badthing")
    pipe.load_textual_inversion(str(models_dir / "embeddings" / "glowy.safetensors"), token="glowy")
    return pipe


def generate(provider, prompt, negative=""):
    card = provider.card_for("tiny")
    request = GenerateRequest(prompt=prompt, negative_prompt=negative, seed=77, steps=STEPS,
                              width=SIZE, height=SIZE, sampler="Euler")
    return provider.run(request, card)


def raw_image(raw, prompt, negative=""):
    from diffusers import EulerDiscreteScheduler

    raw.scheduler = EulerDiscreteScheduler.from_config(raw.scheduler.config, timestep_spacing="linspace")
    return raw(prompt, negative_prompt=negative, num_inference_steps=STEPS, guidance_scale=7.0, width=SIZE,
               height=SIZE, generator=[torch.Generator("cpu").manual_seed(77)]).images[0]


def pixels(image) -> np.ndarray:
    return np.asarray(image.pil() if hasattr(image, "pil") else image)


def test_names_in_prompt_and_negative_equal_diffusers_load_textual_inversion(provider, raw):
    ours = generate(provider, "a red cat, BADTHING", negative="glowy")
    reference = raw_image(raw, "a red cat, badthing", negative="glowy")
    plain = generate(provider, "a red cat,", negative="")
    assert np.array_equal(pixels(ours.images[0]), pixels(reference))
    assert not np.array_equal(pixels(ours.images[0]), pixels(plain.images[0]))
    assert ours.warnings == [] or all("embedding" not in w for w in ours.warnings)


def test_attention_weights_apply_to_embedding_vectors(provider):
    ours = generate(provider, "a red cat, (badthing:1.3)")
    unweighted = generate(provider, "a red cat, badthing")
    assert not np.array_equal(pixels(ours.images[0]), pixels(unweighted.images[0]))


def test_infotext_lists_ti_hashes_as_a1111_does(provider, models_dir):
    result = generate(provider, "a red cat, badthing", negative="glowy")
    params = parse_infotext(result.images[0].infotext)
    digest = {name: hashlib.sha256((models_dir / "embeddings" / name).read_bytes()).hexdigest()[:12]
              for name in ("BadThing.pt", "glowy.safetensors")}
    assert params["TI hashes"] == f"BadThing: {digest['BadThing.pt']}, glowy: {digest['glowy.safetensors']}"
    assert params["Prompt"] == "a red cat, badthing"  # the prompt as written, not the expanded tokens


def test_only_whole_words_match(provider):
    partial = generate(provider, "a red cat, badthingy glowyness")
    assert "TI hashes" not in parse_infotext(partial.images[0].infotext)
    assert mentioned({"glowy": None}, "so glowy!") and not mentioned({"glowy": None}, "unglowy")


def test_an_embedding_for_another_width_is_skipped_with_a_warning(provider):
    skipped = generate(provider, "a red cat, too_wide")
    assert any("too_wide.safetensors not used" in w and "32 wide" in w for w in skipped.warnings)
    assert "TI hashes" not in parse_infotext(skipped.images[0].infotext)


def test_a_run_never_straddles_two_chunks(provider, raw):
    tokenizer = raw.tokenizer
    runs = {tokenizer.convert_tokens_to_ids("badthing"): 2}
    text = " ".join(["cat"] * 74) + " badthing badthing_1 dog"
    chunks = tokenize_weighted(tokenizer, text, runs)
    first, second = chunks[0].ids, chunks[1].ids
    assert first[1:75] == [tokenizer.convert_tokens_to_ids("cat</w>")] * 74
    assert first[75] == tokenizer.eos_token_id  # padded rather than split
    assert second[1:3] == tokenizer.convert_tokens_to_ids(["badthing", "badthing_1"])
    without = tokenize_weighted(tokenizer, text)
    assert without[0].ids[75] == tokenizer.convert_tokens_to_ids("badthing")


def test_reading_formats_and_refusing_other_files(tmp_path, vectors):
    from safetensors.torch import save_file

    save_file({"clip_l": vectors["one"], "clip_g": torch.randn(1, 32)}, str(tmp_path / "xl.safetensors"))
    read = read_vectors(tmp_path / "xl.safetensors")
    assert set(read) == {"clip_l", "clip_g"} and read["clip_g"].shape == (1, 32)
    torch.save({"weights": torch.zeros(3), "other": torch.zeros(2)}, tmp_path / "not_ti.pt")
    with pytest.raises(ModelLoadError, match="not a textual-inversion embedding"):
        read_vectors(tmp_path / "not_ti.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"nope")
    with pytest.raises(ModelLoadError, match="cannot read embedding"):
        read_vectors(tmp_path / "junk.safetensors")


def test_find_embeddings_lists_files_by_lowercase_name(models_dir):
    found = find_embeddings(models_dir)
    assert set(found) == {"badthing", "glowy", "too_wide"}
    assert find_embeddings(None) == {}
