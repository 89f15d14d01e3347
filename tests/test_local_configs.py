"""Single-file checkpoints load offline from the packaged configs; VAE override; family detection."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from imagegen.providers.local import LocalProvider  # noqa: E402
from imagegen.providers.local._configs import config_dir_for, packaged_configs  # noqa: E402
from imagegen.providers.local._families import checkpoint_family  # noqa: E402

from imagegen.errors import ModelLoadError  # noqa: E402
from imagegen.request import GenerateRequest  # noqa: E402
from imagegen.settings import Settings  # noqa: E402
from tests.local_fixtures import _vae_state, export_single_file, raw_pipeline  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# Published parameter counts of the real models (diffusers/transformers model cards and papers).
PARAMS = {
    ("sd15", "unet"): 859_520_964, ("sd15", "vae"): 83_653_863, ("sd15", "text_encoder"): 123_060_480,
    ("sdxl", "unet"): 2_567_463_684, ("sdxl", "vae"): 83_653_863, ("sdxl", "text_encoder"): 123_060_480,
    ("sdxl", "text_encoder_2"): 694_659_840,
}


@pytest.fixture(scope="module")
def single_file(tiny):
    path = tiny.root / "single" / "tiny_single.safetensors"
    if not path.exists():
        export_single_file(raw_pipeline(tiny.pipeline_dir), path)
    return path


@pytest.mark.parametrize(("family", "component"), list(PARAMS))
def test_packaged_configs_build_the_published_architectures(family, component):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config_path = packaged_configs() / family / component / "config.json"
    config = json.loads(config_path.read_text())
    with init_empty_weights():
        if component == "unet":
            model = UNet2DConditionModel.from_config(config)
        elif component == "vae":
            model = AutoencoderKL.from_config(config)
        else:
            cls = CLIPTextModelWithProjection if component == "text_encoder_2" else CLIPTextModel
            model = cls(CLIPTextConfig(**config))
    assert sum(p.numel() for p in model.parameters()) == PARAMS[(family, component)]


def test_packaged_tokenizer_gives_the_real_clip_ids(tmp_path):
    from transformers import CLIPTokenizer

    folder = config_dir_for("sd15", tmp_path)
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert (folder / "model_index.json").is_file() and (folder / "unet" / "config.json").is_file()
    sdxl = config_dir_for("sdxl", tmp_path)
    assert CLIPTokenizer.from_pretrained(sdxl / "tokenizer_2").pad_token_id == 0  # "!" as in SDXL's repo


def test_single_file_checkpoint_loads_offline_bit_exact(tiny, single_file):
    from diffusers import StableDiffusionPipeline

    loaded = StableDiffusionPipeline.from_single_file(str(single_file), config=str(tiny.config_dir),
                                                      local_files_only=True)
    original = raw_pipeline(tiny.pipeline_dir)
    for component in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(loaded, component).state_dict(), getattr(original, component).state_dict()
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_provider_generates_from_a_single_file_as_from_the_folder(tiny, single_file, tmp_path):
    provider = LocalProvider(Settings(models_dir=tiny.models_dir, home=tmp_path, device="cpu"))
    card = provider.card_for(str(single_file))
    assert card.family == "sd15" and card.id == f"local:{single_file}"
    request = dict(prompt="a red cat", seed=3, steps=2, width=64, height=64, sampler="Euler")
    from_file = provider.run(GenerateRequest(
        **request, provider_options={"local": {"config": str(tiny.config_dir)}}), card)
    from_folder = provider.run(GenerateRequest(**request), provider.card_for("tiny"))
    # The weights are bit-exact (test above); the two loads may still lay tensors out differently,
    # which on some installs moves one channel value by one level after rounding to 8 bits.
    a, b = (np.asarray(r.images[0].pil()).astype(int) for r in (from_file, from_folder))
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 0.001
    assert "Model hash: " in from_file.images[0].infotext  # sha256[:10] of the file, as A1111 writes


def test_vae_override_swaps_the_decoder_and_none_restores_it(tiny, tmp_path):
    from safetensors.torch import save_file

    pipe = raw_pipeline(tiny.pipeline_dir)
    with torch.no_grad():
        pipe.vae.decoder.conv_out.bias += 0.3
    vae_file = tiny.models_dir / "VAE" / "bright.safetensors"
    vae_file.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in _vae_state(pipe.vae).items()}, str(vae_file))
    provider = LocalProvider(Settings(models_dir=tiny.models_dir, home=tmp_path, device="cpu"))
    card = provider.card_for("tiny")
    request = dict(prompt="a red cat", seed=3, steps=2, width=64, height=64, sampler="Euler")
    base = np.asarray(provider.run(GenerateRequest(**request), card).images[0].pil()).astype(int)
    bright = provider.run(GenerateRequest(**request, vae="bright"), card)
    again = np.asarray(provider.run(GenerateRequest(**request, vae="None"), card).images[0].pil()).astype(int)
    assert np.asarray(bright.images[0].pil()).astype(int).mean() > base.mean() + 10
    assert np.array_equal(base, again)
    assert "VAE: bright.safetensors" in bright.images[0].infotext


def test_checkpoint_family_is_read_from_the_keys(tmp_path):
    from safetensors.torch import save_file

    xl = tmp_path / "xl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(1),
               "model.diffusion_model.out.0.weight": torch.zeros(1)}, str(xl))
    sd = tmp_path / "sd.safetensors"
    save_file({"model.diffusion_model.out.0.weight": torch.zeros(1)}, str(sd))
    other = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(1)}, str(other))
    assert checkpoint_family(xl) == "sdxl" and checkpoint_family(sd) == "sd15"
    with pytest.raises(ModelLoadError, match="other.safetensors"):
        checkpoint_family(other)


def test_importing_the_provider_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, imagegen, imagegen.providers.local, imagegen.providers.local._openpose; "
            "print([m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
