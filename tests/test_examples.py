"""Every example runs offline, start to finish, and says what it made."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.py"))


@pytest.fixture
def example_env(request, tmp_path, tmp_path_factory):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "IMAGEGEN_HOME": str(tmp_path / "home")}
    env.pop("REPLICATE_API_TOKEN", None)
    if request.node.callspec.id == "local_checkpoint_lora_hires":
        # A tiny random-weight checkpoint and LoRA in the A1111 folder layout stand in for real ones.
        from tests.local_fixtures import tiny_models

        models = tiny_models(tmp_path_factory)
        env.update(IMAGEGEN_MODELS_DIR=str(models.models_dir), CHECKPOINT="tiny", LORA=models.lora.stem,
                   SIZE="64", STEPS="4")
    return env


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_offline(path, tmp_path, example_env):
    env = example_env
    out = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert out.stdout.strip(), "an example must say what it did"
    if "saved" in out.stdout:
        saved = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("saved ")]
        assert all((tmp_path / p).is_file() or Path(p).is_file() for p in saved), saved
