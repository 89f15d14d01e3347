"""How far one request travels through the project: files touched and cross-file calls.

    python benchmarks/trace_request.py

Runs `gen.generate("a cat --ar 16:9")` on a Replicate model (against the emulator on loopback)
once with an explicit model and once routed, with a profiler hook on every thread, and counts
the project files whose code ran and the calls from one project file into another. The emulator
itself (imagegen/testing) is left out: it stands for the remote API. Also counts how often the
request was translated (`plan_request`) and how often `models()` ran (the client's and each
provider's). Routed figures grow with the catalog: each card is prepared once.
Measured before the prepare-once layout: explicit 24 files / 102 cross-file calls / 3
translations; routed 27 files / 191 calls / 8 translations, over 7 cards.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OWN = (str(ROOT / "imagegen"), str(ROOT / "providers"))
SKIP = str(ROOT / "imagegen" / "testing")


def _own(path: str) -> bool:
    return path.startswith(OWN) and not path.startswith(SKIP)


class Tracer:
    def __init__(self):
        self.files: set[str] = set()
        self.cross: Counter[tuple[str, str]] = Counter()
        self.functions: Counter[str] = Counter()

    def __call__(self, frame, event, arg):
        if event != "call":
            return
        callee = frame.f_code.co_filename
        if not _own(callee):
            return
        self.files.add(callee)
        self.functions[frame.f_code.co_name] += 1
        caller = frame.f_back
        while caller is not None and not _own(caller.f_code.co_filename):
            caller = caller.f_back  # through library frames (pydantic, asyncio) to our caller
        if caller is not None and caller.f_code.co_filename != callee:
            self.cross[(caller.f_code.co_filename, callee)] += 1

    def __enter__(self):
        threading.setprofile(self)
        sys.setprofile(self)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)
        threading.setprofile(None)


def main() -> None:
    os.environ.setdefault("IMAGEGEN_HOME", tempfile.mkdtemp())
    from imagegen import ImageGen
    from imagegen.testing import FakeReplicate

    with FakeReplicate(processing_time_s=0.0) as fake:
        os.environ["REPLICATE_API_TOKEN"], os.environ["REPLICATE_BASE_URL"] = fake.api_token, fake.base_url
        gen = ImageGen(providers=None)
        gen.generate("warm up --ar 16:9", model="replicate:black-forest-labs/flux-schnell")  # imports, TLS
        gen.generate("warm up --ar 16:9")
        print(f"{len(gen.models())} cards from {len(gen.providers)} providers ({', '.join(gen.providers)})")
        print(f"{'request':<10} {'files':>6} {'cross-file calls':>17} {'translations':>13} {'model listings':>15}")
        for label, model in (("explicit", "replicate:black-forest-labs/flux-schnell"), ("routed", None)):
            with Tracer() as tracer:
                gen.generate("a cat --ar 16:9", model=model)
            print(f"{label:<10} {len(tracer.files):>6} {sum(tracer.cross.values()):>17} "
                  f"{tracer.functions['plan_request']:>13} {tracer.functions['models']:>15}")
        gen.close()


if __name__ == "__main__":
    main()
