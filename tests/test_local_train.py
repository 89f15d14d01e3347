"""The local LoRA trainer in this process, on the tiny SD pipelines (CPU, seconds): the loss
falls, the LoRA moves generations toward the training images, the kohya file is right and
loads in diffusers as in our adapter, and bad settings are refused before any compute."""


import json

import numpy as np
import pytest
from PIL import Image

from imagegen import FineTuneError, ImageGen, Settings
from imagegen.finetune import FineTuneRequest, load_dataset

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

pytestmark = pytest.mark.usefixtures("one_thread")


def make_photos(folder, count=4, captions=True):
    """Red images with a blue block each: far from what the random model makes."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.zeros((256, 256, 3), np.uint8)
        pixels[..., 0] = 220
        pixels[i * 20:i * 20 + 60, 40:120] = (20, 20, 230)
        Image.fromarray(pixels).save(folder / f"p{i}.png")
        if captions:
            (folder / f"p{i}.txt").write_text(f"a photo of TOK, red, {'big' if i % 2 else 'small'}")
    return folder


def settings_for(tiny, tmp_path):
    return Settings(home=tmp_path / "home", models_dir=tiny.models_dir, device="cpu")


def trainer_for(tiny, tmp_path, photos, **local):
    """A `_train_loop.Trainer` on the request's resolved settings, as the worker builds it."""
    from imagegen.providers.local._train import resolve
    from imagegen.providers.local._train_data import load_items
    from imagegen.providers.local._train_loop import Trainer, load_pipeline

    local.setdefault("max_train_steps", local.pop("steps", 40))
    request = FineTuneRequest(images=photos, base="local:tiny", local=local)
    config, warnings, _ = resolve(request, settings_for(tiny, tmp_path))
    dataset = load_dataset(photos)
    zipped = dataset.write_zip(tmp_path / "data.zip")
    items, _ = load_items(zipped, str(photos), request.trigger_word)
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    return Trainer(config, items, load_pipeline(config), folder), warnings


def latents_of(pipe, prompt, seed=3):
    with torch.no_grad():
        return pipe(prompt, num_inference_steps=8, width=64, height=64, output_type="latent",
                    generator=torch.Generator().manual_seed(seed)).images


def eval_loss(trainer):
    """The denoising loss on every training image at fixed noise and spread timesteps."""
    generator = torch.Generator().manual_seed(0)
    latents = torch.cat([trainer._latents([i], [False], None) for i in range(len(trainer.items))])
    noise = torch.randn(latents.shape, generator=generator)
    timesteps = torch.linspace(50, 950, len(latents)).long()
    states, _ = trainer._encode_text([item.caption for item in trainer.items])
    with torch.no_grad():
        pred = trainer.unet(trainer.noise_scheduler.add_noise(latents, noise, timesteps), timesteps, states).sample
    return torch.nn.functional.mse_loss(pred, noise).item()


def test_loss_falls_and_the_lora_moves_generations_toward_the_training_images(tiny, tmp_path):
    photos = make_photos(tmp_path / "photos")
    trainer, _ = trainer_for(tiny, tmp_path, photos, steps=120, network_dim=8, unet_lr=2e-2, cache_latents=True)
    prompt = "a photo of TOK, red, big"
    loss_before, before = eval_loss(trainer), latents_of(trainer.pipe, prompt)
    outcome = trainer.run()
    losses = outcome.losses
    assert len(losses) == 120 and outcome.step == 120 and not outcome.canceled
    assert np.mean(losses[-30:]) < 0.95 * np.mean(losses[:30])  # the noisy training loss
    assert eval_loss(trainer) < 0.9 * loss_before  # the same batch, the same noise
    after = latents_of(trainer.pipe, prompt)
    target = torch.cat([v for (_, flip), v in sorted(trainer.latent_cache.items()) if not flip]).mean(0)
    distance_before = (before[0] - target).pow(2).mean().item()
    distance_after = (after[0] - target).pow(2).mean().item()
    assert distance_after < 0.85 * distance_before, (distance_before, distance_after)


