"""A table of Midjourney-style prompts: every parameter, alias and pitfall, valid and invalid."""

from __future__ import annotations

import pytest

from imagegen.errors import PromptSyntaxError
from imagegen.prompt.midjourney import (
    PromptPart,
    StyleRef,
    parse_midjourney,
    render_midjourney,
)

URL = "https://example.com/ref.png"

# (prompt, expected MidjourneyParams fields, expected (text, weight) parts or None to skip)
VALID = [
    # the ten examples of the grammar research notes (A.12) that parse as one job
    ("https://example.com/ref1.png https://example.com/ref2.jpg brutalist library interior at golden hour, "
     "volumetric light --iw 1.5 --ar 16:9 --v 6.1 --style raw --s 150",
     dict(image_weight=1.5, aspect="16:9", version="6.1", style="raw", stylize=150),
     [("brutalist library interior at golden hour, volumetric light", 1.0)]),
    ("cyberpunk night market:: neon signage::1.5 rain::-0.5 --ar 21:9 --c 20 --v 6",
     dict(aspect="21:9", chaos=20, version="6"),
     [("cyberpunk night market", 1.0), ("neon signage", 1.5), ("rain", -0.5)]),
    ("portrait of an elderly fisherman --oref https://example.com/fisherman.png --ow 250 --v 7 --ar 4:5 --q 2",
     dict(oref="https://example.com/fisherman.png", ow=250, version="7", aspect="4:5", quality=2.0), None),
    ("hero leaping across rooftops --cref https://example.com/hero.png --cw 40 "
     "--sref https://example.com/style.jpg --sw 300 --niji 6",
     dict(cref=("https://example.com/hero.png",), cw=40, sref=(StyleRef("https://example.com/style.jpg"),),
          sw=300, niji="6"), None),
    ("seamless pattern of watercolor koi --tile --v 6.1 --s 250 --no text, border, signature",
     dict(tile=True, version="6.1", stylize=250, negative=("text", "border", "signature")), None),
    ("isometric cozy bookstore diorama --sref 762351716 --sv 4 --p --s 300 --exp 25 --draft --v 7",
     dict(sref=(StyleRef("762351716"),), sv=4, personalize=(), stylize=300, exp=25, draft=True, version="7"),
     None),
    ("kawaii cat café menu illustration --niji 5 --style cute --ar 3:4 --seed 123456 --stop 80 --q .5",
     dict(niji="5", style="cute", aspect="3:4", seed=123456, stop=80, quality=0.5), None),
    ("surreal desert with floating doors --weird 750 --chaos 60 --sref random --repeat 4 --fast --v 6",
     dict(weird=750, chaos=60, sref=(StyleRef("random"),), repeat=4, speed="fast", version="6"), None),
    # aliases
    ("a cat --aspect 2:3", dict(aspect="2:3"), [("a cat", 1.0)]),
    ("a cat --chaos 5", dict(chaos=5), None),
    ("a cat --quality 1", dict(quality=1.0), None),
    ("a cat --r 3", dict(repeat=3), None),
    ("a cat --stylize 0", dict(stylize=0), None),
    ("a cat --version 5.2", dict(version="5.2"), None),
    ("a cat --personalize abc123", dict(personalize=("abc123",)), None),
    ("a cat --w 250", dict(weird=250), None),  # --w is weird, never width
    ("a cat --v 5.0", dict(version="5"), None),  # 5.0 and 5 are the same model
    ("a cat --v 6.0", dict(version="6"), None),
    # em dash as Apple keyboards write `--`
    ("a cat \u2014ar 9:16 \u2014no dogs", dict(aspect="9:16", negative=("dogs",)), None),
    # values and edges of ranges
    ("a cat --c 0 --s 1000 --weird 3000", dict(chaos=0, stylize=1000, weird=3000), None),
    ("a cat --seed 0", dict(seed=0), None),
    ("a cat --seed 4294967295", dict(seed=4294967295), None),
    ("a cat --stop 10", dict(stop=10), None),
    ("a cat --stop 100", dict(stop=100), None),
    ("a cat --ar 139:100", dict(aspect="139:100"), None),
    ("a cat --ar 14:1", dict(aspect="14:1"), None),
    ("a cat --ar 016:09", dict(aspect="16:9"), None),
    ("a cat --q .25 --v 5.2", dict(quality=0.25, version="5.2"), None),
    ("a cat --q 4 --v 7", dict(quality=4.0, version="7"), None),
    ("a cat --q 2 --v 6.1", dict(quality=2.0, version="6.1"), None),
    ("a cat --style raw --v 5.1", dict(style="raw", version="5.1"), None),
    ("a cat --raw --v 7", dict(style="raw", version="7"), None),
    ("a cat --style 4b --v 4", dict(style="4b", version="4"), None),
    ("a cat --style random-64", dict(style="random-64"), None),
    ("a cat --style expressive --niji 5", dict(style="expressive", niji="5"), None),
    ("a cat --niji", dict(niji="6"), None),  # bare --niji: the current niji model
    ("a cat --turbo", dict(speed="turbo"), None),
    ("a cat --relax", dict(speed="relax"), None),
    ("a cat --video --v 5.2", dict(video=True, version="5.2"), None),
    ("a cat --motion high --loop", dict(motion="high", loop=True), None),
    ("a cat --p", dict(personalize=()), None),
    ("a cat --p code1 code2", dict(personalize=("code1", "code2")), None),
    ("a cat --sref https://a.com/1.png::2 https://a.com/2.png::1 123::0.5",
     dict(sref=(StyleRef("https://a.com/1.png", 2.0), StyleRef("https://a.com/2.png", 1.0),
                StyleRef("123", 0.5))), None),
    ("a cat --sv 6 --sref 1", dict(sv=6, sref=(StyleRef("1"),)), None),
    ("a cat --cref https://a.com/1.png https://a.com/2.png --cw 0 --v 6",
     dict(cref=("https://a.com/1.png", "https://a.com/2.png"), cw=0, version="6"), None),
    ("a cat --no red  car,  ,blue", dict(negative=("red car", "blue")), None),
    ("a cat --tile --v 3", dict(tile=True, version="3"), None),
    ("a cat --ar 5:2 --v 3", dict(aspect="5:2", version="3"), None),
    # multi-prompts
    ("space ship", dict(), [("space ship", 1.0)]),
    ("space:: ship", dict(), [("space", 1.0), ("ship", 1.0)]),
    ("space::2 ship", dict(), [("space", 2.0), ("ship", 1.0)]),
    ("cheese::4 cake::2", dict(), [("cheese", 4.0), ("cake", 2.0)]),
    ("still life gouache painting:: fruit::-.5", dict(), [("still life gouache painting", 1.0), ("fruit", -0.5)]),
    ("a cat::", dict(), [("a cat", 1.0)]),
    ("a cat::0.5", dict(), [("a cat", 0.5)]),
    ("time 16:9 clock", dict(), [("time 16:9 clock", 1.0)]),  # a single colon is text
    ("a cat -- dog", dict(), [("a cat -- dog", 1.0)]),  # a lone dash pair is text
    ("well--known cat", dict(), [("well--known cat", 1.0)]),
    ("the end\u2014no more", dict(), [("the end\u2014no more", 1.0)]),  # an em dash in prose
    ('a sign that says "OPEN" --v 6', dict(version="6"), [('a sign that says "OPEN"', 1.0)]),
    # image prompts
    (f"{URL} a cat --iw 0.5", dict(image_weight=0.5), [("a cat", 1.0)]),
    (f"{URL} https://x.org/b.webp?size=large a cat --iw 3 --v 6",
     dict(image_weight=3.0, version="6"), [("a cat", 1.0)]),
    (f"{URL}", dict(), []),
    ("a cat https://example.com/not-an-image", dict(), [("a cat https://example.com/not-an-image", 1.0)]),
]

