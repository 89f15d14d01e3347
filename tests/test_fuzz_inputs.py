"""Hostile input into every parser ends as an ImageGenError or a ValidationError naming the
field, never another exception (KeyError, OverflowError, OSError, UnicodeEncodeError...).

Prompt grammars have their own fuzz tests in test_prompt_fuzz.py; webhooks in test_webhooks.py.
"""

from __future__ import annotations

import random

import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagegen import GenerateRequest, ImageInput, parse_infotext, read_infotext
from imagegen.errors import ImageGenError, ImageReadError, PromptSyntaxError
from imagegen.result import GeneratedImage

_FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_INFOTEXT = "a cat\nNegative prompt: text\nSteps: 20, Sampler: Euler a, Seed: 1, Size: 16x16"


def _fields(exc: pydantic.ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.errors()}


# -- the cases reported, one by one ------------------------------------------------------------

def test_size_without_its_pair_names_the_missing_key():
    with pytest.raises(PromptSyntaxError, match="Size-2"):
        GenerateRequest.from_infotext("a\nSteps: 20, Seed: 1, Size-1: 512")


@pytest.mark.parametrize("value", ["abc", "-8", "1e400", "nan", "9" * 400])
def test_bad_size_values_are_typed(value):
    text = f"a\nSteps: 20, Seed: 1, Size-1: {value}, Size-2: 512"
    assert parse_infotext(text)["Size-1"] == value  # parse keeps the text, as WebUI does
    with pytest.raises((PromptSyntaxError, pydantic.ValidationError)):
        GenerateRequest.from_infotext(text)


def test_huge_aspect_ratio_is_a_validation_error_naming_the_field():
    with pytest.raises(pydantic.ValidationError) as caught:
        GenerateRequest(prompt="a", aspect_ratio="1" + "0" * 400 + ":1")
    assert _fields(caught.value) == {"aspect_ratio"}
    assert "10000" in str(caught.value)
    # the largest allowed still gives a finite, clamped size
    assert GenerateRequest(prompt="a", aspect_ratio="10000:1").size() == (4096, 64)


@pytest.mark.parametrize("ratio", ["\u00b2:1", "\u0661:1", "1_0:1"])
def test_non_ascii_digits_in_ratio_are_refused(ratio):
    with pytest.raises(pydantic.ValidationError) as caught:
        GenerateRequest(prompt="a", aspect_ratio=ratio)
    assert _fields(caught.value) == {"aspect_ratio"}


@pytest.mark.parametrize("path", ["a" * 300, "a" * 5000, "a\ud800b.png", "dir/\udcff.png", "x\x00y"])
def test_unusable_image_paths_are_validation_errors(path):
    for field in ("init_image", "mask_image"):
        kwargs = {"init_image": b"x"} if field == "mask_image" else {}
        with pytest.raises(pydantic.ValidationError) as caught:
            GenerateRequest(prompt="a", **{field: path}, **kwargs)
        assert _fields(caught.value) == {field}
        str(caught.value).encode("utf-8")  # printable: no lone surrogate in the message


def test_bad_data_url_is_refused_and_undecodable_bytes_are_typed():
    with pytest.raises(pydantic.ValidationError, match="base64"):
        GenerateRequest(prompt="a", init_image="data:image/png;base64,!!!")
    with pytest.raises(ImageReadError):
        ImageInput(data=b"not an image").to_pil()


def _images() -> list[bytes]:
    picture = Image.new("RGB", (16, 16), (200, 10, 10))
    return [GeneratedImage.from_pil(picture, format=f, infotext=_INFOTEXT).data for f in ("png", "jpeg", "webp")]


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 8)):
        if not out:
            break
        at, op = rnd.randrange(len(out)), rnd.random()
        if op < 0.5:
            out[at] = rnd.randrange(256)
        elif op < 0.7:
            del out[at:at + rnd.randint(1, 20)]
        elif op < 0.85:
            out[at:at] = rnd.randbytes(rnd.randint(1, 8))
        else:
            del out[at:]
    return bytes(out)