def test_kohya_keys_alpha_and_diffusers_converter_round_trip(tiny, tmp_path):
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers
    from diffusers.utils import convert_state_dict_to_peft, convert_unet_state_dict_to_peft
    from peft.utils import get_peft_model_state_dict

    photos = make_photos(tmp_path / "photos")
    trainer, _ = trainer_for(tiny, tmp_path, photos, steps=3, network_dim=4, network_alpha=2.0,
                             text_encoder_lr=1e-4)
    outcome = trainer.run()
    keys = set(outcome.lora)
    assert keys and all(k.startswith(("lora_unet_", "lora_te_")) for k in keys)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight" in keys
    alphas = {k: v for k, v in outcome.lora.items() if k.endswith(".alpha")}
    assert alphas and all(float(v) == 2.0 for v in alphas.values())
    assert len(alphas) * 3 == len(keys)  # down, up, alpha per layer
    converted, network_alphas = _convert_non_diffusers_lora_to_diffusers(dict(outcome.lora))
    # diffusers' own path from there: its older names, then PEFT's
    unet = convert_unet_state_dict_to_peft({k[5:]: v for k, v in converted.items() if k.startswith("unet.")})
    te = convert_state_dict_to_peft({k.removeprefix("text_encoder.text_model."): v
                                     for k, v in converted.items() if k.startswith("text_encoder.")})
    trained_unet = get_peft_model_state_dict(trainer.unet)
    trained_te = {k.removeprefix("text_model."): v for k, v in get_peft_model_state_dict(trainer.encoders[0]).items()}
    assert set(unet) == set(trained_unet) and set(te) == set(trained_te)
    assert all(torch.equal(unet[k], trained_unet[k]) for k in unet)
    assert all(torch.equal(te[k], trained_te[k]) for k in te)
    assert set(network_alphas.values()) == {2.0}


def test_repeats_buckets_flip_and_caption_options_shape_the_steps(tiny, tmp_path):
    photos = tmp_path / "photos"
    make_photos(photos / "3_tok")
    wide = np.zeros((256, 512, 3), np.uint8)
    wide[..., 1] = 200
    Image.fromarray(wide).save(photos / "wide.png")
    trainer, _ = trainer_for(tiny, tmp_path, photos, steps=2, enable_bucket=True, resolution=64,
                             min_bucket_reso=32, max_bucket_reso=128, bucket_reso_steps=16, flip_aug=True,
                             shuffle_caption=True, keep_tokens=1, train_batch_size=2)
    repeats = {item.name: item.repeats for item in trainer.items}
    assert repeats == {"p0.png": 3, "p1.png": 3, "p2.png": 3, "p3.png": 3, "wide.png": 1}
    buckets = dict(zip((i.name for i in trainer.items), trainer.bucket_of, strict=True))
    assert buckets["p0.png"] == (64, 64) and buckets["wide.png"][0] > buckets["wide.png"][1]
    assert trainer.steps_per_epoch == 6 + 1  # 12 square images in batches of 2, the wide one alone
    assert trainer.batch_for(0) == trainer.batch_for(0) and trainer.batch_for(7) != trainer.batch_for(0)
    outcome = trainer.run()
    assert outcome.buckets == {"64x64": 4, f"{buckets['wide.png'][0]}x{buckets['wide.png'][1]}": 1}


def test_samples_every_n_steps_are_saved_with_infotext(tiny, tmp_path):
    from imagegen import parse_infotext

    photos = make_photos(tmp_path / "photos")
    trainer, _ = trainer_for(tiny, tmp_path, photos, steps=2, sample_every_n_steps=2,
                             sample_prompts=["a photo of TOK"], sample_steps=2)
    trainer.run()
    (sample,) = sorted((trainer.folder / "samples").glob("*.png"))
    params = parse_infotext(Image.open(sample).info["parameters"])
    assert params["Prompt"] == "a photo of TOK" and str(params["Steps"]) == "2" and str(params["Seed"]) == "42"
    assert (params["Size-1"], params["Size-2"]) == ("64", "64") and sample.name.startswith("step0000002")


@pytest.mark.parametrize("local, field", [
    ({"optimizer": "AdamW8bit"}, "local.optimizer"),
    ({"mixed_precision": "fp16"}, "local.mixed_precision"),
    ({"lr_warmup_steps": 10}, "local.lr_warmup_steps"),
])
def test_settings_this_machine_cannot_honour_are_refused_before_any_job(tiny, tmp_path, local, field):
    photos = make_photos(tmp_path / "photos")
    gen = ImageGen(settings=settings_for(tiny, tmp_path))
    with pytest.raises(FineTuneError) as exc_info:
        gen.finetune(FineTuneRequest(images=photos, base="local:tiny", trainer="local", local=local))
    assert len(exc_info.value.problems) == 1 and exc_info.value.problems[0].startswith(field)
    assert gen.jobs() == []


