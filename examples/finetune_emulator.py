"""A cloud LoRA fine-tune from a folder of photos to a generated image, against the offline
emulator. With a real REPLICATE_API_TOKEN the same calls train on Replicate (and cost money).

    python examples/finetune_emulator.py
"""

import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from imagegen import FineTuneRequest, ImageGen
from imagegen.testing import FakeReplicate

work = Path(tempfile.mkdtemp(prefix="imagegen-finetune-"))
photos = work / "photos"
photos.mkdir()
for i in range(12):  # stand-in photos: a subject ("TOK") in different poses
    image = Image.new("RGB", (512, 512), (200, 220, 240))
    ImageDraw.Draw(image).ellipse((100 + i * 10, 120, 300 + i * 10, 380), fill=(180, 60, 40))
    image.save(photos / f"photo_{i:02d}.png")
    (photos / f"photo_{i:02d}.txt").write_text(f"a photo of TOK, pose {i}")

with FakeReplicate(training_time_s=0.5) as fake:
    gen = ImageGen(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url, home=work / "home")
    job = gen.finetune(FineTuneRequest(images=photos, trigger_word="TOK", destination="fake-user/tok-lora",
                                       steps=500))
    print(f"started {job.id} on {job.trainer}: {job.status}, estimated ${job.cost_usd:.2f}")
    # Status and progress (step, loss, ETA, read from the trainer's logs) as they change.
    job.wait(timeout=60, poll_interval=0.1, progress=lambda j: print(f"  {j.status} {j.progress}"))
    print(f"finished: {job.status}; new model {job.model}; LoRA kept at {job.lora_path}")

    # The trained version is a model like any other, for generate() and the router.
    result = gen.generate("a photo of TOK on a mountain --seed 11", model=job.model)
    print("saved", result.save(work / "out")[0], f"cost ${result.cost_usd:.4f}")
    print("jobs in the store:", [j.id for j in gen.jobs()])
