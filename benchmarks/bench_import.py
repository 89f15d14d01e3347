"""`import imagegen` time against `import replicate`, measured in the same run (goal: at most
150 ms, and below `import replicate`).

    python benchmarks/bench_import.py [--runs 15]

Each figure is the best of N fresh interpreters, measured inside the child (time from just
before the import to just after it), so interpreter start-up is not counted. Prints both and
their ratio (below 1: imagegen imports faster), and the heavy modules `import imagegen` loaded
(there should be none).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time
started = time.perf_counter()
import {module}
took = time.perf_counter() - started
heavy = [m for m in ("torch", "diffusers", "transformers", "ray", "fastapi", "starlette", "httpx", "replicate")
         if m in sys.modules]
print(json.dumps({{"ms": took * 1000, "heavy": heavy}}))
"""


def best_of(module: str, runs: int) -> tuple[float, list[str]]:
    best, heavy = float("inf"), []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", CHILD.format(module=module)], capture_output=True,
                             text=True, check=True).stdout
        row = json.loads(out)
        if row["ms"] < best:
            best, heavy = row["ms"], row["heavy"]
    return best, heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    ours, loaded = best_of("imagegen", args.runs)
    theirs, _ = best_of("replicate", args.runs)
    print(f"import imagegen   {ours:7.1f} ms  (goal 150 ms: {ours / 150:.2f}x)  loaded: {loaded or 'nothing heavy'}")
    print(f"import replicate  {theirs:7.1f} ms")
    print(f"ratio imagegen / replicate: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