def test_prodigy_needs_prodigyopt_and_bad_values_name_their_field(tiny, tmp_path):
    from pydantic import ValidationError

    photos = make_photos(tmp_path / "photos")
    gen = ImageGen(settings=settings_for(tiny, tmp_path))
    try:
        import prodigyopt  # noqa: F401
    except ImportError:
        with pytest.raises(FineTuneError, match="prodigyopt"):
            gen.finetune(FineTuneRequest(images=photos, base="local:tiny", optimizer="prodigy"))
    for bad, field in (({"network_dim": 0}, "local.network_dim"), ({"resolution": 100}, "local.resolution"),
                       ({"sample_every_n_steps": 5}, "local"), ({"nope": 1}, "local.nope")):
        with pytest.raises(ValidationError) as exc_info:
            FineTuneRequest(images=photos, base="local:tiny", local=bad)
        assert exc_info.value.error_count() == 1 and field in str(exc_info.value)
    with pytest.raises(FineTuneError) as exc_info:
        gen.finetune(FineTuneRequest(images=photos, base="local:nothing-here"))
    assert exc_info.value.problems[0].startswith("base:")
    with pytest.raises(FineTuneError, match="dataset"):
        gen.finetune(FineTuneRequest(images=tmp_path, base="local:tiny"))  # no images there
    assert gen.jobs() == []


def test_auto_without_a_gpu_does_not_pick_local_and_says_why(tiny, tmp_path):
    from imagegen.providers.local import LocalProvider
    from imagegen.providers.local._train import LocalTrainer

    photos = make_photos(tmp_path / "photos")
    settings = settings_for(tiny, tmp_path)
    trainer = LocalTrainer(settings)
    request = FineTuneRequest(images=photos)  # no base: local only with a GPU
    with pytest.raises(FineTuneError, match="no suitable GPU"):
        trainer.estimate(request, load_dataset(photos))
    estimate = trainer.estimate(FineTuneRequest(images=photos, base="local:tiny", steps=10), load_dataset(photos))
    assert estimate.cost_usd == 0.0 and estimate.card_id == "local:lora-trainer" and estimate.seconds > 0
    with pytest.raises(FineTuneError, match="max_hours"):
        trainer.estimate(FineTuneRequest(images=photos, base="local:tiny", max_hours=1e-6), load_dataset(photos))
    assert LocalProvider(settings).trainer().name == "local"


@pytest.fixture(scope="module")
def tiny_sdxl(tmp_path_factory):
    from tests.local_fixtures import build_sdxl_pipeline

    models = tmp_path_factory.mktemp("tiny_sdxl_train") / "models"
    build_sdxl_pipeline(models / "Stable-diffusion" / "tiny_xl")
    return models


