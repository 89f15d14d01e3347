"""`imagegen serve` through the official `openai` client: the demo model and the Replicate
emulator behind the router, one server for the module on a free loopback port."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("imagegen.providers.local")

from imagegen import GenerateRequest, read_infotext  # noqa: E402
from imagegen.server._images import ImageStore  # noqa: E402
from imagegen.server._openai import _mask_for  # noqa: E402
from tests.serve_fixtures import served_router  # noqa: E402

KEY = "sk-test-openai-0123456789"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_router(tmp_path_factory.mktemp("serve_home"), KEY) as served:
        yield served


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served["url"] + "/v1", api_key=KEY, max_retries=0)


def _png(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def test_generate_returns_b64_png_with_the_seed_and_size_asked_for(client):
    response = client.images.generate(prompt="a red circle on a blue background", model="local:demo",
                                      size="64x64", extra_body={"seed": 11, "steps": 6})
    assert len(response.data) == 1 and response.data[0].url is None
    image = _png(response.data[0].b64_json)
    assert image.size == (64, 64) and response.size == "64x64" and response.output_format == "png"
    text = read_infotext(base64.b64decode(response.data[0].b64_json))
    assert "Seed: 11" in text and "Steps: 6" in text and "Size: 64x64" in text
    assert response.model_extra["imagegen"]["model"] == "local:demo"
    assert response.model_extra["imagegen"]["seeds"] == [11]


def test_n_images_take_consecutive_seeds_and_extra_fields_reach_the_request(client):
    response = client.images.generate(prompt="a green square", model="local:demo", n=2, size="64x64",
                                      extra_body={"seed": 40, "steps": 5, "negative_prompt": "red",
                                                  "sampler": "DPM++ 2M Karras"})
    assert response.model_extra["imagegen"]["seeds"] == [40, 41]
    texts = [read_infotext(base64.b64decode(d.b64_json)) for d in response.data]
    assert "Negative prompt: red" in texts[0] and "Sampler: DPM++ 2M" in texts[0] and "Karras" in texts[0]
    assert "Seed: 41" in texts[1]
    assert response.data[0].b64_json != response.data[1].b64_json


def test_response_format_url_serves_the_image_from_this_server(client, served):
    response = client.images.generate(prompt="a yellow star", model="local:demo", size="64x64",
                                      response_format="url", extra_body={"seed": 2, "steps": 4})
    url = response.data[0].url
    assert url.startswith(served["url"] + "/v1/images/files/") and response.data[0].b64_json is None
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(fetched.content)).size == (64, 64)
    gone = httpx.get(served["url"] + "/v1/images/files/not-a-token.png")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


def test_url_store_expires_images(monkeypatch):
    store = ImageStore(ttl_s=60)
    token, expires = store.put(b"png bytes", "png")
    assert store.get(token).data == b"png bytes"
    import imagegen.server._images as images

    monkeypatch.setattr(images.time, "time", lambda: expires + 1)
    assert store.get(token) is None and len(store) == 0


def test_a_cloud_model_id_runs_on_the_emulator(client, served):
    fake = served["fake"]
    before = fake.create_count
    response = client.images.generate(prompt="a fox in the snow --ar 3:2",
                                      model="replicate:black-forest-labs/flux-schnell", size="auto")
    assert fake.create_count == before + 1
    assert response.model_extra["imagegen"]["model"] == "replicate:black-forest-labs/flux-schnell"
    assert response.model_extra["imagegen"]["cost_usd"] > 0
    image = _png(response.data[0].b64_json)
    assert image.width > image.height  # --ar 3:2 from the prompt reached the request


@pytest.mark.parametrize(("alias", "strategy"), [("best", "quality"), ("cheapest", "cost"), ("fastest", "speed")])
def test_routing_aliases_pick_what_the_strategy_picks(client, served, alias, strategy):
    gen = served["gen"]
    expected = gen.route(GenerateRequest(prompt="a small house", width=64, height=64),
                         policy=gen.policy.model_copy(update={"strategy": strategy})).chosen.id
    response = client.images.generate(prompt="a small house", model=alias, size="64x64",
                                      extra_body={"steps": 4})
    assert response.model_extra["imagegen"]["model"] == expected


def test_openai_model_names_mean_auto(client, served):
    expected = served["gen"].route(GenerateRequest(prompt="a tree", width=64, height=64)).chosen.id
    response = client.images.generate(prompt="a tree", model="gpt-image-1", size="64x64", extra_body={"steps": 4})
    assert response.model_extra["imagegen"]["model"] == expected


def test_edit_sends_image_and_mask_as_init_and_mask_images(client):
    source = Image.new("RGB", (64, 64), (0, 0, 255))
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (16, 16, 48, 48))  # transparent = edit here (OpenAI's convention)
    buffers = []
    for picture in (source, mask):
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        buffers.append(("image.png", buffer.getvalue(), "image/png"))
    response = client.images.edit(image=buffers[0], mask=buffers[1], prompt="a red circle", model="local:demo",
                                  extra_body={"seed": 9, "steps": 8, "denoising_strength": 0.6})
    image = _png(response.data[0].b64_json)
    assert image.size == (64, 64)
    text = read_infotext(base64.b64decode(response.data[0].b64_json))
    assert "Denoising strength: 0.6" in text and "Seed: 9" in text
    # Outside the mask the blue source survives; inside, the prompt painted.
    corner = image.convert("RGB").getpixel((2, 2))
    assert corner[2] > corner[0]


def test_openai_mask_alpha_becomes_white_where_to_paint():
    mask = Image.new("RGBA", (8, 8), (0, 0, 0, 255))
    mask.putpixel((3, 3), (0, 0, 0, 0))
    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, format="PNG")
    encoded = io.BytesIO()
    mask.save(encoded, format="PNG")
    converted = Image.open(io.BytesIO(_mask_for(encoded.getvalue(), image.getvalue())))
    assert converted.getpixel((3, 3)) == 255 and converted.getpixel((0, 0)) == 0


def test_edit_without_an_image_or_with_a_mismatched_mask_is_a_400(served):
    headers = {"Authorization": f"Bearer {KEY}"}
    missing = httpx.post(served["url"] + "/v1/images/edits", headers=headers,
                         files={"prompt": (None, "x")})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "image"
    small, big = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (64, 64)).save(small, format="PNG")
    Image.new("RGBA", (32, 32)).save(big, format="PNG")
    mismatched = httpx.post(served["url"] + "/v1/images/edits", headers=headers,
                            files={"image": ("a.png", small.getvalue(), "image/png"),
                                   "mask": ("m.png", big.getvalue(), "image/png"),
                                   "prompt": (None, "x"), "model": (None, "local:demo")})
    assert mismatched.status_code == 400 and mismatched.json()["error"]["param"] == "mask"
    not_image = httpx.post(served["url"] + "/v1/images/edits", headers=headers,
                           files={"image": ("a.png", b"not an image", "image/png"), "prompt": (None, "x")})
    assert not_image.status_code == 400 and not_image.json()["error"]["code"] == "invalid_image"


# -- errors, as the official client sees them ----------------------------------------------------

def _error(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as caught:
        call()
    return caught.value


def test_unknown_model_is_a_404_model_not_found(client):
    exc = _error(lambda: client.images.generate(prompt="x", model="replicate:nobody/nothing-here"))
    assert isinstance(exc, openai.NotFoundError)
    assert exc.body["code"] == "model_not_found" and exc.body["param"] == "model"


@pytest.mark.parametrize(("kwargs", "param", "code"), [
    ({"n": "two"}, "n", "invalid_value"),
    ({"n": 11}, "n", "too_many_images"),
    ({"size": "64x63"}, "size", "invalid_value"),
    ({"size": "big"}, "size", "invalid_value"),
    ({"size": "4096x4096"}, "size", "image_too_large"),
    ({"quality": "ultra"}, "quality", "invalid_value"),
    ({"extra_body": {"sampler": "Nope Sampler"}}, "sampler", "invalid_value"),
    ({"extra_body": {"steps": "many"}}, "steps", "invalid_value"),
    ({"extra_body": {"colour": "red"}}, "colour", "unknown_parameter"),
    ({"extra_body": {"provider_options": {"replicate": {"webhook": "http://x"}}}}, "provider_options",
     "unknown_parameter"),
    ({"background": "transparent"}, "background", "unsupported_value"),
])
def test_bad_parameters_are_400_with_openai_error_objects(client, kwargs, param, code):
    exc = _error(lambda: client.images.generate(prompt="a cat", model="local:demo", **kwargs))
    assert isinstance(exc, openai.BadRequestError), exc
    assert exc.body["type"] == "invalid_request_error"
    assert exc.body["param"] == param and exc.body["code"] == code
    assert exc.body["message"]


def test_a_prompt_that_does_not_parse_is_a_400_on_prompt(client):
    exc = _error(lambda: client.images.generate(prompt="a cat --ar banana", model="local:demo"))
    assert isinstance(exc, openai.BadRequestError) and exc.body["param"] in ("prompt", "aspect_ratio")


def test_invalid_json_and_wrong_body_types_are_400(served):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    for body in (b"{not json", b"[1, 2]", b'{"prompt": 5}', b"{}"):
        response = httpx.post(served["url"] + "/v1/images/generations", content=body, headers=headers)
        assert response.status_code == 400, body
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_missing_or_wrong_key_is_a_401_that_never_echoes_the_key(served):
    wrong = openai.OpenAI(base_url=served["url"] + "/v1", api_key="sk-wrong-guess-123", max_retries=0)
    exc = _error(lambda: wrong.images.generate(prompt="x", model="local:demo"))
    assert isinstance(exc, openai.AuthenticationError) and exc.body["code"] == "invalid_api_key"
    assert "sk-wrong-guess-123" not in exc.response.text and KEY not in exc.response.text
    missing = httpx.post(served["url"] + "/v1/images/generations", json={"prompt": "x"})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "missing_api_key"
    assert missing.headers["www-authenticate"] == "Bearer"


def test_unknown_paths_get_openai_shaped_404s(served):
    response = httpx.get(served["url"] + "/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_models_lists_aliases_and_every_card(client, served):
    ids = [m.id for m in client.models.list()]
    assert ids[:2] == ["auto", "default"] and "best" in ids
    assert {card.id for card in served["gen"].models()} <= set(ids)
