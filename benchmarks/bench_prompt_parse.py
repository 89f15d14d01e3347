"""How many typical Midjourney-style prompts `parse_midjourney` reads per second.

Goal: 20,000 prompts per CPU second on one core. Run: `python benchmarks/bench_prompt_parse.py [seconds]`.
Also reports A1111 attention parsing and infotext parsing for comparison (no goal).
"""

from __future__ import annotations

import sys
import time

from imagegen.prompt.a1111 import parse_prompt_attention
from imagegen.prompt.infotext import parse_infotext
from imagegen.prompt.midjourney import parse_midjourney

GOAL_PER_SECOND = 20_000

# What users type: a sentence or two, a handful of parameters, sometimes weights or image URLs.
TYPICAL_PROMPTS = [
    "a white cat sitting on a windowsill, golden hour light --ar 9:16 --no text --seed 7",
    "portrait of an elderly fisherman, weathered skin, overcast harbor light --ar 4:5 --v 6.1 --s 250",
    "cyberpunk night market:: neon signage::1.5 rain::-0.5 --ar 21:9 --c 20 --v 6",
    "seamless pattern of watercolor koi and lotus leaves --tile --v 6.1 --s 250 --no text, border, signature",
    "https://example.com/ref1.png brutalist library interior at golden hour --iw 1.5 --ar 16:9 --style raw",
    "kawaii cat café menu illustration --niji 5 --style cute --ar 3:4 --seed 123456 --stop 80 --q .5",
    "isometric cozy bookstore diorama --sref 762351716 --sv 4 --p --s 300 --exp 25 --draft --v 7",
    "a photo of a red fox in fresh snow, telephoto, shallow depth of field",
    "hero leaping across rooftops --cref https://example.com/hero.png --cw 40 --niji 6",
    "surreal desert with floating doors --weird 750 --chaos 60 --fast --v 6",
]

INFOTEXT = (
    "... <lora:fubuki:1> <lora:space_hopper:1>\nNegative prompt: bad fingers\n"
    "Steps: 20, Sampler: DPM++ 2M SDE, Schedule type: Karras, CFG scale: 7, Seed: 2245042501, Size: 512x768, "
    "Model hash: d4c1719023, Model: animekawa_v10, Denoising strength: 0.6, Hires upscale: 2, Hires steps: 10, "
    'Hires upscaler: R-ESRGAN 4x+ Anime6B, Lora hashes: "fubuki: ce30cae7c555, space_hopper: f4112c058273"'
)
A1111_PROMPT = "masterpiece, (best quality:1.2), a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))) BREAK night"


def rate(function, inputs: list[str], seconds: float) -> float:
    """Calls per CPU second of ``function`` over ``inputs``, best of several rounds.

    CPU time (not wall time) so that other processes sharing the cores do not skew it.
    """
    for text in inputs:  # warm up (and fail fast on a bad input)
        function(text)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.process_time()
        count = 0
        while count < 5000:
            for text in inputs:
                function(text)
            count += len(inputs)
        elapsed = time.process_time() - start
        if elapsed > 0:
            best = max(best, count / elapsed)
    return best


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    mj = rate(parse_midjourney, TYPICAL_PROMPTS, seconds)
    print(f"parse_midjourney: {mj:,.0f} prompts/s  ({mj / GOAL_PER_SECOND:.2f}x the goal of {GOAL_PER_SECOND:,}/s)")
    attention = rate(parse_prompt_attention, [A1111_PROMPT], seconds / 3)
    print(f"parse_prompt_attention: {attention:,.0f} prompts/s")
    info = rate(parse_infotext, [INFOTEXT], seconds / 3)
    print(f"parse_infotext: {info:,.0f} texts/s")


if __name__ == "__main__":
    main()
