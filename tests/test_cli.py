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

    def make_client(strategy=None, budget=None, **constraints):
        return ImageGen(providers=[provider], budget_usd=budget, policy=cli.make_policy(strategy, **constraints))

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


DEV = "replicate:black-forest-labs/flux-dev"


def test_arena_vote_and_ratings():
    for winner in ("a", "a", "b", "a", "tie"):
        result = runner.invoke(cli.app, ["arena", "vote", "a cat", "local:demo", DEV, winner])
        assert result.exit_code == 0, result.output
    result = runner.invoke(cli.app, ["arena", "ratings", "--rounds", "20"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "local:demo" in line or DEV in line]
    assert "local:demo" in lines[0]  # the more-often winner ranks first
    bad = runner.invoke(cli.app, ["arena", "vote", "a cat", DEV, DEV, "a"])
    assert bad.exit_code == 2


def test_emulator_prints_env_and_stops_by_itself():
    result = runner.invoke(cli.app, ["emulator", "--port", "0", "--duration", "0.3"])
    assert result.exit_code == 0, result.output
    assert "export REPLICATE_BASE_URL=http://127.0.0.1:" in result.output


# -- every error is one line with its documented exit code ------------------------------------

def _one_line_error(result, code, *needles):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], result.output
    return lines[0]


@pytest.mark.parametrize(("args", "needle"), [
    (["--hires", "0.5"], "--hires"),
    (["--hires", "8"], "--hires"),
    (["--hires", "2", "--denoise", "2"], "--denoise"),
    (["--denoise", "2"], "--denoise"),
    (["--denoise", "0.5"], "--hires or --init-image"),
    (["--budget", "-1"], "--budget"),
    (["--max-cost", "-0.5"], "--max-cost"),
    (["--elo-source", "mine"], "elo_source"),
    (["--steps", "many"], "--steps"),
    (["--width", "513"], "width"),
])
def test_generate_option_errors_are_one_line_exit_2(paint, tmp_path, args, needle):
    result = runner.invoke(cli.app, ["generate", "a cat", *args, "-o", str(tmp_path)])
    _one_line_error(result, 2, needle)
    assert not paint.calls


def test_missing_argument_is_one_line_exit_2():
    assert "prompt" in _one_line_error(runner.invoke(cli.app, ["generate"]), 2).lower()
    _one_line_error(runner.invoke(cli.app, ["generate", "x", "--no-such-flag"]), 2, "--no-such-flag")


def test_hires_and_denoise_reach_the_request(paint, tmp_path):
    paint_hires = paint.models()[0].capabilities.hires_fix
    result = runner.invoke(cli.app, ["generate", "a cat", "--hires", "2", "--denoise", "0.4", "-o", str(tmp_path)])
    if paint_hires:
        assert result.exit_code == 0, result.output
        assert paint.calls[0].hires.scale == 2 and paint.calls[0].hires.denoising_strength == 0.4
    else:  # the flat painter has no hires fix: the router says so, on one line, exit 1
        _one_line_error(result, 1, "hires")


