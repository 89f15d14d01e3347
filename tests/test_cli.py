"""The imagegen command: happy paths and error paths, through typer's runner."""

import pytest
from PIL import Image
from typer.testing import CliRunner

import imagegen.cli as cli
from imagegen import GeneratedImage, ImageGen, read_infotext

from .test_client import PaintProvider

runner = CliRunner()


@pytest.fixture
def paint(monkeypatch):
    provider = PaintProvider(price=0.002)

    def make_client(strategy=None, budget=None):
        from imagegen.router import RoutePolicy

        return ImageGen(providers=[provider], budget_usd=budget,
                        policy=RoutePolicy(strategy=strategy) if strategy else None)

    monkeypatch.setattr(cli, "make_client", make_client)
    return provider


def test_generate_saves_images_and_prints_seeds(paint, tmp_path):
    result = runner.invoke(cli.app, ["generate", "a cat --ar 1:1 --seed 7", "--batch-size", "2", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "seed 7" in result.output and "seed 8" in result.output
    assert "paint:flat" in result.output and "$0.0040" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image-7.png", "image-8.png"]
    assert paint.calls[0].aspect_ratio == "1:1"


def test_generate_runs_every_permutation(paint, tmp_path):
    result = runner.invoke(cli.app, ["generate", "a {red, blue} bird --seed 1", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [c.prompt for c in paint.calls] == ["a red bird", "a blue bird"]


def test_bad_field_is_one_line_and_exit_2(paint, tmp_path):
    result = runner.invoke(cli.app, ["generate", "a cat", "--steps", "500", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "steps" in result.output and "Traceback" not in result.output


def test_bad_prompt_syntax_exit_2(paint, tmp_path):
    result = runner.invoke(cli.app, ["generate", "a cat --ar sixteen", "-o", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_lora_option_parses_name_and_weight(paint, tmp_path):
    paint.lora = True
    result = runner.invoke(cli.app, ["generate", "x", "--lora", "style:0.6", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert paint.calls[0].loras[0].name == "style" and paint.calls[0].loras[0].weight == 0.6


def test_provider_failure_is_exit_1(paint, tmp_path):
    paint.fail = 5
    result = runner.invoke(cli.app, ["generate", "x", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "503" in result.output and "Traceback" not in result.output


def test_budget_refusal_is_exit_1(paint, tmp_path):
    result = runner.invoke(cli.app, ["generate", "x", "--budget", "0.001", "-o", str(tmp_path)])
    assert result.exit_code == 1 and "budget" in result.output
    assert not paint.calls


def test_route_prints_chosen_and_excluded(paint):
    result = runner.invoke(cli.app, ["route", "a cat", "--strategy", "cost"])
    assert result.exit_code == 0, result.output
    assert "chose paint:flat" in result.output


def test_route_with_impossible_needs_exit_1(paint):
    result = runner.invoke(cli.app, ["route", "a cat", "--model", "paint:flat", "--strategy", "cost"])
    assert result.exit_code == 0
    result = runner.invoke(cli.app, ["route", "a cat", "--strategy", "fastest"])
    assert result.exit_code == 2 and "strategy" in result.output


def test_models_lists_cards(paint):
    result = runner.invoke(cli.app, ["models"])
    assert result.exit_code == 0, result.output
    assert "paint:flat" in result.output and "$0.002/image" in result.output


INFOTEXT = ("a castle\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, "
            "CFG scale: 7, Seed: 42, Size: 64x64, Model: demo")


def test_info_prints_stored_parameters_and_request(tmp_path):
    path = GeneratedImage.from_pil(Image.new("RGB", (64, 64)), infotext=INFOTEXT).save(tmp_path / "a.png")
    assert read_infotext(path) == INFOTEXT
    result = runner.invoke(cli.app, ["info", str(path)])
    assert result.exit_code == 0 and result.output.strip() == INFOTEXT
    result = runner.invoke(cli.app, ["info", str(path), "--as-request"])
    assert result.exit_code == 0, result.output
    assert '"seed": 42' in result.output and '"negative_prompt": "blurry"' in result.output


def test_info_on_image_without_parameters_is_exit_1(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    result = runner.invoke(cli.app, ["info", str(path)])
    assert result.exit_code == 1 and "no generation parameters" in result.output
