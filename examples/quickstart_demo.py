"""The offline quick start: the built-in demo model, no GPU, token or download.

    python examples/quickstart_demo.py
"""

from imagegen import GenerateRequest, ImageGen, read_infotext

with ImageGen() as gen:
    # With nothing configured the router picks the built-in demo model and says so in warnings.
    request = GenerateRequest(prompt="a yellow star on a purple background", seed=3, batch_size=2,
                              sampler="Euler a", steps=20, cfg_scale=7)
    result = gen.generate(request)
    for path in result.save("out/demo", stem="star"):
        print(f"saved {path}")
    print(f"model {result.model}, seeds {[i.seed for i in result.images]}, {result.latency_s:.1f}s")
    for warning in result.warnings:
        print("warning:", warning)

    # The PNG carries A1111 infotext; reading it back rebuilds the request.
    text = read_infotext(f"out/demo/star-{result.images[0].seed}.png")
    print(text)
    again = GenerateRequest.from_infotext(text)
    print("rebuilt:", again.prompt, again.seed, again.sampler, again.steps)
