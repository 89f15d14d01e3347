"""Memory modes for the local flow models: chosen from free memory, overridable in
provider_options["local"]; on the CPU the VAE switches apply and offload/quantization say why not."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from imagegen.providers.local._memory import choose_memory

from imagegen.errors import ConfigError

GIB = 1 << 30


def plan(opts=None, device="cuda", free=40 * GIB, weights=30 * GIB, largest=22 * GIB, size=1024, batch=1):
    return choose_memory(opts or {}, device, weights=weights, largest=largest, width=size, height=size, batch=batch,
                         dtype="bfloat16", free=free)


def test_auto_picks_the_least_offload_that_fits_the_free_memory():
    assert plan(free=80 * GIB).offload == "none"  # FLUX.1 dev bf16 (~33 GB with T5) on an 80 GB card
    assert plan(free=30 * GIB).offload == "model"  # a 32 GB card: one component at a time
    assert plan(free=12 * GIB).offload == "sequential"  # a 12 GB card: layer by layer
    assert "free" in plan(free=30 * GIB).reason


def test_offloading_turns_vae_tiling_on_and_options_win():
    assert plan(free=30 * GIB).vae_tiling and not plan(free=80 * GIB).vae_tiling
    assert plan(free=30 * GIB, batch=2).vae_slicing
    forced = plan({"offload": "none", "vae_tiling": False}, free=12 * GIB)
    assert forced.offload == "none" and not forced.vae_tiling
    assert plan({"cpu_offload": True}, free=80 * GIB).offload == "model"
    assert plan({"offload": "sequential"}, free=80 * GIB).offload == "sequential"


def test_quantized_weights_are_counted_smaller():
    assert plan({"quantize": "fp8"}, free=26 * GIB).offload == "none"
    assert plan({"quantize": "fp8"}, free=26 * GIB).quantize == "fp8"
    assert plan(free=26 * GIB).offload != "none"


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
def test_nf4_without_bitsandbytes_names_the_extra():
    with pytest.raises(ConfigError, match="bitsandbytes.*imagegen\\[quant\\]"):
        plan({"quantize": "nf4"})


def test_on_the_cpu_offload_and_quantization_are_ignored_with_a_reason():
    cpu = plan({"offload": "model", "quantize": "nf4", "vae_tiling": True}, device="cpu", free=None)
    assert cpu.offload == "none" and cpu.quantize is None and cpu.vae_tiling
    assert any("offload='model' ignored" in w for w in cpu.warnings)
    assert any("quantize='nf4' ignored" in w for w in cpu.warnings)
    assert not plan(device="cpu", free=None).vae_tiling


def test_bad_values_name_the_option():
    with pytest.raises(ConfigError, match="offload"):
        plan({"offload": "gpu"})
    with pytest.raises(ConfigError, match="quantize"):
        plan({"quantize": "int3"})


# -- on a tiny pipeline, on the CPU ---------------------------------------------------------


@pytest.fixture(scope="module")
def provider(tmp_path_factory, one_thread):
    pytest.importorskip("diffusers")
    from imagegen.providers.local import LocalProvider

    from imagegen.settings import Settings
    from tests.local_flow_fixtures import build_flow_models

    flow = build_flow_models()
    return LocalProvider(Settings(models_dir=flow.models_dir, home=tmp_path_factory.mktemp("home"), device="cpu"))


def run(provider, **local):
    from imagegen.request import GenerateRequest

    req = GenerateRequest(prompt="a red cat", seed=3, steps=2, width=64, height=64, batch_size=2,
                          provider_options={"local": local})
    return provider.run(req, provider.card_for("tiny_flux_schnell"))


def pixels(result):
    return [np.asarray(image.pil()).astype(np.int16) for image in result.images]


def test_vae_tiling_and_slicing_switch_on_and_off_on_the_cpu(provider):
    import torch

    from tests.local_flow_fixtures import build_flow_models, raw

    plain = run(provider)
    vae = provider.cache.model.base.vae
    assert not vae.use_tiling and not vae.use_slicing
    switched = run(provider, vae_tiling=True, vae_slicing=True)
    assert vae.use_tiling and vae.use_slicing
    assert switched.raw["memory"]["vae_tiling"] and switched.raw["memory"]["vae_slicing"]
    reference = raw(build_flow_models().flux_schnell)
    reference.vae.enable_tiling()  # the tiny VAE's tiles are 32 px: a 64 px image is decoded in 4
    reference.vae.enable_slicing()
    images = reference(prompt=["a red cat"] * 2, num_inference_steps=2, guidance_scale=0.0, width=64, height=64,
                       max_sequence_length=256, generator=[torch.Generator().manual_seed(s) for s in (3, 4)]).images
    for ours, theirs in zip(pixels(switched), images, strict=True):
        assert np.array_equal(ours, np.asarray(theirs).astype(np.int16))
    assert any(np.abs(a - b).max() > 1 for a, b in zip(pixels(plain), pixels(switched), strict=True))
    run(provider)
    assert not vae.use_tiling and not vae.use_slicing
    assert provider.cache.loads == 1  # switches, not reloads


def test_offload_on_the_cpu_is_a_warning_not_silence(provider):
    result = run(provider, offload="sequential", quantize="fp8")
    assert result.raw["memory"]["offload"] == "none"
    assert any("offload='sequential' ignored" in w for w in result.warnings)
    assert any("quantize='fp8' ignored" in w for w in result.warnings)
