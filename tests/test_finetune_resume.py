"""A process killed while waiting on a fine-tune; a second process resumes it to success.

The emulator runs in this test process; the two processes reach it, and share the job store,
through ``REPLICATE_BASE_URL``, ``REPLICATE_API_TOKEN`` and ``IMAGEGEN_HOME`` only.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from PIL import Image

from imagegen import ImageGen
from imagegen.testing import FakeReplicate

START_AND_WAIT = textwrap.dedent("""
    import sys
    from imagegen import FineTuneRequest, ImageGen
    from imagegen.providers.replicate import ReplicateProvider
    gen = ImageGen(providers=[ReplicateProvider()])
    job = gen.finetune(FineTuneRequest(images=sys.argv[1], destination="fake-user/killed-lora"))
    print(job.id, flush=True)
    job.wait(poll_interval=0.05)
    print("finished", flush=True)
""")

RESUME = textwrap.dedent("""
    import sys
    from imagegen import ImageGen
    from imagegen.providers.replicate import ReplicateProvider
    gen = ImageGen(providers=[ReplicateProvider()])
    job = gen.job(sys.argv[1]).wait(timeout=30, poll_interval=0.05)
    print(job.status, job.version, job.lora_path, flush=True)
""")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (512, 512), (i * 20, 10, 90)).save(folder / f"p{i}.jpg")
    return folder


def run_python(code, *args, env):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_waiter_is_resumed_by_another_process_with_exactly_one_training(tmp_path, photos):
    with FakeReplicate(training_time_s=2.0) as fake:
        env = {**os.environ, **fake.env(), "IMAGEGEN_HOME": str(tmp_path / "home")}
        first = run_python(START_AND_WAIT, photos, env=env)
        try:
            job_id = first.stdout.readline().strip()
            assert job_id.startswith("ft-"), first.stderr.read()
            deadline = time.monotonic() + 20
            while not any(t.status == "processing" for t in fake.trainings.values()):
                assert time.monotonic() < deadline, "the training never started"
                time.sleep(0.02)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL

        stored = ImageGen(providers=[], home=tmp_path / "home").job(job_id)
        assert stored.status in ("starting", "processing") and stored.training_id in fake.trainings

        second = run_python(RESUME, job_id, env=env)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        status, version, lora_path = out.split()
        assert status == "succeeded"
        assert version == f"fake-user/killed-lora:{fake.models['fake-user/killed-lora'].latest_version.id}"
        assert os.path.getsize(lora_path) > 0
        assert fake.training_create_count == 1 and len(fake.files) == 1

        seen_later = ImageGen(providers=[], home=tmp_path / "home").job(job_id)
        assert seen_later.status == "succeeded" and seen_later.version == version
