"""A1111 prompt editing `[from:to:when]` and alternation `[a|b]`, as per-step schedules.

`prompt_schedule(prompt, steps)` is the equivalent of A1111's
`get_learned_conditioning_prompt_schedules` for one prompt: a list of (end_step, text) that a
sampler applies step by step. A prompt that does not fit the grammar is used as-is for every
step, as in A1111.

Numbers follow lark's ``SIGNED_NUMBER`` as WebUI imports it: an optional sign and ASCII digits
only (``[a:-3]``, ``[a:b:+0.5]``; ``[a:b:５]`` is plain text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER = re.compile(r"\s*([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*\]")
_SPECIAL = "[]():|"


@dataclass
class _Scheduled:
    before: list | None  # None: `[to:when]` adds text after `when`
    after: list
    when: str
    step: int = 0


@dataclass
class _Alternate:
    options: list[list]


class _NoMatch(Exception):
    """The text at this position is not the construct being tried."""


class _Parser:
    def __init__(self, text: str):
        self.text = text

    def top(self) -> list:
        # At the top level stray brackets and colons are plain characters (A1111's `start` rule);
        # a stray `|` makes the whole prompt unparseable.
        nodes: list = []
        i = 0
        text = self.text
        while i < len(text):
            seq, i = self.sequence(i)
            nodes.extend(seq)
            if i >= len(text):
                break
            ch = text[i]
            if ch == "|":
                raise _NoMatch
            if ch in "([":
                try:
                    node, i = self.construct(i)
                    nodes.append(node)
                    continue
                except _NoMatch:
                    pass
            nodes.append(ch)
            i += 1
        return nodes

    def sequence(self, i: int) -> tuple[list, int]:
        """Plain text and nested constructs up to the next special character."""
        text = self.text
        nodes: list = []
        start = i
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                i += 2
                continue
            if ch in _SPECIAL:
                if ch in "([":
                    try:
                        node, end = self.construct(i)
                    except _NoMatch:
                        break
                    if i > start:
                        nodes.append(text[start:i])
                    nodes.append(node)
                    i = start = end
                    continue
                break
            i += 1
        if i > start:
            nodes.append(text[start:i])
        return nodes, i

    def construct(self, i: int) -> tuple[object, int]:
        text = self.text
        opener = text[i]
        first, j = self.sequence(i + 1)
        if j >= len(text):
            raise _NoMatch
        ch = text[j]
        if opener == "(":
            if ch == ")":
                return ["(", *first, ")"], j + 1
            if ch == ":":
                second, k = self.sequence(j + 1)
                if k < len(text) and text[k] == ")":
                    return ["(", *first, ":", *second, ")"], k + 1
            raise _NoMatch
        if ch == "]":
            return ["[", *first, "]"], j + 1
        if ch == "|":
            options = [first]
            while j < len(text) and text[j] == "|":
                option, j = self.sequence(j + 1)
                options.append(option)
            if j < len(text) and text[j] == "]":
                return _Alternate(options), j + 1
            raise _NoMatch
        if ch == ":":
            number = _NUMBER.match(text, j + 1)
            if number:
                return _Scheduled(None, first, number.group(1)), number.end()
            second, k = self.sequence(j + 1)
            if k < len(text) and text[k] == ":":
                number = _NUMBER.match(text, k + 1)
                if number:
                    return _Scheduled(first, second, number.group(1)), number.end()
        raise _NoMatch


def _walk(nodes: list, scheduled: list[_Scheduled], alternates: list[_Alternate]) -> None:
    for node in nodes:
        if isinstance(node, _Scheduled):
            scheduled.append(node)
            _walk(node.before or [], scheduled, alternates)
            _walk(node.after, scheduled, alternates)
        elif isinstance(node, _Alternate):
            alternates.append(node)
            for option in node.options:
                _walk(option, scheduled, alternates)
        elif isinstance(node, list):
            _walk(node, scheduled, alternates)


def _text_at(nodes: list, step: int) -> str:
    out: list[str] = []
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Scheduled):
            chosen = (node.before or []) if step <= node.step else node.after
            out.append(_text_at(chosen, step))
        elif isinstance(node, _Alternate):
            out.append(_text_at(node.options[(step - 1) % len(node.options)], step))
        else:
            out.append(_text_at(node, step))
    return "".join(out)


def prompt_schedule(
    prompt: str, steps: int, hires_steps: int | None = None, use_old_scheduling: bool = False
) -> list[tuple[int, str]]:
    """(end_step, text) pairs: `text` is the prompt for every step up to and including `end_step`.

    >>> prompt_schedule("a [b:3]", 10)
    [(3, 'a '), (10, 'a b')]
    """
    if hires_steps is None or use_old_scheduling:
        int_offset, float_offset, total = 0, 0.0, steps
    else:
        int_offset, float_offset, total = steps, 1.0, hires_steps
    if not _lexable(prompt):
        return [(total, prompt)]
    try:
        nodes = _Parser(prompt).top()
    except (_NoMatch, RecursionError):
        return [(total, prompt)]
    scheduled: list[_Scheduled] = []
    alternates: list[_Alternate] = []
    _walk(nodes, scheduled, alternates)
    ends = {total}
    for node in scheduled:
        value = float(node.when)
        if use_old_scheduling:
            value = value * total if value < 1 else value
        elif "." in node.when:
            value = (value - float_offset) * total
        else:
            value = value - int_offset
        node.step = int(min(total, value))
        if node.step >= 1:
            ends.add(node.step)
    if alternates:
        ends.update(range(1, total + 1))
    return [(end, _text_at(nodes, end)) for end in sorted(ends)]


def _lexable(text: str) -> bool:
    """Whether every backslash escapes a character on its line. WebUI's `plain` token is
    ``\\.`` for an escape, and ``.`` matches no newline, so a backslash at the very end or before
    a newline fails the whole parse (and WebUI then uses the prompt as written)."""
    index = text.find("\\")
    while index != -1:
        if index + 1 == len(text) or text[index + 1] == "\n":
            return False
        index = text.find("\\", index + 2)
    return True


def prompt_at_step(schedule: list[tuple[int, str]], step: int) -> str:
    """The text a schedule uses at ``step`` (1-based)."""
    for end, text in schedule:
        if step <= end:
            return text
    return schedule[-1][1]

