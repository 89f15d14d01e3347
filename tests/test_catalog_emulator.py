"""Every model of the 2026 catalog, end to end against FakeReplicate: what the emulator received
for a request in the SDK's terms, the images coming back (one URL or a list, converted when the
model picks its own format), the charge read from the prediction's metrics, and the official
`replicate` client running each model."""

from __future__ import annotations

import base64
import io

import pytest
import replicate
from imagegen.providers.replicate import CallPolicy, ReplicateProvider
from imagegen.providers.replicate._schemas import MODELS
from PIL import Image
from replicate.exceptions import ReplicateError
from replicate.helpers import FileOutput

from imagegen import GenerateRequest, LoraRef
from imagegen.catalog import cloud_cards
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate
from imagegen.testing import _schemas as emulated

FAST = dict(poll_initial_s=0.02, poll_max_s=0.05, get_backoff_s=0.01, reconcile_delay_s=0.01,
            commit_timeout_s=0.2)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 120, 200)).save(out, "PNG")
    return out.getvalue()


INIT, MASK, REF1, REF2 = png(64, 48), png(64, 48), png(32, 32), png(48, 32)


def url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


MJ = "https://example.com/look.png a fox --sref https://example.com/style.png --cref https://example.com/face.png"

# (model, request fields, exactly what the model receives as input)
CASES = [
    ("black-forest-labs/flux-schnell-lora", dict(loras=[LoraRef(name="me/style", weight=0.7)], aspect_ratio="3:2"),
     {"aspect_ratio": "3:2", "lora_weights": "me/style", "lora_scale": 0.7, "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-krea-dev", dict(aspect_ratio="16:9", cfg_scale=2.5, steps=30),
     {"aspect_ratio": "16:9", "guidance": 2.5, "num_inference_steps": 30, "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-kontext-pro", dict(init_image=INIT, edit=True),
     {"input_image": url(INIT), "aspect_ratio": "match_input_image", "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-kontext-max", dict(init_image=INIT, aspect_ratio="21:9"),
     {"input_image": url(INIT), "aspect_ratio": "21:9", "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-kontext-dev", dict(init_image=INIT, steps=28, cfg_scale=2.0),
     {"input_image": url(INIT), "aspect_ratio": "match_input_image", "num_inference_steps": 28,
      "guidance": 2.0, "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-fill-pro", dict(init_image=INIT, mask_image=MASK, steps=30),
     {"image": url(INIT), "mask": url(MASK), "steps": 30, "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-2-pro", dict(reference_images=[REF1, REF2], aspect_ratio="16:9", output_megapixels=2),
     {"input_images": [url(REF1), url(REF2)], "resolution": "2 MP", "aspect_ratio": "16:9",
      "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-2-flex", dict(steps=40, cfg_scale=5.0),
     {"steps": 40, "guidance": 5.0, "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-2-max", dict(aspect_ratio="7:3"),
     {"aspect_ratio": "custom", "width": 1568, "height": 672, "output_format": "png", "seed": 7}),
    ("black-forest-labs/flux-2-dev", dict(init_image=INIT, reference_images=[REF1], edit=True),
     {"input_images": [url(INIT), url(REF1)], "aspect_ratio": "match_input_image", "output_format": "png",
      "seed": 7}),
    ("black-forest-labs/flux-2-klein-4b", dict(output_megapixels=0.25, aspect_ratio="9:16"),
     {"output_megapixels": "0.25", "aspect_ratio": "9:16", "output_format": "png", "seed": 7}),
    ("google/nano-banana", dict(reference_images=[REF1, REF2], seed=None),
     {"image_input": [url(REF1), url(REF2)], "output_format": "png"}),
    ("google/nano-banana-pro", dict(output_megapixels="4K", seed=None),
     {"resolution": "4K", "aspect_ratio": "1:1", "output_format": "png"}),
    ("google/nano-banana-2", dict(aspect_ratio="16:9", seed=None),
     {"aspect_ratio": "16:9", "output_format": "png"}),
    ("google/imagen-4", dict(aspect_ratio="9:16", output_format="jpeg", seed=None),
     {"aspect_ratio": "9:16", "output_format": "jpg"}),
    ("google/imagen-4-fast", dict(seed=None), {"output_format": "png"}),
    ("google/imagen-4-ultra", dict(aspect_ratio="4:3", seed=None), {"aspect_ratio": "4:3", "output_format": "png"}),
    ("bytedance/seedream-4", dict(reference_images=[REF1], output_megapixels="4K", seed=None),
     {"image_input": [url(REF1)], "size": "4K", "aspect_ratio": "1:1"}),
    ("bytedance/seedream-4.5", dict(seed=None), {"aspect_ratio": "1:1"}),
    ("bytedance/seedream-5-lite", dict(output_format="jpeg", aspect_ratio="3:2", seed=None),
     {"aspect_ratio": "3:2", "output_format": "jpeg"}),
    ("ideogram-ai/ideogram-v3-turbo", dict(midjourney_text=MJ),
     {"style_reference_images": ["https://example.com/style.png"], "seed": 7}),
    ("ideogram-ai/ideogram-v3-balanced", dict(init_image=INIT, mask_image=MASK),
     {"image": url(INIT), "mask": url(MASK), "seed": 7}),
    ("ideogram-ai/ideogram-v3-quality", dict(aspect_ratio="16:10"), {"aspect_ratio": "16:10", "seed": 7}),
    ("recraft-ai/recraft-v3", dict(aspect_ratio="7:5", seed=None), {"aspect_ratio": "7:5"}),
    ("qwen/qwen-image", dict(negative_prompt="blurry", init_image=INIT, denoising_strength=0.5,
                             loras=[LoraRef(name="https://x.example/q.safetensors", weight=0.8)]),
     {"negative_prompt": "blurry", "image": url(INIT), "strength": 0.5,
      "lora_weights": "https://x.example/q.safetensors", "lora_scale": 0.8, "output_format": "png", "seed": 7}),
    ("qwen/qwen-image-edit", dict(init_image=INIT, edit=True),
     {"image": url(INIT), "output_format": "png", "seed": 7}),
    ("openai/gpt-image-1.5", dict(reference_images=[REF1], aspect_ratio="2:3", seed=None,
                                  provider_options={"replicate": {"quality": "low"}}),
     {"input_images": [url(REF1)], "aspect_ratio": "2:3", "quality": "low", "output_format": "png"}),
    ("stability-ai/stable-diffusion-3.5-large", dict(negative_prompt="text", cfg_scale=4.0, aspect_ratio="9:21"),
     {"negative_prompt": "text", "cfg": 4.0, "aspect_ratio": "9:21", "output_format": "png", "seed": 7}),
    ("minimax/image-01", dict(midjourney_text=MJ, seed=None),
     {"subject_reference": "https://example.com/face.png"}),
    ("luma/photon", dict(reference_images=[REF1]), {"image_reference_url": url(REF1), "seed": 7}),
    ("luma/photon-flash", dict(midjourney_text=MJ),
     {"image_reference": "https://example.com/look.png", "style_reference": "https://example.com/style.png",
      "character_reference": "https://example.com/face.png", "seed": 7}),
]


def build(fields: dict) -> GenerateRequest:
    fields = {"seed": 7, "output_format": "png", **fields}
    text = fields.pop("midjourney_text", None)
    if text is not None:
        return GenerateRequest.from_midjourney(text, **fields)
    return GenerateRequest(prompt="a fox", **fields)


@pytest.fixture(scope="module")
def fake():
    with FakeReplicate(processing_time_s=0.01) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def provider(fake):
    provider = ReplicateProvider(Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url),
                                 policy=CallPolicy(**FAST))
    yield provider
    provider.close()


def test_the_cases_cover_every_model_the_existing_tests_do_not():
    covered = {"black-forest-labs/" + m for m in ("flux-schnell", "flux-dev", "flux-dev-lora", "flux-pro",
                                                 "flux-1.1-pro", "flux-1.1-pro-ultra")}  # test_replicate_provider
    assert {model for model, _, _ in CASES} | covered == set(MODELS)


@pytest.mark.parametrize("model, fields, expected", CASES, ids=[c[0] for c in CASES])
def test_each_model_receives_the_request_in_its_own_inputs(fake, provider, model, fields, expected):
    card = next(c for c in provider.models() if c.model == model)
    request = build(fields)
    before = len(fake.requests)
    prepared = provider.prepare(request, [card])[0]
    assert prepared.ok, prepared.missing
    result = provider.generate(prepared)
    (sent,) = [r for r in fake.requests[before:] if r.method == "POST" and r.path.endswith("/predictions")]
    assert sent.path == f"/v1/models/{model}/predictions"
    wanted = {"prompt": "a fox", **{k: v for k, v in expected.items() if v is not None}}
    assert sent.json == {"input": wanted}
    image = result.images[0]
    assert len(result.images) == 1 and image.format == request.output_format
    assert image.pil().format == {"png": "PNG", "jpeg": "JPEG"}[request.output_format]
    # official models report their billing counts: the charge is the bill, and the estimate
    # made before the call (same counts) agrees with it
    assert result.cost_source == "actual" and not result.cost_is_estimate
    assert result.cost_usd == pytest.approx(prepared.cost_usd)


def test_the_charge_follows_the_price_tier_the_plan_selects(fake, provider):
    """nano-banana-2 asked for 16 MP renders at 4K and is billed at the 4K tier."""
    card = next(c for c in provider.models() if c.model == "google/nano-banana-2")
    prepared = provider.prepare(build(dict(seed=None, output_megapixels=16)), [card])[0]
    assert prepared.plan.predictions[0].input["resolution"] == "4K"
    result = provider.generate(prepared)
    assert prepared.cost_usd == pytest.approx(0.151)
    assert result.cost_usd == pytest.approx(0.151) and result.cost_source == "actual"


def test_without_billing_metrics_the_cost_is_the_estimate(fake, provider, monkeypatch):
    from imagegen.testing import _state

    monkeypatch.setattr(_state.JobRecord, "metrics", lambda self: {"predict_time": 0.01})
    card = next(c for c in provider.models() if c.model == "black-forest-labs/flux-2-pro")
    result = provider.run(build({}), card)
    assert result.cost_source == "estimate" and result.cost_usd == pytest.approx(0.03)


def test_a_fine_tune_is_charged_its_gpu_seconds(fake, provider):
    version = fake.add_model("me/my-lora")
    card = provider.card_for(f"me/my-lora:{version.id}")
    result = provider.run(build({}), card)
    assert result.cost_source == "actual"
    assert result.cost_usd == pytest.approx(result.gpu_seconds * 0.001525, abs=1e-6)


# -- the emulator on its own, through the official client ------------------------------------------

MINIMAL_EXTRA = {"black-forest-labs/flux-kontext-dev": {"input_image": url(INIT)},
                 "black-forest-labs/flux-fill-pro": {"image": url(INIT)},
                 "qwen/qwen-image-edit": {"image": url(INIT)}}


@pytest.mark.parametrize("card", cloud_cards(), ids=lambda c: c.model)
def test_the_official_client_runs_every_model(fake, card):
    client = fake.client()
    spec = emulated.MODELS[card.model]
    output = client.run(card.model, input={"prompt": "a fox", **MINIMAL_EXTRA.get(card.model, {})})
    if spec.output == "list":
        assert isinstance(output, list) and all(isinstance(o, FileOutput) for o in output)
        output = output[0]
    assert isinstance(output, FileOutput)
    Image.open(io.BytesIO(output.read())).load()


@pytest.mark.parametrize("model, bad, field, kind", [
    ("black-forest-labs/flux-2-klein-4b", {"images": [url(REF1)] * 6}, "input.images", "array_max_items"),
    ("black-forest-labs/flux-2-pro", {"resolution": "3 MP"}, "input.resolution", "enum"),
    ("google/nano-banana-pro", {"image_input": [5]}, "input.image_input.0", "invalid_type"),
    ("bytedance/seedream-4.5", {"size": "1K"}, "input.size", "enum"),
    ("black-forest-labs/flux-kontext-dev", {}, "input", "required"),
    ("openai/gpt-image-1.5", {"number_of_images": 11}, "input.number_of_images", "number_lte"),
])
def test_invalid_inputs_get_replicates_422(fake, model, bad, field, kind):
    with pytest.raises(ReplicateError) as caught:
        fake.client().run(model, input={"prompt": "a fox", **bad})
    assert caught.value.status == 422
    body = fake.requests[-1]
    assert body.method == "POST"
    problems = emulated.validate_input(emulated.MODELS[model].inputs, {"prompt": "a fox", **bad},
                                       reject_unknown=False)
    assert [(p["field"], p["type"]) for p in problems] == [(field, kind)]


def test_the_official_client_sees_each_models_output_shape_in_its_schema(fake):
    client = fake.client()
    klein = client.models.get("black-forest-labs/flux-2-klein-4b").latest_version.openapi_schema
    pro = client.models.get("black-forest-labs/flux-2-pro").latest_version.openapi_schema
    assert klein["components"]["schemas"]["Output"]["type"] == "array"
    assert pro["components"]["schemas"]["Output"]["type"] == "string"
    images = pro["components"]["schemas"]["Input"]["properties"]["input_images"]
    assert images["items"] == {"type": "string", "format": "uri"} and images["maxItems"] == 8
    assert isinstance(replicate.Client, type)