def test_sdxl_trains_both_text_encoders_into_te1_te2_keys_that_diffusers_loads(tiny_sdxl, tmp_path):
    from diffusers import StableDiffusionXLPipeline
    from imagegen.providers.local._families import lora_family
    from imagegen.providers.local._kohya import save_kohya
    from imagegen.providers.local._train import resolve
    from imagegen.providers.local._train_data import load_items
    from imagegen.providers.local._train_loop import Trainer, load_pipeline

    photos = make_photos(tmp_path / "photos")
    request = FineTuneRequest(images=photos, base="local:tiny_xl", local={
        "max_train_steps": 3, "network_dim": 2, "text_encoder_lr": 1e-4, "gradient_checkpointing": True})
    config, _, _ = resolve(request, Settings(home=tmp_path / "home", models_dir=tiny_sdxl, device="cpu"))
    assert config.family == "sdxl"
    items, _ = load_items(load_dataset(photos).write_zip(tmp_path / "d.zip"), str(photos), "TOK")
    (tmp_path / "run").mkdir()
    trainer = Trainer(config, items, load_pipeline(config), tmp_path / "run")
    outcome = trainer.run()
    assert len(outcome.losses) == 3 and all(np.isfinite(outcome.losses))
    prefixes = {key.split("_")[1] for key in outcome.lora}
    assert prefixes == {"unet", "te1", "te2"}
    path = save_kohya(tmp_path / "xl.safetensors", outcome.lora, {"ss_base_model_version": "sdxl_base_v1-0"})
    assert lora_family(path) == "sdxl"
    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_sdxl / "Stable-diffusion" / "tiny_xl")
    pipe.load_lora_weights(str(path))
    sample = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0))
    states = torch.randn((1, 77, 32), generator=torch.Generator().manual_seed(1))
    extra = {"text_embeds": torch.zeros((1, 16)), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    with torch.no_grad():
        ours = trainer.unet(sample, torch.tensor([500]), states, added_cond_kwargs=extra).sample
        theirs = pipe.unet(sample, torch.tensor([500]), states, added_cond_kwargs=extra).sample
        pipe.disable_lora()
        without = pipe.unet(sample, torch.tensor([500]), states, added_cond_kwargs=extra).sample
    assert torch.allclose(ours, theirs, atol=1e-6) and not torch.allclose(ours, without, atol=1e-6)


def test_auto_goes_to_the_cloud_without_a_gpu_and_the_job_says_why(tiny, tmp_path):
    from imagegen.providers.local import LocalProvider
    from imagegen.providers.replicate import ReplicateProvider

    from imagegen.testing import FakeReplicate

    photos = make_photos(tmp_path / "photos", count=10)
    with FakeReplicate(training_time_s=0.1) as fake:
        settings = Settings(home=tmp_path / "home", models_dir=tiny.models_dir, device="cpu",
                            replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)
        gen = ImageGen(providers=[LocalProvider(settings), ReplicateProvider(settings)], settings=settings)
        job = gen.finetune(FineTuneRequest(images=photos, destination="fake-user/auto-lora", steps=10))
        assert job.trainer == "replicate"
        (why,) = [w for w in job.warnings if w.startswith("trainer local")]
        assert "no suitable GPU" in why and why.endswith("(not used)")
        with pytest.raises(FineTuneError) as exc_info:  # neither fits an hour's millionth
            gen.finetune(FineTuneRequest(images=photos, destination="fake-user/auto-lora", max_hours=1e-6))
        assert [p.split(":")[0] for p in exc_info.value.problems] == ["local", "replicate"]


def test_epochs_bf16_on_the_cpu_and_a_warmup_schedule_run_with_their_warnings(tiny, tmp_path):
    photos = make_photos(tmp_path / "photos")
    trainer, warnings = trainer_for(tiny, tmp_path, photos, max_train_epochs=2, mixed_precision="bf16",
                                    lr_scheduler="cosine", lr_warmup_steps=2, keep_tokens=1)
    assert trainer.total == 2 * trainer.steps_per_epoch == 8
    assert any(w.startswith("local.mixed_precision: bf16") for w in warnings)
    assert any(w.startswith("local.keep_tokens") for w in warnings)
    rates = []
    outcome = trainer.run(report=lambda step, total, loss, eta: rates.append(trainer.schedule.get_last_lr()[0]))
    assert outcome.step == 8 and all(np.isfinite(outcome.losses))
    assert rates[0] < rates[1] and rates[-1] < max(rates)  # warm up, then the cosine decay


def test_a_flux_base_is_refused_with_the_memory_it_would_need(tmp_path):
    from imagegen.providers.local._train import resolve

    from tests.local_flow_fixtures import build_flux

    models = tmp_path / "models"
    build_flux(models / "Stable-diffusion" / "tiny_flux", guidance=True)
    photos = make_photos(tmp_path / "photos")
    with pytest.raises(FineTuneError) as exc_info:
        resolve(FineTuneRequest(images=photos, base="local:tiny_flux"),
                Settings(home=tmp_path / "home", models_dir=models, device="cpu"))
    (problem,) = exc_info.value.problems
    assert problem.startswith("base:") and "24 GB" in problem and "trainer='replicate'" in problem


def test_a_gpu_too_small_is_not_used_by_auto_and_warned_about_when_named(tiny, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from imagegen.providers.local import _train

    photos = make_photos(tmp_path / "photos")
    monkeypatch.setattr(_train, "resolve", lambda request, settings, images=None: (
        SimpleNamespace(device="cuda", family="sdxl"), [], 600.0))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=8 * 2**30))
    trainer = _train.LocalTrainer(settings_for(tiny, tmp_path))
    with pytest.raises(FineTuneError, match="the GPU has 8 GB; a sdxl LoRA needs about 12 GB"):
        trainer.estimate(FineTuneRequest(images=photos), load_dataset(photos))
    estimate = trainer.estimate(FineTuneRequest(images=photos, base="local:tiny"), load_dataset(photos))
    assert any(w.startswith("the GPU has 8 GB") for w in estimate.warnings)
    assert estimate.seconds == 600.0


def test_repeats_recorded_at_the_start_survive_the_dataset_folder_going_away(tmp_path):
    import shutil

    from imagegen.providers.local._train_data import load_items, repeats_by_digest

    photos = tmp_path / "photos"
    make_photos(photos / "5_tok")
    zipped = load_dataset(photos).write_zip(tmp_path / "data.zip")
    recorded = json.loads(json.dumps(repeats_by_digest(photos)))  # as the job folder keeps it
    shutil.rmtree(photos)
    items, _ = load_items(zipped, str(photos), "TOK", {k: tuple(v) for k, v in recorded.items()})
    assert [(i.repeats, i.folder) for i in items] == [(5, "5_tok")] * 4
    assert [i.repeats for i in load_items(zipped, str(photos), "TOK")[0]] == [1] * 4  # nothing recorded
