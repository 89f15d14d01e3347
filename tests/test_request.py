"""GenerateRequest validation: every bad value is a ValidationError that names its field."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from imagegen import ControlNetUnit, GenerateRequest, HiresFix, ImageInput, LoraRef


def error_fields(exc: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", ""),
        ("prompt", "   "),
        ("width", 513),
        ("width", 32),
        ("height", 4104),
        ("aspect_ratio", "16x9"),
        ("aspect_ratio", "0:9"),
        ("aspect_ratio", "-1:2"),
        ("steps", 0),
        ("steps", 151),
        ("cfg_scale", -0.5),
        ("cfg_scale", 30.5),
        ("seed", -2),
        ("seed", 2**32),
        ("batch_size", 0),
        ("batch_size", 9),
        ("batch_count", 101),
        ("clip_skip", 0),
        ("sampler", "Eulr a"),
        ("scheduler", "Karas"),
        ("output_format", "gif"),
        ("model", " "),
        ("unknown_field", 1),
    ],
)
def test_bad_value_names_the_field(field, value):
    with pytest.raises(ValidationError) as info:
        GenerateRequest(prompt="a cat", **{field: value}) if field != "prompt" else GenerateRequest(prompt=value)
    assert field in error_fields(info.value)


def test_sampler_error_lists_close_matches():
    with pytest.raises(ValidationError) as info:
        GenerateRequest(prompt="x", sampler="DPM++ 2M Karas")
    assert "'DPM++ 2M Karras'" in str(info.value)


@pytest.mark.parametrize("name", ["Euler a", "DPM++ 2M Karras", "DPM++ 2M SDE Karras", "DDIM", "UniPC",
                                  "k_euler_a", "dpm++ 2m", "DPM++ 2M SDE Heun Exponential", "LCM"])
def test_a1111_sampler_names_are_accepted(name):
    assert GenerateRequest(prompt="x", sampler=name).sampler == name


def test_scheduler_is_normalised():
    assert GenerateRequest(prompt="x", scheduler="karras").scheduler == "Karras"
    assert GenerateRequest(prompt="x", scheduler="SGMUniform").scheduler == "SGM Uniform"


def test_seed_minus_one_means_random():
    assert not GenerateRequest(prompt="x", seed=-1).seed_fixed
    assert not GenerateRequest(prompt="x").seed_fixed
    assert GenerateRequest(prompt="x", seed=0).seed_fixed


def test_aspect_ratio_must_agree_with_width_and_height():
    GenerateRequest(prompt="x", width=512, height=768, aspect_ratio="2:3")
    GenerateRequest(prompt="x", width=1360, height=768, aspect_ratio="16:9")  # 8-px rounding allowed
    with pytest.raises(ValidationError, match="contradicts"):
        GenerateRequest(prompt="x", width=512, height=512, aspect_ratio="16:9")


def test_size_comes_from_aspect_ratio_at_the_base_area():
    w, h = GenerateRequest(prompt="x", aspect_ratio="9:16").size(1024)
    assert (w % 8, h % 8) == (0, 0)
    assert abs(w / h - 9 / 16) < 0.02
    assert abs(w * h - 1024 * 1024) / (1024 * 1024) < 0.03
    assert GenerateRequest(prompt="x", width=640, aspect_ratio="2:1").size() == (640, 320)
    assert GenerateRequest(prompt="x").size() == (512, 512)


def test_mask_needs_an_init_image(tmp_path):
    with pytest.raises(ValidationError, match="mask_image needs init_image"):
        GenerateRequest(prompt="x", mask_image=b"png")


def test_denoising_strength_needs_an_init_image():
    with pytest.raises(ValidationError) as info:
        GenerateRequest(prompt="x", denoising_strength=0.5)
    assert "hires.denoising_strength" in str(info.value)
    GenerateRequest(prompt="x", init_image=b"...", denoising_strength=0.5)


@pytest.mark.parametrize(("model", "kwargs", "field"), [
    (LoraRef, {"name": "a", "weight": 5.5}, "weight"),
    (LoraRef, {"name": ""}, "name"),
    (HiresFix, {"scale": 0.5}, "scale"),
    (HiresFix, {"denoising_strength": 1.5}, "denoising_strength"),
    (HiresFix, {"steps": -1}, "steps"),
])
def test_parts_name_their_field(model, kwargs, field):
    with pytest.raises(ValidationError) as info:
        model(**kwargs)
    assert field in error_fields(info.value)


def test_controlnet_needs_exactly_one_input():
    with pytest.raises(ValidationError, match="exactly one of image or pose"):
        ControlNetUnit(model="openpose")
    with pytest.raises(ValidationError, match="guidance_start"):
        ControlNetUnit(model="canny", pose={"people": []}, guidance_start=0.8, guidance_end=0.2)


def test_image_input_accepts_path_bytes_pil_and_url(tmp_path):
    from PIL import Image

    image = Image.new("RGB", (16, 8), "red")
    path = tmp_path / "in.png"
    image.save(path)
    assert ImageInput.model_validate(str(path)).to_pil().size == (16, 8)
    assert ImageInput.model_validate(path.read_bytes()).to_pil().size == (16, 8)
    assert ImageInput.model_validate(image).to_pil().getpixel((0, 0)) == (255, 0, 0)
    assert ImageInput.model_validate("https://example.org/a.png").url == "https://example.org/a.png"
    data_url = ImageInput.model_validate(image).to_data_url()
    assert ImageInput.model_validate(data_url).to_pil().size == (16, 8)
    with pytest.raises(ValidationError, match="not found"):
        GenerateRequest(prompt="x", init_image=str(tmp_path / "missing.png"))


def test_json_schema_describes_every_field():
    schema = GenerateRequest.model_json_schema()
    json.dumps(schema)
    assert schema["required"] == ["prompt"]
    for name in ("prompt", "negative_prompt", "width", "aspect_ratio", "sampler", "seed", "loras", "hires",
                 "init_image", "controlnets", "provider_options", "clip_skip", "batch_count"):
        assert name in schema["properties"]
    assert schema["additionalProperties"] is False


def test_request_round_trips_through_json():
    req = GenerateRequest(prompt="a cat", negative_prompt="text", width=512, height=768, steps=20,
                          cfg_scale=7.0, seed=42, sampler="DPM++ 2M Karras", batch_size=2,
                          loras=[LoraRef(name="x", weight=0.8)], hires=HiresFix(), model="local:/m/sd15")
    assert GenerateRequest.model_validate_json(req.model_dump_json()) == req


_values = st.one_of(st.none(), st.integers(-10**10, 10**10), st.floats(allow_nan=True),
                    st.text(max_size=20), st.booleans(), st.lists(st.integers(), max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["prompt", "negative_prompt", "width", "height", "aspect_ratio",
                                        "steps", "cfg_scale", "sampler", "scheduler", "seed", "batch_size",
                                        "batch_count", "clip_skip", "denoising_strength", "output_format",
                                        "model", "vae", "loras", "hires"]), _values))
def test_any_field_values_give_a_request_or_a_validation_error(fields):
    try:
        GenerateRequest(**fields)
    except ValidationError:
        pass


def test_size_keeps_the_ratio_when_the_base_is_small():
    assert GenerateRequest(prompt="x", aspect_ratio="2:1").size(64) == (128, 64)
    assert GenerateRequest(prompt="x", aspect_ratio="1:3").size(64) == (64, 192)
