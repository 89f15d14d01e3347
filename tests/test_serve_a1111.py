"""`imagegen serve` through `webuiapi`, a maintained AUTOMATIC1111 API client: txt2img, img2img
and the listings and controls WebUI clients use, with the demo model and the emulator."""

from __future__ import annotations

import base64
import io
import threading
import time

import httpx
import pytest
from PIL import Image

webuiapi = pytest.importorskip("webuiapi")
pytest.importorskip("fastapi")
pytest.importorskip("imagegen.providers.local")

from imagegen import read_infotext  # noqa: E402
from imagegen.samplers import SAMPLERS  # noqa: E402
from tests.serve_fixtures import served_router  # noqa: E402

KEY = "sk-test-webui-0123456789"
pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = {"width": 64, "height": 64, "steps": 6, "override_settings": {"sd_model_checkpoint": "local:demo"}}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("serve_home")
    models = home / "models"
    (models / "Lora").mkdir(parents=True)
    (models / "Lora" / "inkwash.safetensors").write_bytes(b"not read by the listing")
    with served_router(home, KEY, models) as served:
        yield served


@pytest.fixture(scope="module")
def api(served):
    port = int(served["url"].rsplit(":", 1)[1])
    # WebUI's --api-auth is HTTP Basic; the key goes in as the password.
    return webuiapi.WebUIApi(host="127.0.0.1", port=port, username="me", password=KEY)


def _post(served, path, body, key=KEY):
    return httpx.post(served["url"] + path, json=body, auth=("me", key) if key else None, timeout=60)


def test_txt2img_returns_images_parameters_and_webui_info(api):
    result = api.txt2img(prompt="a red circle on a blue background", negative_prompt="green", seed=21,
                         batch_size=2, cfg_scale=6, sampler_name="Euler a", **SMALL)
    assert len(result.images) == 2 and all(image.size == (64, 64) for image in result.images)
    info = result.info
    assert info["all_seeds"] == [21, 22] and info["seed"] == 21
    assert info["prompt"] == "a red circle on a blue background" and info["negative_prompt"] == "green"
    assert info["all_prompts"] == [info["prompt"]] * 2 and info["batch_size"] == 2
    assert info["width"] == 64 and info["steps"] == 6 and info["cfg_scale"] == 6
    assert info["sampler_name"] == "Euler a" and info["job_timestamp"].isdigit()
    assert [read_infotext(_bytes(image)) for image in result.images] == info["infotexts"]
    assert "Seed: 22" in info["infotexts"][1] and "Negative prompt: green" in info["infotexts"][0]
    assert result.parameters["prompt"] == "a red circle on a blue background"
    assert result.parameters["seed"] == 21 and result.parameters["n_iter"] == 1
    assert info["imagegen"]["model"] == "local:demo"


def _bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    info = image.info.get("parameters")
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    if info:
        meta.add_text("parameters", info)
    image.save(buffer, format="PNG", pnginfo=meta)
    return buffer.getvalue()


def test_n_iter_is_batch_count_and_subseed_is_the_variation_seed(api):
    result = api.txt2img(prompt="a blue square", seed=5, n_iter=2, subseed=77, subseed_strength=0.3, **SMALL)
    info = result.info
    # As WebUI: with a subseed strength the seed stays and the subseed counts up.
    assert len(result.images) == 2 and info["all_seeds"] == [5, 5] and info["all_subseeds"] == [77, 78]
    assert info["subseed"] == 77 and info["subseed_strength"] == 0.3
    assert "Variation seed: 77" in info["infotexts"][0] and "Variation seed strength: 0.3" in info["infotexts"][0]
    assert "Variation seed: 78" in info["infotexts"][1]
    plain = api.txt2img(prompt="a blue square", seed=5, n_iter=2, **SMALL).info
    assert plain["all_seeds"] == [5, 6]


def test_hires_fix_and_clip_skip_from_override_settings(api):
    result = api.txt2img(prompt="a yellow star", seed=3, enable_hr=True, hr_scale=2, hr_upscaler="Latent",
                         hr_second_pass_steps=3, denoising_strength=0.5, width=64, height=64, steps=4,
                         override_settings={"sd_model_checkpoint": "local:demo", "CLIP_stop_at_last_layers": 2})
    assert result.images[0].size == (128, 128)
    text = result.info["infotexts"][0]
    assert "Hires upscale: 2" in text and "Hires steps: 3" in text and "Denoising strength: 0.5" in text
    assert "Clip skip: 2" in text and result.info["clip_skip"] == 2