def test_unwritable_output_folder_is_refused_before_paying(paint, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_error(runner.invoke(cli.app, ["generate", "a cat", "-o", str(blocker / "sub")]), 2, "--out")
    _one_line_error(runner.invoke(cli.app, ["generate", "a cat", "-o", str(tmp_path / "a\ud800b")]), 2, "--out")
    assert not paint.calls


def test_a_folder_name_with_an_undecodable_byte_works_and_prints_escaped(paint, tmp_path):
    result = runner.invoke(cli.app, ["generate", "a cat --seed 3", "-o", str(tmp_path / "a\udcffb")])
    assert result.exit_code == 0, result.output
    assert "a\\udcffb" in result.output and (tmp_path / "a\udcffb" / "image-3.png").is_file()


def test_repeat_with_a_seed_varies_it(paint, tmp_path):
    result = runner.invoke(cli.app, ["generate", "a cat --repeat 3 --seed 10", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [c.seed for c in paint.calls] == [10, 11, 12]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image-10.png", "image-11.png", "image-12.png"]
    paint.calls.clear()
    result = runner.invoke(cli.app, ["generate", "a cat --repeat 2", "--seed", "10", "--batch-size", "2",
                                     "-o", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert [c.seed for c in paint.calls] == [10, 12]  # 10, 11 then 12, 13: no image made twice


def test_expand_midjourney_varies_a_fixed_seed_per_repeat_only():
    from imagegen import GenerateRequest

    jobs = GenerateRequest.expand_midjourney("a {red, blue} bird --repeat 2 --seed 10")
    assert [(j.prompt, j.seed) for j in jobs] == [("a red bird", 10), ("a red bird", 11),
                                                  ("a blue bird", 10), ("a blue bird", 11)]
    assert [j.seed for j in GenerateRequest.expand_midjourney("a --r 2 --seed 4294967295")] == [4294967295, 0]
    assert [j.seed for j in GenerateRequest.expand_midjourney("a --r 2")] == [None, None]


def test_lora_names_holding_colons_are_kept_whole(paint, tmp_path):
    paint.lora = True
    result = runner.invoke(cli.app, ["generate", "x", "--lora", "https://h/l.safetensors", "--lora", "a:b:0.5",
                                     "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert [(lr.name, lr.weight) for lr in paint.calls[0].loras] == [("https://h/l.safetensors", 1.0), ("a:b", 0.5)]


# -- routing options and JSON output ------------------------------------------------------------

def test_routing_options_reach_the_policy(paint, monkeypatch):
    seen = {}
    real = cli.make_policy

    def spy(strategy=None, **constraints):
        policy = real(strategy, **constraints)
        seen["policy"] = policy
        return policy

    monkeypatch.setattr(cli, "make_policy", spy)
    result = runner.invoke(cli.app, ["route", "a cat", "--max-cost", "0.01", "--min-elo", "900", "--local-only",
                                     "--elo-source", "blend", "--strategy", "quality"])
    policy = seen["policy"]
    assert (policy.max_cost_per_image, policy.min_elo, policy.local_only, policy.elo_source, policy.strategy) == (
        0.01, 900, True, "blend", "quality")
    assert result.exit_code == 1 and "no model" in result.output.lower()  # paint is neither local nor rated


def test_max_cost_excludes_dearer_models(paint):
    assert runner.invoke(cli.app, ["route", "a cat", "--max-cost", "0.01"]).exit_code == 0
    result = runner.invoke(cli.app, ["route", "a cat", "--max-cost", "0.001"])
    _one_line_error(result, 1, "paint:flat")


def test_route_json(paint):
    import json

    result = runner.invoke(cli.app, ["route", "a cat", "--json"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["chosen"] == "paint:flat"
    assert decision["candidates"][0]["model"] == "paint:flat"
    assert decision["candidates"][0]["cost_usd"] == pytest.approx(0.002)


def test_models_json(paint):
    import json

    result = runner.invoke(cli.app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    cards = json.loads(result.output)
    assert [c["id"] for c in cards] == ["paint:flat"] and cards[0]["price"]["per_image"] == 0.002


def test_info_json(tmp_path):
    import json

    path = GeneratedImage.from_pil(Image.new("RGB", (64, 64)), infotext=INFOTEXT).save(tmp_path / "a.png")
    result = runner.invoke(cli.app, ["info", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["infotext"] == INFOTEXT and data["parameters"]["Seed"] == "42"
    assert data["request"]["seed"] == 42 and data["request"]["negative_prompt"] == "blurry"


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"])
def test_info_on_a_non_image_is_one_line_exit_2(tmp_path, content):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    _one_line_error(runner.invoke(cli.app, ["info", str(path)]), 2, "x.png")
    _one_line_error(runner.invoke(cli.app, ["info", str(path), "--json"]), 2)


def test_piped_tables_never_fold_model_ids(monkeypatch):
    # the module-level console is built for a pipe when stdout is not a terminal (as here)
    import importlib

    from imagegen import cli_support

    importlib.reload(cli_support)
    fresh = importlib.reload(cli)
    try:
        assert not fresh.console.is_terminal and fresh.console.width >= 10_000
        result = runner.invoke(fresh.app, ["models"])
        assert result.exit_code == 0, result.output
        assert any(DEV in line for line in result.output.splitlines())
    finally:
        importlib.reload(cli_support)
        importlib.reload(cli)


# -- arena and emulator errors --------------------------------------------------------------------

def test_arena_vote_with_a_misspelt_model_names_the_close_match():
    line = _one_line_error(runner.invoke(cli.app, ["arena", "vote", "a fox", "local:demo",
                                                   "replicate:black-forest-labs/flux-dve", "a"]), 2, "MODEL_B")
    assert DEV in line and "did you mean" in line
    _one_line_error(runner.invoke(cli.app, ["arena", "vote", "a fox", "local:sd15", DEV, "a"]), 2, "local:sd15")


def test_arena_vote_takes_a_short_name_and_records_the_card_id():
    result = runner.invoke(cli.app, ["arena", "vote", "a fox", "local:demo", "flux-dev", "flux-dev"])
    assert result.exit_code == 0, result.output
    assert f"local:demo vs {DEV} -> b" in result.output


@pytest.mark.parametrize(("args", "needle"), [(["--port", "70000"], "--port"), (["--port", "-1"], "--port"),
                                              (["--processing-time", "-1"], "--processing-time"),
                                              (["--duration", "-2"], "--duration")])
def test_emulator_bad_options_are_one_line_exit_2(args, needle):
    _one_line_error(runner.invoke(cli.app, ["emulator", *args, "--duration", "0.1"] if "--duration" not in args
                                  else ["emulator", *args]), 2, needle)


def test_emulator_on_a_busy_port_is_one_line():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _one_line_error(runner.invoke(cli.app, ["emulator", "--port", str(port), "--duration", "0.1"]), 2)
    assert str(port) in line and "--port" in line


def test_emulator_banner_names_the_account_and_takes_another():
    result = runner.invoke(cli.app, ["emulator", "--port", "0", "--duration", "0.1", "--username", "me"])
    assert result.exit_code == 0, result.output
    assert "account 'me'" in result.output and "me/<name>" in result.output


# -- the budget is a per-request constraint: route to a model that fits rather than refuse -------

@pytest.fixture
def cheap_and_dear(monkeypatch):
    from imagegen.catalog import Elo

    from .test_client import PaintProvider

    class Rated(PaintProvider):
        def __init__(self, name, price, elo):
            super().__init__(name, price)
            self.elo = elo

        def models(self):
            return [card.model_copy(update={"elo": Elo(value=self.elo, source="test", date="2026-01-01")})
                    for card in super().models()]

    cheap, dear = Rated("cheap", 0.003, 900), Rated("dear", 0.04, 1100)

    def make_client(strategy=None, budget=None, **constraints):
        return ImageGen(providers=[cheap, dear], budget_usd=budget, policy=cli.make_policy(strategy, **constraints))

    monkeypatch.setattr(cli, "make_client", make_client)
    return cheap, dear


def test_budget_routes_balanced_to_a_model_that_fits(cheap_and_dear, tmp_path):
    cheap, dear = cheap_and_dear
    assert "chose dear:flat" in runner.invoke(cli.app, ["route", "a fox", "--strategy", "quality"]).output
    result = runner.invoke(cli.app, ["generate", "a fox", "--budget", "0.01", "--strategy", "balanced",
                                     "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert cheap.calls and not dear.calls and "cheap:flat" in result.output
    routed = runner.invoke(cli.app, ["route", "a fox", "--budget", "0.01", "--strategy", "quality", "--json"])
    import json

    decision = json.loads(routed.output)
    assert decision["chosen"] == "cheap:flat"
    assert [e["model"] for e in decision["excluded"]] == ["dear:flat"] and "budget" in decision["excluded"][0]["reason"]


def test_budget_below_every_model_is_refused_before_paying(cheap_and_dear, tmp_path):
    cheap, dear = cheap_and_dear
    line = _one_line_error(runner.invoke(cli.app, ["generate", "a fox", "--budget", "0.001", "-o", str(tmp_path)]),
                           1, "budget", "cheap:flat")
    assert "$0.0030" in line and not cheap.calls and not dear.calls
