"""The durable job store: claims across processes, compare-and-set steps, trained-weights extraction."""

import io
import subprocess
import sys
import tarfile
import time

import pytest
from imagegen.providers.replicate._trainings import extract_lora

from imagegen.finetune import JobDatabase, JobRecord, check_safetensors, finetune_cards


def new_record(job_id="ft-1", status="preparing", **fields):
    now = time.time()
    return JobRecord(id=job_id, created_at=now, updated_at=now, status=status, destination="o/n",
                     trainer="ostris/flux-dev-lora-trainer:" + "b" * 64, request_json="{}", **fields)


def test_reading_an_empty_home_creates_nothing(tmp_path):
    db = JobDatabase(tmp_path / "home")
    assert db.all() == [] and db.get("ft-1") is None and finetune_cards(tmp_path / "home") == []
    assert not (tmp_path / "home").exists()


def test_get_finds_a_job_by_its_id_or_its_training_id(tmp_path):
    db = JobDatabase(tmp_path)
    db.insert(new_record(training_id="tr123"))
    assert db.get("ft-1").id == db.get("tr123").id == "ft-1"


def test_compare_and_set_update_refuses_when_the_status_moved_on(tmp_path):
    db = JobDatabase(tmp_path)
    db.insert(new_record(status="canceled"))
    assert db.update("ft-1", expect_status=("uploaded",), status="creating") is None
    assert db.get("ft-1").status == "canceled"
    assert db.update("ft-1", expect_status=("canceled",), error="x").error == "x"


def test_a_live_process_claim_blocks_others_and_a_dead_ones_is_taken_over(tmp_path):
    db = JobDatabase(tmp_path)
    db.insert(new_record())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        db.update("ft-1", claim_pid=sleeper.pid)
        assert db.claim("ft-1", ("preparing",)) is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert db.claim("ft-1", ("preparing",)).claim_pid is not None  # the holder is gone
    assert db.claim("ft-1", ("uploaded",)) is None  # wrong status
    db.release("ft-1")
    assert db.get("ft-1").claim_pid is None


def tar_with(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def safetensors_bytes():
    header = b'{"__metadata__":{"format":"pt"}}'
    return len(header).to_bytes(8, "little") + header


def test_extract_lora_takes_only_the_lora_member(tmp_path):
    tar = tmp_path / "trained_model.tar"
    tar.write_bytes(tar_with({"../../escape.txt": b"x", "output/flux_train_replicate/config.yaml": b"a: 1",
                              "output/flux_train_replicate/lora.safetensors": safetensors_bytes()}))
    out = extract_lora(tar, tmp_path / "lora.safetensors")
    assert out.read_bytes() == safetensors_bytes()
    assert not (tmp_path.parent / "escape.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora.safetensors", "trained_model.tar"]


def test_extract_lora_refuses_archives_without_a_valid_lora(tmp_path):
    tar = tmp_path / "t.tar"
    tar.write_bytes(tar_with({"output/config.yaml": b"a: 1"}))
    with pytest.raises(ValueError, match="holds no lora.safetensors"):
        extract_lora(tar, tmp_path / "lora.safetensors")
    tar.write_bytes(tar_with({"lora.safetensors": b"\xff" * 16}))
    with pytest.raises(ValueError, match="not a safetensors file"):
        extract_lora(tar, tmp_path / "lora.safetensors")
    assert not (tmp_path / "lora.safetensors").exists()
    with pytest.raises(ValueError):
        bad = tmp_path / "x.safetensors"
        bad.write_bytes((4).to_bytes(8, "little") + b"[1] ")
        check_safetensors(bad)