# (prompt, text the error must contain, column or None, offending token or None)
INVALID = [
    ("", "no text", 1, None),
    ("--ar 1:1", "no text", 1, None),
    ("a cat --ar", "needs a value", 7, "--ar"),
    ("a cat --ar 16:9 and a dog", "unexpected 'and'", 17, "and"),
    ("a cat --ar 1.5:1", "aspect ratio", 12, "1.5:1"),
    ("a cat --ar 0:1", "aspect ratio", 12, "0:1"),
    ("a cat --ar 15:1", "too elongated", 7, "--ar"),
    ("a cat --ar 3:1 --v 4", "too elongated", 7, "--ar"),
    ("a cat --c 101", "from 0 to 100", 11, "101"),
    ("a cat --c -1", "whole number", 11, "-1"),
    ("a cat --s 250.5", "whole number", 11, "250.5"),
    ("a cat --s 1001", "from 0 to 1000", 11, "1001"),
    ("a cat --seed 4294967296", "from 0 to 4294967295", 14, "4294967296"),
    ("a cat --stop 5", "from 10 to 100", 14, "5"),
    ("a cat --r 1", "from 2 to 40", 11, "1"),
    ("a cat --r 41", "from 2 to 40", 11, "41"),
    ("a cat --weird 3001", "from 0 to 3000", 15, "3001"),
    ("a cat --weird 2000 --v 5.2", "up to 1000", 7, "--weird"),
    ("a cat --w 10 --v 4", "does not work with --v 4", 7, "--w"),
    ("a cat --q 3", "use one of", 7, "--q"),
    ("a cat --q 2 --v 6", "use one of 0.25, 0.5, 1", 7, "--q"),
    ("a cat --q 4 --v 6.1", "use one of", 7, "--q"),
    ("a cat --q .25 --v 7", "use one of", 7, "--q"),
    ("a cat --q 4 --oref https://a.com/x.png", "--q 4 cannot be combined with --oref", 7, "--q"),
    ("a cat --v 8", "a version", 11, "8"),
    ("a cat --niji 3", "niji version", 14, "3"),
    ("a cat --v 6 --niji 6", "give only one", 13, "--niji"),
    ("a cat --cref https://a.com/x.png --v 7", "replaced it with --oref", 7, "--cref"),
    ("a cat --cref https://a.com/x.png --v 5.2", "does not work with --v 5.2", 7, "--cref"),
    ("a cat --cref not-a-url --v 6", "image URLs", 14, "not-a-url"),
    ("a cat --cw 50", "--cref, which is missing", 7, "--cw"),
    ("a cat --sw 50", "--sref, which is missing", 7, "--sw"),
    ("a cat --sv 2", "--sref, which is missing", 7, "--sv"),
    ("a cat --ow 50 --v 7", "--oref, which is missing", 7, "--ow"),
    ("a cat --sv 6 --sref 1 --v 6", "up to 4", 7, "--sv"),
    ("a cat --sref blue", "style codes", 14, "blue"),
    ("a cat --sref 1 --v 5.2", "does not work with --v 5.2", 7, "--sref"),
    ("a cat --oref https://a.com/x.png --v 6.1", "does not work with --v 6.1", 7, "--oref"),
    ("a cat --oref https://a.com/x.png --niji 6", "does not work with --niji 6", 7, "--oref"),
    ("a cat --oref https://a.com/x.png https://a.com/y.png", "takes one value", 34, "https://a.com/y.png"),
    ("a cat --draft --v 6.1", "does not work with --v 6.1", 7, "--draft"),
    ("a cat --exp 10 --v 6", "does not work with --v 6", 7, "--exp"),
    ("a cat --exp 101", "from 0 to 100", 13, "101"),
    ("a cat --style cute", "add --niji 5", 7, "--style"),
    ("a cat --style cute --niji 6", "add --niji 5", 7, "--style"),
    ("a cat --style 4a --v 5", "add --v 4", 7, "--style"),
    ("a cat --style raw --v 5", "does not work with --v 5", 7, "--style"),
    ("a cat --raw --v 4", "does not work with --v 4", 7, "--raw"),
    ("a cat --raw --style raw", "conflicts with --raw", 13, "--style"),
    ("a cat --tile yes", "takes no value", 14, "yes"),
    ("a cat --tile --v 4", "does not work with --v 4", 7, "--tile"),
    ("a cat --fast --relax", "conflicts with --fast", 14, "--relax"),
    ("a cat --r 3 --relax", "Fast or Turbo", 7, "--r"),
    ("a cat --s 10 --stylize 20", "conflicts with --s", 14, "--stylize"),
    ("a cat --ar 1:1 --ar 2:3", "repeats", 16, "--ar"),
    (f"{URL} a cat --iw 2.5 --v 5.2", "up to 2", 35, "--iw"),
    (f"{URL} --sref 1", "needs text", 29, "--sref"),
    ("a cat --no", "needs a value", 7, "--no"),
    ("a cat --no , ,", "things to leave out", 7, "--no"),
    ("a cat --motion medium", "one of low, high", 16, "medium"),
    ("a cat --p bad!code", "personalization codes", 11, "bad!code"),
    ("a cat --width 512", "use --ar", 7, "--width"),
    ("a cat --h 512", "use --ar", 7, "--h"),
    ("a cat --hd", "no longer supported", 7, "--hd"),
    ("a cat --height 512", "use --ar", 7, "--height"),
    ("a cat --upbeta", "Upscale", 7, "--upbeta"),
    ("a cat --upanime", "Upscale", 7, "--upanime"),
    ("a cat --vibe", "no longer supported", 7, "--vibe"),
    ("a cat --newclip", "no longer supported", 7, "--newclip"),
    ("a cat --nostretch", "no longer supported", 7, "--nostretch"),
    ("a cat --old", "no longer supported", 7, "--old"),
    ("a cat --test", "no longer supported", 7, "--test"),
    ("a cat --testp", "no longer supported", 7, "--testp"),
    ("a cat --uplight", "Upscale", 7, "--uplight"),
    ("a cat --sameseed 5", "use --seed", 7, "--sameseed"),
    ("a cat --hq", "use --q", 7, "--hq"),
    ("a cat --creative", "use --chaos", 7, "--creative"),
    ("a cat --arr 3:2", "did you mean --ar", 7, "--arr"),
    ("a cat --zzz", "unknown parameter --zzz", 7, "--zzz"),
    ("a cat--ar 3:2", "preceded by a space", 6, "--ar"),
    ("a cat --ar! 3:2", "parameter name", 7, "--ar!"),
    ("https://example.com/page a cat", "must end in", 1, "https://example.com/page"),
    ("::2 cat", "text before '::'", 1, "::2"),
    ("a:: ::2 b", "text before '::'", 5, "::2"),
    ("a::-1", "sum must be positive", 2, "::"),
    ("a::1 b::-1", "sum must be positive", 2, "::"),
    ("a {red, blue} bird", "use expand_midjourney", 3, "{"),
    ("a {red, blue bird", "never closed", 3, "{"),
    ("a red} bird", "unmatched '}'", 6, "}"),
]


