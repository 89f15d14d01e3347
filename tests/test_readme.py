"""Everything README.md shows runs as written: each ```python block (in order, one namespace,
like a reader pasting them into one session) and each `imagegen` line of each ```bash block,
against the FakeReplicate emulator and the built-in demo model, offline.

What cannot run here is listed below with the reason, never skipped silently: a README block
or command that this file does not know how to run fails the test.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

README = Path(__file__).resolve().parent.parent / "README.md"

# Commands (by prefix) that are not run here, and why.
NOT_RUN = {
    "pip install": "installs packages; CI runs the quick start's two commands itself",
    "python -m pytest": "the test suite itself (CI runs it)",
    "ruff check": "the linter (CI runs it)",
    "ray start": "starts a Ray cluster node, a service; tests/test_ray.py runs the pool on a local Ray",
    "imagegen arena serve": "a web server that runs until stopped (tests/test_arena_web.py serves the page)",
    "imagegen serve": "a web server that runs until stopped (tests/test_serve_*.py serve it on a free port)",
}
# Python blocks (by a line they hold) that are not run here, and why.
NOT_RUN_PYTHON = {
    'base="local:sd15", local={': "trains on a real SD 1.5 checkpoint the test machine does not have "
                                  "(tests/test_local_train_jobs.py runs the same calls on a tiny pipeline)",
    'ImageGen(ray_address="local"': "starts a Ray instance, too heavy per test run "
                                    "(tests/test_ray.py and test_ray_map.py run the pool once per session)",
}
# Commands run with other arguments, and why.
ADAPTED = {
    "imagegen emulator --port 8787": ("imagegen emulator --port 0 --duration 0.3",
                                      "it serves until stopped; a free port never collides on CI"),
}
# Block languages that are not code to run, and why.
NOT_CODE = {
    "toml": "a pyproject.toml excerpt for a third-party package, not runnable",
}
# What the README leaves to the reader, provided here.
READER_FILES = "./photos: the reader's own photos (10 images with captions)"
EMULATOR_ACCOUNT = "me"  # the README's `me/my-lora`: `me` is the reader's Replicate account


def _blocks() -> list[tuple[str, int, str]]:
    """(language, first line number, text) for each fenced block."""
    blocks, lines = [], README.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if opening:
            start, body = i + 1, []
            i += 1
            while not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((opening.group(1), start + 1, "\n".join(body)))
        i += 1
    return blocks


def _commands(text: str) -> list[str]:
    """Shell commands of a bash block: comments dropped, `&&` chains split."""
    commands = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        command: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if command:
                    commands.append(shlex.join(command))
                command = []
            else:
                command.append(word)
    return commands


BLOCKS = _blocks()


def _section_lines(title: str) -> range:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return range(start + 1, end + 1)


# The quick start is a fresh machine: no Replicate token, so the demo model answers.
FRESH_MACHINE = _section_lines("## Quick start")
ITEMS = [(f"L{line}-{lang or 'text'}", lang, line, text) for lang, line, text in BLOCKS]


def _photos(folder: Path) -> None:
    folder.mkdir()
    for i in range(10):
        Image.new("RGB", (512, 512), (i * 20, 90, 160 - i * 10)).save(folder / f"p{i}.png")
        (folder / f"p{i}.txt").write_text(f"a photo of TOK number {i}")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Run every block once, in README order; each test then reports its own block."""
    import imagegen.cli as cli
    from imagegen.testing import FakeReplicate

    work = tmp_path_factory.mktemp("reader")
    _photos(work / "photos")
    results: dict[str, Any] = {}
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp, FakeReplicate(username=EMULATOR_ACCOUNT,
                                                           training_time_s=0.2) as fake:
        mp.chdir(work)
        for name, value in fake.env().items():
            mp.setenv(name, value)
        mp.setenv("IMAGEGEN_HOME", str(work / "home"))
        mp.delenv("IMAGEGEN_MODELS_DIR", raising=False)
        mp.setattr(cli.console, "width", 300)
        namespace: dict[str, Any] = {"__name__": "readme"}
        for key, lang, line, text in ITEMS:
            with pytest.MonkeyPatch.context() as fresh:
                if line in FRESH_MACHINE:
                    fresh.delenv("REPLICATE_API_TOKEN")
                    fresh.delenv("REPLICATE_BASE_URL")
                results[key] = _run_block(lang, text, namespace, runner, cli)
    results["_folder"] = work
    return results


