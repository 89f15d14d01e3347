"""`imagegen finetune …`: the job id at once, status while waiting, one line per failure, exit codes."""

import pytest
from PIL import Image
from typer.testing import CliRunner

import imagegen.cli as cli
from imagegen.finetune import JobDatabase
from imagegen.testing import FakeReplicate

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(cli.console, "width", 300)


@pytest.fixture
def fake_env(monkeypatch):
    with FakeReplicate(training_time_s=0.6) as fake:
        for name, value in fake.env().items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (512, 512), (i * 20, 90, 30)).save(folder / f"p{i}.png")
    return folder


def test_create_wait_prints_the_job_id_first_then_status_while_waiting(fake_env, photos):
    result = runner.invoke(cli.app, ["finetune", "create", str(photos), "-d", "fake-user/cli-wait",
                                     "--steps", "10", "--wait"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ft-") and "(estimate)" in lines[0]  # before the training ends
    job_id = lines[0].split()[0]
    progress = result.stderr.splitlines()
    assert progress and all(line.startswith(job_id) for line in progress)
    assert any("step 5/10" in line for line in progress)  # read from the trainer's logs
    assert "None" not in result.output and "0/0" not in result.output
    assert "succeeded" in lines[-2] or "succeeded" in result.stdout
    assert any(line.startswith("model: replicate:fake-user/cli-wait:") for line in lines)


def test_wait_prints_the_job_at_once(fake_env, photos):
    created = runner.invoke(cli.app, ["finetune", "create", str(photos), "-d", "fake-user/cli-w2", "--steps", "10"])
    job_id = created.stdout.split()[0]
    result = runner.invoke(cli.app, ["finetune", "wait", job_id, "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith(f"waiting for {job_id}")
    assert "succeeded" in result.stdout


def test_unreachable_api_is_one_line_and_the_job_is_failed_not_preparing(monkeypatch, photos):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("REPLICATE_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_whatever")
    result = runner.invoke(cli.app, ["finetune", "create", str(photos), "-d", "fake-user/x"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert "cannot reach the Replicate API" in result.stderr and f"127.0.0.1:{port}" in result.stderr
    listing = runner.invoke(cli.app, ["finetune", "list"])
    assert listing.exit_code == 0 and "failed" in listing.output and "$0.00" in listing.output
    assert "preparing" not in listing.output and "estimate" not in listing.output
    (record,) = JobDatabase(cli.Settings().home).all()
    job_id = record.id
    assert job_id in result.stderr
    for command in ("status", "cancel", "wait"):
        again = runner.invoke(cli.app, ["finetune", command, job_id])
        assert again.exit_code == 1, (command, again.output)
        assert "failed" in again.output and "Traceback" not in again.output


def test_a_wrong_token_fails_the_job_and_wait_does_not_resend(fake_env, photos, monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", "wrong")
    result = runner.invoke(cli.app, ["finetune", "create", str(photos), "-d", "fake-user/x"])
    assert result.exit_code == 1 and "401" in result.stderr
    (record,) = JobDatabase(cli.Settings().home).all()
    sent = len(fake_env.requests)
    waited = runner.invoke(cli.app, ["finetune", "wait", record.id, "--timeout", "5"])
    assert waited.exit_code == 1 and len(fake_env.requests) == sent


def test_a_corrupt_store_is_one_line_naming_the_file(fake_env):
    home = cli.Settings().home
    home.mkdir(parents=True, exist_ok=True)
    (home / "jobs.sqlite3").write_bytes(b"garbage" * 100)
    for args in (["finetune", "list"], ["finetune", "status", "ft-1"], ["finetune", "wait", "ft-1"]):
        result = runner.invoke(cli.app, args)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and str(home / "jobs.sqlite3") in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