def _fields(params, names):
    return {name: getattr(params, name) for name in names}


@pytest.mark.parametrize(("text", "expected", "parts"), VALID, ids=[row[0][:60] for row in VALID])
def test_valid_prompt_parses_into_typed_fields_and_renders_back(text, expected, parts):
    prompt = parse_midjourney(text)
    assert _fields(prompt.params, expected) == expected
    if parts is not None:
        assert prompt.parts == tuple(PromptPart(t, w) for t, w in parts)
    # Everything not mentioned stays at its default.
    untouched = {name for name in prompt.params.__dataclass_fields__ if name not in expected}
    defaults = type(prompt.params)()
    assert _fields(prompt.params, untouched) == _fields(defaults, untouched)
    assert parse_midjourney(render_midjourney(prompt)) == prompt


@pytest.mark.parametrize(("text", "message", "column", "token"), INVALID, ids=[row[0][:60] for row in INVALID])
def test_invalid_prompt_raises_prompt_syntax_error_saying_where_and_what(text, message, column, token):
    with pytest.raises(PromptSyntaxError) as caught:
        parse_midjourney(text)
    assert message in str(caught.value)
    assert caught.value.column == column
    assert caught.value.token == token


def test_table_has_at_least_sixty_prompts_covering_every_parameter():
    from imagegen.prompt.midjourney_params import BY_NAME, DEPRECATED

    assert len(VALID) + len(INVALID) >= 60
    written = set(" ".join(row[0] for row in VALID + INVALID).split())
    missing = [name for name in [*BY_NAME, *DEPRECATED] if f"--{name}" not in written]
    assert missing == []
