"""Midjourney-style prompts: parameters, weights and permutations become typed requests.

    python examples/midjourney_prompts.py
"""

from imagegen import GenerateRequest, PromptSyntaxError
from imagegen.prompt import to_flux, to_midjourney

# One prompt with parameters: --ar, --no, --seed and --s become request fields.
request = GenerateRequest.from_midjourney("a white cat, 3d animation --ar 9:16 --no text, watermark --seed 7 --s 250")
print("aspect_ratio:", request.aspect_ratio, "| negative:", request.negative_prompt, "| seed:", request.seed)
print("stylize:", request.midjourney.stylize if request.midjourney else None)
print("rendered back:", to_midjourney(request))

# What a Flux model gets, and what it cannot honour.
text, warnings = to_flux(request)
print("flux prompt:", text)
for warning in warnings:
    print("  flux warning:", warning)

# Permutations and --repeat expand into separate jobs (at most 40).
for job in GenerateRequest.expand_midjourney("a {red, blue} bird on a {branch, wire} --ar 1:1 --repeat 2"):
    print("job:", job.prompt, job.aspect_ratio)

# Mistakes are reported with the column and the token.
try:
    GenerateRequest.from_midjourney("a cat --ar sixteen:nine")
except PromptSyntaxError as exc:
    print("error:", exc)