def _run_block(lang, text, namespace, runner, cli) -> list[str]:
    """Problems found running one block (empty: it ran as written)."""
    if lang in NOT_CODE:
        return []
    if lang == "python":
        if any(marker in text for marker in NOT_RUN_PYTHON):
            return []  # listed above with its reason
        return _run_python(text, namespace)
    if lang == "bash":
        problems = []
        for command in _commands(text):
            problems += _run_command(command, runner, cli)
        return problems
    return [f"a ```{lang or '(no language)'} block: say in NOT_CODE why it is not run, or make it python/bash"]


def _run_python(text, namespace) -> list[str]:
    before = set(namespace)
    try:
        exec(compile(text, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
        for name in sorted(set(namespace) - before):
            if name.startswith("test_") and callable(namespace[name]):
                # A test the README shows the reader: run it, with the reader's code stood in
                # by one real call through the SDK.
                from imagegen import ImageGen

                def make_thumbnails(prompt: str) -> None:
                    with ImageGen() as gen:
                        gen.generate(prompt, model="replicate:black-forest-labs/flux-schnell")

                namespace[name].__globals__["make_thumbnails"] = make_thumbnails
                with pytest.MonkeyPatch.context() as own:  # the reader's test sets its own env
                    namespace[name](own)
    except Exception as exc:  # noqa: BLE001 - reported as the block's failure
        return [f"{type(exc).__name__}: {exc}"]
    return []


COMMAND_LIMIT_S = 120


class _TookTooLong(BaseException):
    pass


def _within(seconds: int, call):
    """``call()``, or None when it runs past ``seconds`` (a README command that serves forever
    must fail this test, not hang the suite)."""
    import signal

    def stop(_signum, _frame):
        raise _TookTooLong

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        return call()
    except _TookTooLong:
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _run_command(command: str, runner, cli) -> list[str]:
    if command.startswith(tuple(NOT_RUN)):
        return []  # listed above with its reason
    for written, (adapted, _why) in ADAPTED.items():
        if command == written:
            command = adapted
    words = shlex.split(command)
    if words[0] != "imagegen":
        return [f"{command!r}: not an imagegen command; add it to NOT_RUN with the reason"]
    result = _within(COMMAND_LIMIT_S, lambda: runner.invoke(cli.app, words[1:]))
    if result is None:
        return [f"{command!r} did not finish in {COMMAND_LIMIT_S} s: a server? list it in NOT_RUN or ADAPTED"]
    if result.exit_code != 0 or "Traceback" in result.output:
        return [f"{command!r} exited {result.exit_code}: {result.output.strip()[-600:]}"]
    return []


@pytest.mark.parametrize(("key", "lang", "line", "text"), ITEMS, ids=[item[0] for item in ITEMS])
def test_readme_block_runs_as_written(outcomes, key, lang, line, text):
    assert outcomes[key] == [], f"README.md line {line}: " + "\n".join(outcomes[key])


def test_every_skip_is_used_and_explained():
    commands = [c for lang, _, text in BLOCKS if lang == "bash" for c in _commands(text)]
    for prefix, why in NOT_RUN.items():
        assert why and any(c.startswith(prefix) for c in commands), f"NOT_RUN {prefix!r} matches nothing"
    for written, (_adapted, why) in ADAPTED.items():
        assert why and written in commands, f"ADAPTED {written!r} is no longer in the README"
    assert all(NOT_CODE.values()) and {lang for lang, _, _ in BLOCKS} >= set(NOT_CODE)
    python = [text for lang, _, text in BLOCKS if lang == "python"]
    for marker, why in NOT_RUN_PYTHON.items():
        assert why and sum(marker in text for text in python) == 1, f"NOT_RUN_PYTHON {marker!r}"
    assert len(python) > len(NOT_RUN_PYTHON)  # most of the README's code does run


def test_quick_start_is_two_commands_and_its_image_is_made(outcomes):
    quick = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", quick, re.S)
    assert len(blocks) == 1
    lines = [line for line in blocks[0].splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) == 2, lines
    # `outcomes` ran the first command's imagegen part in the reader's folder: the file it says
    written = re.search(r"writes `([^`]+)`", quick).group(1)
    from imagegen import read_infotext

    text = read_infotext(outcomes["_folder"] / written)
    assert "Seed: 1" in text and "Model: demo" in text, text  # the demo model, as the README says


def test_a_command_that_never_ends_fails_instead_of_hanging():
    import time

    assert _within(1, lambda: time.sleep(5)) is None
    assert _within(5, lambda: "done") == "done"