def test_read_infotext_on_mutated_images_is_text_none_or_typed():
    images = _images()
    for data in images:
        assert read_infotext(data) == _INFOTEXT
    rnd = random.Random(14)
    outcomes = {"text": 0, "none": 0, "typed": 0}
    for _ in range(3000):
        try:
            text = read_infotext(_mutate(rnd.choice(images), rnd))
        except ImageReadError:
            outcomes["typed"] += 1
        else:
            assert text is None or isinstance(text, str)
            outcomes["text" if text else "none"] += 1
    assert outcomes["typed"] > 0 and outcomes["text"] > 0  # both paths were exercised


@pytest.mark.parametrize("source", [b"", b"GIF89a", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "missing.png",
                                    "a" * 300, "a\ud800.png", "."])
def test_read_infotext_on_non_images_and_bad_paths(source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageReadError) as caught:
        read_infotext(source)
    str(caught.value).encode("utf-8")


# -- hypothesis over each parser ---------------------------------------------------------------

_KEYS = st.sampled_from(["Steps", "Seed", "Size", "Size-1", "Size-2", "Sampler", "CFG scale", "Clip skip",
                         "Hires upscale", "Hires resize", "Hires steps", "Hires upscaler", "Denoising strength",
                         "First pass size", "Version", "Variation seed", "Variation seed strength",
                         "Schedule type", "Model", "VAE", "Hypernet", "Hires prompt", "FP8 weight", "Prompt"])
_VALUES = st.sampled_from(["abc", "-8", "512", "512x512", "0x0", "1e400", "nan", "inf", "-1", "9" * 30, "0",
                           "2.5", '"x"', '"a,b"', "v1.10.0", "v1.2.0", "", "1x", "Euler a",
                           "DPM++ 2M Karras", "Karras", "Disable"]) | st.text(max_size=12)


@_FUZZ
@given(st.sampled_from(["a", "a\nNegative prompt: b", "", "<lora:x:1> a"]),
       st.lists(st.tuples(_KEYS, _VALUES), min_size=1, max_size=8))
@example("a", [("Steps", "20"), ("Seed", "1"), ("Size-1", "512")])
def test_infotext_parameter_lines_never_fail_unexpectedly(prompt, pairs):
    text = prompt + "\n" + ", ".join(f"{key}: {value}" for key, value in pairs)
    assert isinstance(parse_infotext(text), dict)
    try:
        GenerateRequest.from_infotext(text)
    except (PromptSyntaxError, pydantic.ValidationError):
        pass


_PATHS = st.text(max_size=300) | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                                         min_size=1, max_size=3).map(lambda s: f"x{s}.png")


@_FUZZ
@given(aspect_ratio=st.none() | st.text(max_size=12) | st.from_regex(r"[0-9]{1,500}:[0-9]{1,500}", fullmatch=True),
       width=st.none() | st.integers(-10, 10**30), init_image=st.none() | _PATHS | st.binary(max_size=20))
def test_request_fields_never_fail_unexpectedly(aspect_ratio, width, init_image):
    kwargs = {"aspect_ratio": aspect_ratio, "width": width, "init_image": init_image}
    try:
        request = GenerateRequest(prompt="a", **{k: v for k, v in kwargs.items() if v is not None})
    except pydantic.ValidationError as error:
        assert _fields(error) <= {"aspect_ratio", "width", "init_image", "init_image.path", "request", ""}
        str(error).encode("utf-8")
        return
    width_px, height_px = request.size()
    assert 64 <= width_px <= 8192 and 64 <= height_px <= 8192
    request.needs()


@_FUZZ
@given(st.binary(max_size=64) | st.sampled_from(_images()).flatmap(
    lambda data: st.randoms(use_true_random=False).map(lambda rnd: _mutate(data, rnd))))
def test_read_infotext_never_fails_unexpectedly(data):
    try:
        text = read_infotext(data)
    except ImageGenError:
        return
    assert text is None or isinstance(text, str)
