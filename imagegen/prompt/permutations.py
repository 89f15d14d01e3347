"""Midjourney permutation prompts: `a {red, blue} bird` expands into one prompt per option.

Groups nest, several groups form a Cartesian product, and `\\,` `\\{` `\\}` `\\\\` are literal
characters. The number of jobs is counted before anything is expanded, so a prompt that
would explode is refused cheaply.
"""

from __future__ import annotations

import re
from itertools import product

from ..errors import PromptSyntaxError

MAX_JOBS = 40  # Midjourney's documented cap per permutation prompt

_ESCAPABLE = ",{}\\"

# A parsed template is a list whose items are literal strings or groups; a group is a list
# of options and each option is itself a template.
Template = list


def _parse(text: str) -> Template:
    root: Template = []
    stack: list[tuple[list[Template], int]] = []  # (options of an open group, its column)
    current = root
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n and text[i + 1] in _ESCAPABLE:
            if text[i + 1] == ",":  # `pastel \, yellow` reads "pastel, yellow", as documented
                while literal and literal[-1] == " ":
                    literal.pop()
            literal.append(text[i + 1])
            i += 2
            continue
        if ch == "{":
            if literal:
                current.append("".join(literal))
                literal = []
            options: list[Template] = [[]]
            current.append(options)
            stack.append((options, i + 1))
            current = options[0]
        elif ch == "," and stack:
            if literal:
                current.append("".join(literal))
                literal = []
            options = stack[-1][0]
            options.append([])
            current = options[-1]
        elif ch == "}":
            if not stack:
                raise PromptSyntaxError(
                    "unmatched '}' (write \\} for a literal brace)", column=i + 1, token="}"
                )
            if literal:
                current.append("".join(literal))
                literal = []
            stack.pop()
            current = _innermost(root, stack)
        else:
            literal.append(ch)
        i += 1
    if stack:
        column = stack[-1][1]
        raise PromptSyntaxError(
            "'{' is never closed: expected '}' to end the permutation group", column=column, token="{"
        )
    if literal:
        current.append("".join(literal))
    return root


def _innermost(root: Template, stack: list[tuple[list[Template], int]]) -> Template:
    """The template being filled after a group closes: the last option of the enclosing group."""
    return stack[-1][0][-1] if stack else root


def _count(template: Template) -> int:
    total = 1
    for item in template:
        if isinstance(item, list):
            total *= sum(_count(option) for option in item)
            if total > 10 * MAX_JOBS:  # stop early: the exact size no longer matters
                return total
    return total


def _expand(template: Template) -> list[str]:
    pieces: list[list[str]] = []
    for item in template:
        if isinstance(item, str):
            pieces.append([item])
        else:
            pieces.append([_tidy_option(text) for option in item for text in _expand(option)])
    return ["".join(choice) for choice in product(*pieces)]


def _tidy_option(text: str) -> str:
    # Spaces around the separating commas collapse: `{red, green}` gives "red" and "green".
    return text.strip()


def has_permutations(text: str) -> bool:
    return "{" in text or "}" in text or "\\" in text


def count_permutations(text: str) -> int:
    return _count(_parse(text))


def expand_permutations(text: str, max_jobs: int = MAX_JOBS) -> list[str]:
    """Every prompt the permutation groups of ``text`` describe, in Midjourney's order."""
    if not has_permutations(text):
        return [text]
    template = _parse(text)
    count = _count(template)
    if count > max_jobs:
        shown = str(count) if count <= 10 * max_jobs else f"more than {10 * max_jobs}"
        raise PromptSyntaxError(
            f"the permutations make {shown} jobs; at most {max_jobs} are allowed",
            column=text.find("{") + 1 or None,
            token="{",
        )
    return _expand(template)


def escape_permutation_text(text: str) -> str:
    """Text that expands to itself: braces escaped, and backslashes that would start an escape."""
    return _NEEDS_ESCAPE.sub(r"\\\1", text)


_NEEDS_ESCAPE = re.compile(r"([{}]|\\(?=[,{}\\]))")