def test_a_cloud_checkpoint_runs_on_the_emulator(api, served):
    fake = served["fake"]
    before = fake.create_count
    result = api.txt2img(prompt="a fox", seed=8, width=512, height=512, steps=4,
                         override_settings={"sd_model_checkpoint": "replicate:black-forest-labs/flux-schnell"})
    assert fake.create_count == before + 1 and len(result.images) == 1
    assert result.info["imagegen"]["model"] == "replicate:black-forest-labs/flux-schnell"
    assert result.info["seed"] == 8


def test_img2img_with_a_mask_and_init_images_left_out_of_parameters(api):
    source = Image.new("RGB", (64, 64), (0, 0, 255))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    result = api.img2img(images=[source], mask_image=mask, prompt="a red circle", seed=4,
                         denoising_strength=0.6, **SMALL)
    assert result.images[0].size == (64, 64)
    assert result.parameters["init_images"] is None and result.parameters["mask"] is None
    assert "Denoising strength: 0.6" in result.info["infotexts"][0]
    corner = result.images[0].convert("RGB").getpixel((2, 2))
    assert corner[2] > corner[0]  # unmasked source kept


def test_infotext_field_fills_what_the_payload_leaves_unset(served):
    body = {"infotext": "a green triangle\nSteps: 5, Sampler: Euler, Seed: 123, Size: 64x64",
            "override_settings": {"sd_model_checkpoint": "local:demo"}}
    response = _post(served, "/sdapi/v1/txt2img", body)
    assert response.status_code == 200, response.text
    import json

    info = json.loads(response.json()["info"])
    assert info["seed"] == 123 and info["steps"] == 5 and info["prompt"] == "a green triangle"


def test_sd_models_list_what_the_router_can_serve(api, served):
    titles = api.util_get_model_names()
    assert {card.id for card in served["gen"].models()} <= set(titles)
    assert {"auto", "best", "cheapest", "fastest"} <= set(titles)
    rows = api.get_sd_models()
    assert set(rows[0]) == {"title", "model_name", "hash", "sha256", "filename", "config"}


def test_samplers_schedulers_upscalers_and_loras(api):
    samplers = api.get_samplers()
    assert [s["name"] for s in samplers] == list(SAMPLERS)
    assert set(samplers[0]) == {"name", "aliases", "options"}
    schedulers = api.get_schedulers()
    assert {"automatic", "karras", "exponential"} <= {s["name"] for s in schedulers}
    assert next(s for s in schedulers if s["name"] == "karras")["label"] == "Karras"
    assert "Latent" in [m["name"] for m in api.get_latent_upscale_modes()]
    assert [lora["name"] for lora in api.get_loras()] == ["inkwash"]
    assert api.get_loras()[0]["path"] == "Lora/inkwash.safetensors"  # relative: no server paths leak


def test_webui_scheduler_names_and_labels_are_accepted(api):
    result = api.txt2img(prompt="a ring", seed=1, sampler_name="DPM++ 2M", scheduler="karras", **SMALL)
    assert "Schedule type: Karras" in result.info["infotexts"][0]


def test_options_select_the_checkpoint_for_later_requests(api, served):
    assert api.get_options()["sd_model_checkpoint"] == "auto"
    api.set_options({"sd_model_checkpoint": "local:demo"})
    try:
        assert api.util_get_current_model() == "local:demo"
        result = api.txt2img(prompt="a cross", seed=2, width=64, height=64, steps=4)
        assert result.info["imagegen"]["model"] == "local:demo"
        refused = _post(served, "/sdapi/v1/options", {"sd_model_checkpoint": "no-such-model"})
        assert refused.status_code == 404 and refused.json()["detail"] == "Model not found"
    finally:
        api.set_options({"sd_model_checkpoint": "auto"})


def test_png_info_reads_back_the_parameters(api):
    result = api.txt2img(prompt="a white ring", seed=31, **SMALL)
    read = api.png_info(result.images[0])
    assert read.info == result.info["infotexts"][0]
    assert read.json["parameters"]["Seed"] == "31" and read.json["parameters"]["Prompt"] == "a white ring"


