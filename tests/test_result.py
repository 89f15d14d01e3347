"""Saving images writes the A1111 parameters where WebUI tools read them."""

import pytest
from PIL import Image

from imagegen import GeneratedImage, GenerateResult, read_infotext

INFOTEXT = ("(colorful:1.3),\ndreamlike fantasy landscape, <lora:x:1>\n"
            "Negative prompt: (worst quality:1.4)\n"
            "Steps: 40, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 12, Seed: 2416682767, "
            "Size: 64x48, Lora hashes: \"x: 0123456789ab\"")


@pytest.fixture
def image():
    return GeneratedImage.from_pil(Image.new("RGB", (64, 48), (10, 200, 30)), seed=7, infotext=INFOTEXT)


def test_png_has_a_parameters_text_chunk(tmp_path, image):
    path = image.save(tmp_path / "a.png")
    with Image.open(path) as png:
        assert png.info["parameters"] == INFOTEXT
    assert read_infotext(path) == INFOTEXT


@pytest.mark.parametrize("suffix", ["jpg", "jpeg", "webp"])
def test_jpeg_and_webp_carry_it_in_exif_user_comment(tmp_path, image, suffix):
    path = image.save(tmp_path / f"a.{suffix}")
    with Image.open(path) as saved:
        assert saved.format in ("JPEG", "WEBP")
        raw = saved.getexif().get_ifd(0x8769)[0x9286]
    assert raw.startswith(b"UNICODE\0")
    assert read_infotext(path) == INFOTEXT


def test_non_latin_infotext_survives_png(tmp_path):
    text = "猫, ünïcode\nSteps: 20, Sampler: Euler a, CFG scale: 7"
    image = GeneratedImage.from_pil(Image.new("RGB", (8, 8)), infotext=text)
    assert read_infotext(image.save(tmp_path / "u.png")) == text


def test_image_properties_and_pil(image):
    assert (image.width, image.height, image.seed, image.format) == (64, 48, 7, "png")
    assert image.pil().getpixel((3, 3)) == (10, 200, 30)
    assert "data" not in repr(image)


def test_unknown_format_is_refused(tmp_path, image):
    with pytest.raises(ValueError, match="png, jpeg, webp"):
        image.save(tmp_path / "a.gif")


def test_result_save_names_files_by_seed_without_overwriting(tmp_path, image):
    result = GenerateResult(images=[image, image.model_copy(update={"seed": 8})])
    first = result.save(tmp_path)
    second = result.save(tmp_path)
    assert [p.name for p in first] == ["image-7.png", "image-8.png"]
    assert len(set(first + second)) == 4
    assert result.infotext == INFOTEXT
