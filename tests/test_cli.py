"""The imagegen command: happy paths and error paths, through typer's runner."""

import pytest
from PIL import Image
from typer.testing import CliRunner

import imagegen.cli as cli
from imagegen import GeneratedImage, ImageGen, read_infotext

from .test_client import PaintProvider

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    # Tables fold long ids on narrow terminals; tests read them whole.
    monkeypatch.setattr(cli.console, "width", 300)


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


def test_generate_passes_a1111_flags_to_the_request(paint, tmp_path):
    result = runner.invoke(cli.app, ["generate", "a cat", "--seed", "7", "--variation-seed", "3",
                                     "--variation-strength", "0.4", "--clip-skip", "2", "--sampler", "DPM++ 2M",
                                     "--scheduler", "karras", "--vae", "ft-mse", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    call = paint.calls[0]
    assert (call.seed, call.variation_seed, call.variation_strength) == (7, 3, 0.4)
    assert (call.clip_skip, call.sampler, call.scheduler, call.vae) == (2, "DPM++ 2M", "Karras", "ft-mse")


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


# -- finetune, arena, emulator ------------------------------------------------------------

@pytest.fixture
def fake_env(monkeypatch):
    from imagegen.testing import FakeReplicate

    with FakeReplicate(training_time_s=0.2) as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (512, 512), (i * 20, 90, 30)).save(folder / f"p{i}.png")
        (folder / f"p{i}.txt").write_text(f"a photo of TOK number {i}")
    return folder


def test_finetune_create_wait_list_status(fake_env, photos):
    result = runner.invoke(cli.app, ["finetune", "create", str(photos), "-d", "fake-user/cli-lora", "--steps", "10"])
    assert result.exit_code == 0, result.output
    job_id = result.output.split()[0]
    assert job_id.startswith("ft-")
    result = runner.invoke(cli.app, ["finetune", "wait", job_id, "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "model: replicate:fake-user/cli-lora:" in result.output
    listing = runner.invoke(cli.app, ["finetune", "list"])
    assert job_id in listing.output and "succeeded" in listing.output
    assert runner.invoke(cli.app, ["finetune", "status", job_id]).exit_code == 0
    assert fake_env.training_create_count == 1


def test_finetune_bad_dataset_lists_files_and_exit_2(fake_env, tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    Image.new("RGB", (100, 100)).save(folder / "small.png")
    result = runner.invoke(cli.app, ["finetune", "create", str(folder), "-d", "fake-user/x"])
    assert result.exit_code == 2, result.output
    assert "small.png" in result.output
    assert fake_env.training_create_count == 0


def test_finetune_unknown_job_exit_2():
    result = runner.invoke(cli.app, ["finetune", "status", "ft-nope"])
    assert result.exit_code == 2 and "ft-nope" in result.output


def test_arena_vote_and_ratings():
    for winner in ("a", "a", "b", "a", "tie"):
        result = runner.invoke(cli.app, ["arena", "vote", "a cat", "local:sd15", "replicate:x/y", winner])
        assert result.exit_code == 0, result.output
    result = runner.invoke(cli.app, ["arena", "ratings", "--rounds", "20"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "local:sd15" in line or "replicate:x/y" in line]
    assert "local:sd15" in lines[0]  # the more-often winner ranks first
    bad = runner.invoke(cli.app, ["arena", "vote", "a cat", "same", "same", "a"])
    assert bad.exit_code == 2


def test_emulator_prints_env_and_stops_by_itself():
    result = runner.invoke(cli.app, ["emulator", "--port", "0", "--duration", "0.3"])
    assert result.exit_code == 0, result.output
    assert "export REPLICATE_BASE_URL=http://127.0.0.1:" in result.output