def test_progress_reports_the_running_job_and_interrupt_stops_it(api, served):
    assert api.get_progress()["progress"] == 0 and api.get_progress()["state"]["job_count"] == 0
    outcome = {}

    def slow_job():
        outcome["result"] = api.txt2img(prompt="a red square", seed=1, width=64, height=64, steps=150,
                                        override_settings={"sd_model_checkpoint": "local:demo"})

    worker = threading.Thread(target=slow_job)
    worker.start()
    seen = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = api.get_progress()
        if progress["state"]["sampling_step"] > 0:
            seen = progress
            break
        time.sleep(0.02)
    assert seen is not None, "the job never reported a step"
    assert 0 < seen["progress"] < 1 and seen["state"]["sampling_steps"] == 150
    assert seen["state"]["job_count"] == 1 and seen["current_task"]
    assert api.interrupt() == {}
    worker.join(30)
    assert outcome["result"].images == [] and outcome["result"].info["imagegen"]["interrupted"] is True
    assert api.get_progress()["state"]["job_count"] == 0


# -- errors: WebUI's shapes and statuses -------------------------------------------------------------

def test_unknown_sampler_and_scheduler_are_400_sampler_not_found(served):
    for field, detail in (("sampler_name", "Sampler not found"), ("scheduler", "Scheduler not found")):
        response = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", field: "Bogus 9000", **SMALL})
        assert response.status_code == 400
        assert response.json() == {"error": "HTTPException", "detail": detail, "body": "",
                                   "errors": f"400: {detail}"}


def test_wrong_types_are_422_naming_the_field(served):
    response = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", "steps": "many"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "steps"]
    too_many = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", "steps": 999, **{k: v for k, v in SMALL.items()
                                                                                  if k != "steps"}})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "steps"]


def test_huge_sizes_unknown_scripts_and_bad_images_are_refused(served):
    huge = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", "width": 4096, "height": 4096})
    assert huge.status_code == 400 and "limit" in huge.json()["detail"]
    hires = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", "width": 768, "height": 768, "enable_hr": True,
                                                 "hr_scale": 2})
    assert hires.status_code == 400
    script = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", "alwayson_scripts": {"ADetailer": {"args": []}}})
    assert script.status_code == 422 and script.json()["detail"] == "always on script ADetailer not found"
    no_init = _post(served, "/sdapi/v1/img2img", {"prompt": "x"})
    assert no_init.status_code == 404 and no_init.json()["detail"] == "Init image not found"
    bad_image = _post(served, "/sdapi/v1/img2img", {"prompt": "x", "init_images": ["bm90IGFuIGltYWdl"]})
    assert bad_image.status_code == 400 and bad_image.json()["detail"] == "Invalid encoded image"
    url_image = _post(served, "/sdapi/v1/img2img", {"prompt": "x", "init_images": ["http://127.0.0.1/x.png"]})
    assert url_image.status_code == 400


def test_unknown_checkpoint_is_404_model_not_found(served):
    response = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", "override_settings": {"sd_model_checkpoint":
                                                                                         "nothing.safetensors"}})
    assert response.status_code == 404 and response.json()["detail"] == "Model not found"


def test_missing_auth_is_401_with_a_basic_challenge(served):
    for key in (None, "wrong-password-123"):
        response = _post(served, "/sdapi/v1/txt2img", {"prompt": "x"}, key=key)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Basic"
        assert response.json()["error"] == "HTTPException"
    assert httpx.get(served["url"] + "/sdapi/v1/sd-models").status_code == 401


def test_controlnet_units_become_control_images(served):
    control = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 255, 255)).save(control, format="PNG")
    unit = {"image": base64.b64encode(control.getvalue()).decode(), "model": "no-such-controlnet",
            "weight": 0.8, "enabled": True}
    response = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", **SMALL,
                                                    "alwayson_scripts": {"controlnet": {"args": [unit]}}})
    # The demo checkpoint has no ControlNet of that name: the unit reached the backend, which says so.
    assert response.status_code in (400, 404, 502), response.text
    assert "controlnet" in response.text.lower()
    disabled = dict(unit, enabled=False)
    ok = _post(served, "/sdapi/v1/txt2img", {"prompt": "x", "seed": 1, **SMALL,
                                              "alwayson_scripts": {"controlnet": {"args": [disabled]}}})
    assert ok.status_code == 200
