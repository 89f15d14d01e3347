"""Server-rendered HTML for the arena page. Every value from outside (prompts, infotexts, model
ids, errors) goes through `h`; nothing is inserted unescaped except markup built here.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

from ._ratings import ENOUGH_VOTES


def h(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def money(value: float | None) -> str:
    if value is None:
        return "?"
    cents = round(value, 2)
    return f"${value:.2f}" if abs(value - cents) < 5e-7 else f"${value:.4f}"  # sub-cent prices in full


def layout(*, title: str, base: str, active: str, body: str, refresh: bool = False) -> str:
    nav = "".join(
        f'<a href="{h(base)}{path}"{" aria-current=page" if name == active else ""}>{label}</a>'
        for name, path, label in (("compare", "/", "Compare"), ("ratings", "/ratings", "Ratings"),
                                  ("gallery", "/gallery", "Gallery")))
    noscript = '<noscript><meta http-equiv="refresh" content="2"></noscript>' if refresh else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{h(title)} · imagegen arena</title>
<link rel="stylesheet" href="{h(base)}/static/arena.css">{noscript}
<script src="{h(base)}/static/arena.js" defer></script>
</head><body>
<header><strong>imagegen arena</strong><nav>{nav}</nav></header>
<main>
{body}
</main>
</body></html>"""


def model_select(name: str, models: Sequence[str], selected: str = "auto", *, auto: bool = True,
                 label: str = "") -> str:
    options = ['<option value="auto"' + (" selected" if selected == "auto" else "") +
               '>auto: the pair the ratings are least sure about</option>'] if auto else []
    options += [f'<option value="{h(m)}"{" selected" if m == selected else ""}>{h(m)}</option>' for m in models]
    return f'<label>{h(label)} <select name="{h(name)}" id="{h(name)}">{"".join(options)}</select></label>'


def budget_line(spent: float, budget: float | None) -> str:
    if budget is None:
        return f'<p class="budget" id="budget">This session: spent {money(spent)} (no session budget).</p>'
    left = max(0.0, budget - spent)
    return (f'<p class="budget" id="budget">Session budget: spent {money(spent)} of {money(budget)}, '
            f'{money(left)} left. Auto picks only pairs whose estimate fits.</p>')


def compare_form(*, base: str, csrf: str, models: Sequence[str], prompt: str = "", left: str = "auto",
                 right: str = "auto", error: str | None = None) -> str:
    err = f'<p class="error" role="alert">{h(error)}</p>' if error else ""
    return f"""<form method="post" action="{h(base)}/compare" class="compare-form" id="compare-form">
<input type="hidden" name="csrf" value="{h(csrf)}">
<label for="prompt">Prompt <small>(Midjourney parameters allowed: --ar 3:2 --no text --seed 7)</small></label>
<textarea name="prompt" id="prompt" rows="2" required>{h(prompt)}</textarea>
<div class="row">{model_select("left", models, left, label="Left")}{model_select("right", models, right, label="Right")}
<button type="submit" id="generate">Generate both</button></div>
{err}
</form>"""


def compare_page(*, base: str, csrf: str, models: Sequence[str], spent: float, budget: float | None,
                 router_line: str, prompt: str = "", left: str = "auto", right: str = "auto",
                 error: str | None = None) -> str:
    body = f"""<h1>Compare two models blind</h1>
<p>Both images use the same seed; the models' names are shown after you vote.
Vote with the buttons or the keys 1 (left), 2 (right), 3 (tie), 4 (both bad).</p>
{compare_form(base=base, csrf=csrf, models=models, prompt=prompt, left=left, right=right, error=error)}
{budget_line(spent, budget)}
<p class="router">{router_line}</p>"""
    return layout(title="Compare", base=base, active="compare", body=body)


VERDICT_LABELS = {"left": "Left is better", "right": "Right is better", "tie": "Tie", "both_bad": "Both bad"}


def comparison_page(*, base: str, csrf: str, cid: str, prompt: str, seed: int | None, slots: list[dict[str, Any]],
                    voted: str | None, revealed: bool, votable: bool, kind: str, models: Sequence[str],
                    spent: float, budget: float | None, finished: bool, message: str | None = None) -> str:
    panels = []
    for slot in slots:
        side = slot["side"]
        image = (f'<img class="result" src="{h(slot["image_url"])}" alt="{h(side)} image">'
                 if slot.get("image_url") else '<div class="placeholder">generating…</div>')
        progress = "" if slot.get("image_url") else (
            f'<progress max="{h(slot.get("total") or 1)}" value="{h(slot.get("step") or 0)}"></progress>')
        name = (f'<p class="model" data-model="{h(slot["model"])}">{h(slot["model"])} · '
                f'{money(slot.get("cost_usd"))}</p>' if revealed else '<p class="model hidden-name">model hidden until you vote</p>')
        error = f'<p class="error">failed: {h(slot["error"])}</p>' if slot.get("error") else ""
        panels.append(f"""<section class="panel" data-slot="{h(side)}">
<h2>{h(side.capitalize())}</h2><div class="frame">{image}</div>{progress}
<p class="stage">{h(slot.get("label", ""))}</p>{error}{name}</section>""")
    vote = ""
    if kind == "compare" and voted is None:
        buttons = "".join(
            f'<form method="post" action="{h(base)}/c/{h(cid)}/vote" class="vote">'
            f'<input type="hidden" name="csrf" value="{h(csrf)}"><input type="hidden" name="verdict" value="{v}">'
            f'<button type="submit" data-key="{i}" id="vote-{v}"{"" if votable else " disabled"}>'
            f'<kbd>{i}</kbd> {VERDICT_LABELS[v]}</button></form>'
            for i, v in enumerate(("left", "right", "tie", "both_bad"), 1))
        vote = f'<div class="votes" id="votes">{buttons}</div>'
    elif voted is not None:
        vote = f'<p class="voted" id="voted">You voted: <strong>{h(VERDICT_LABELS.get(voted, voted))}</strong>.</p>'
    note = f'<p class="notice">{h(message)}</p>' if message else ""
    again = ""
    if finished and (voted is not None or kind != "compare"):
        again = "<h2>Next</h2>" + compare_form(base=base, csrf=csrf, models=models, prompt=prompt)
    body = f"""<h1>{"Blind comparison" if kind == "compare" else "Re-run"}</h1>
<p class="prompt">Prompt: <q id="shown-prompt">{h(prompt)}</q> · seed {h(seed)}</p>
<div class="pair" id="pair" data-status-url="{h(base)}/c/{h(cid)}/status" data-finished="{str(finished).lower()}">
{"".join(panels)}</div>
{vote}{note}{again}
{budget_line(spent, budget)}"""
    return layout(title="Comparison", base=base, active="compare", body=body, refresh=not finished)


def _fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def ratings_page(*, base: str, rows: list[dict[str, Any]], matrix_models: list[str],
                 matrix: dict[tuple[str, str], tuple[float, int]], total_votes: int, router_line: str) -> str:
    if not rows:
        table = '<p class="notice" id="no-votes">No votes yet: compare two models to start your ratings.</p>'
    else:
        head = ("<tr><th>model</th><th>shipped Elo</th><th>your Bradley–Terry [95%]</th><th>your Elo [95%]</th>"
                "<th>votes</th><th>W-L-T (both bad)</th><th>effective votes</th><th>blend weight</th>"
                "<th>router uses now</th></tr>")
        body_rows = []
        for r in rows:
            few = (f' <span class="few" title="fewer than {ENOUGH_VOTES} effective votes">too few votes '
                   f'({_fmt(r["effective"], 1)} of {ENOUGH_VOTES})</span>') if r["effective"] < ENOUGH_VOTES else ""
            body_rows.append(
                f'<tr data-model="{h(r["model"])}"><td>{h(r["model"])}{few}</td><td>{_fmt(r["shipped"])}'
                f'{" <small>" + h(r["shipped_source"]) + "</small>" if r.get("shipped_source") else ""}</td>'
                f'<td class="bt">{_fmt(r["bt"])} [{_fmt(r["bt_low"])}–{_fmt(r["bt_high"])}]</td>'
                f'<td class="elo">{_fmt(r["elo"])} [{_fmt(r["elo_low"])}–{_fmt(r["elo_high"])}]</td>'
                f'<td class="games">{r["games"]}</td><td>{r["wins"]}-{r["losses"]}-{r["ties"]} ({r["both_bad"]})</td>'
                f'<td>{_fmt(r["effective"], 1)}</td><td>{_fmt(r["weight"], 2)}</td>'
                f'<td>{_fmt(r["router"])}{" <small>" + h(r["router_note"]) + "</small>" if r.get("router_note") else ""}</td></tr>')
        table = f'<table class="ratings" id="ratings-table"><thead>{head}</thead><tbody>{"".join(body_rows)}</tbody></table>'
    plot = ratings_plot(rows) if rows else ""
    grid = win_matrix_table(matrix_models, matrix) if matrix_models else ""
    body = f"""<h1>Your ratings</h1>
<p>{total_votes} vote{"s" if total_votes != 1 else ""} in the store. Intervals are 95% bootstrap intervals.
A rating counts as enough from {ENOUGH_VOTES} effective votes: then the 95% interval of its gap to a
rated opponent is about ±100 Elo, narrow enough to tell a model that wins two times in three
(a 100-point gap) from an even one.
A vote between two very unequal models counts less than one (it says less).</p>
<p class="router" id="router-line">{router_line}</p>
{table}
{plot}
{grid}"""
    return layout(title="Ratings", base=base, active="ratings", body=body)


def ratings_plot(rows: list[dict[str, Any]]) -> str:
    """Inline SVG: per model, Bradley–Terry and Elo with their 95% intervals, and the shipped Elo."""
    values = [v for r in rows for v in (r["bt_low"], r["bt_high"], r["elo_low"], r["elo_high"], r["shipped"])
              if v is not None and math.isfinite(v)]
    low, high = min(values), max(values)
    if high - low < 50:
        low, high = (low + high) / 2 - 25, (low + high) / 2 + 25
    pad = (high - low) * 0.05
    low, high = low - pad, high + pad
    left, width, row_h = 260, 560, 34
    total_h = 40 + row_h * len(rows)

    def x(v: float) -> float:
        return left + (v - low) / (high - low) * width

    parts = [f'<svg class="plot" id="ratings-plot" role="img" aria-label="ratings with 95% intervals" '
             f'viewBox="0 0 {left + width + 20} {total_h + 20}" xmlns="http://www.w3.org/2000/svg">']
    step = _nice_step((high - low) / 6)
    tick = math.ceil(low / step) * step
    while tick <= high:
        parts.append(f'<line x1="{x(tick):.1f}" y1="20" x2="{x(tick):.1f}" y2="{total_h}" class="grid"/>'
                     f'<text x="{x(tick):.1f}" y="{total_h + 14}" text-anchor="middle" class="tick">{tick:.0f}</text>')
        tick += step
    for i, r in enumerate(rows):
        y = 40 + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end" class="label">{h(_short(r["model"]))}</text>')
        for key, dy, cls in (("bt", -6, "bt"), ("elo", 6, "elo")):
            v, lo, hi = r[key], r[key + "_low"], r[key + "_high"]
            if v is None:
                continue
            parts.append(f'<line x1="{x(lo):.1f}" y1="{y + dy}" x2="{x(hi):.1f}" y2="{y + dy}" class="ci {cls}"/>'
                         f'<circle cx="{x(v):.1f}" cy="{y + dy}" r="4" class="pt {cls}"><title>{h(r["model"])} '
                         f'{"Bradley–Terry" if key == "bt" else "Elo"} {v:.0f} [{lo:.0f}–{hi:.0f}]</title></circle>')
        if r["shipped"] is not None:
            sx = x(r["shipped"])
            parts.append(f'<path d="M{sx:.1f} {y - 7} l5 7 l-5 7 l-5 -7 z" class="shipped"><title>shipped Elo '
                         f'{r["shipped"]:.0f}</title></path>')
    parts.append(f'<g class="legend" transform="translate({left},8)"><circle cx="0" cy="0" r="4" class="pt bt"/>'
                 f'<text x="8" y="4">Bradley–Terry</text><circle cx="120" cy="0" r="4" class="pt elo"/>'
                 f'<text x="128" y="4">Elo (online)</text><path d="M230 -7 l5 7 l-5 7 l-5 -7 z" class="shipped"/>'
                 f'<text x="240" y="4">shipped Elo</text></g></svg>')
    return "<h2>Plot</h2>" + "".join(parts)


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(max(raw, 1e-9)))
    for m in (1, 2, 5, 10):
        if raw <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def _short(model: str, limit: int = 36) -> str:
    return model if len(model) <= limit else "…" + model[-(limit - 1):]


def win_matrix_table(models: list[str], matrix: dict[tuple[str, str], tuple[float, int]]) -> str:
    head = "".join(f"<th>{h(_short(m, 24))}</th>" for m in models)
    rows = []
    for a in models:
        cells = []
        for b in models:
            if a == b:
                cells.append('<td class="self">–</td>')
                continue
            score, games = matrix.get((a, b), (0.0, 0))
            cells.append(f'<td>{score:g}/{games} <small>({100 * score / games:.0f}%)</small></td>' if games
                         else '<td class="empty">·</td>')
        rows.append(f'<tr><th scope="row">{h(_short(a, 24))}</th>{"".join(cells)}</tr>')
    return (f'<h2>Win matrix</h2><p>Row model\'s score against the column model (ties count ½) / votes.</p>'
            f'<table class="matrix" id="win-matrix"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def gallery_page(*, base: str, csrf: str, images: list[Any], models: Sequence[str], page: int, pages: int,
                 total: int, blind: dict[str, str] | None = None) -> str:
    if not images:
        items = '<p class="notice" id="empty-gallery">No images yet. Generate some on the Compare page, or with ' \
                '<code>imagegen generate --record</code>.</p>'
    else:
        cards = []
        for image in images:
            if blind and image.id in blind:  # its comparison is still open: no name, cost or infotext yet
                cards.append(f"""<article class="item blind" id="img-{h(image.id)}" data-image-id="{h(image.id)}">
<a href="{h(base)}/c/{h(blind[image.id])}"><img src="{h(base)}/image/{h(image.id)}" alt="{h(image.prompt)}" loading="lazy"></a>
<div class="meta"><p class="prompt">{h(image.prompt)}</p>
<p class="hidden-name">model hidden until you <a href="{h(base)}/c/{h(blind[image.id])}">vote on its comparison</a></p>
</div></article>""")
                continue
            request_json = json.dumps(image.request, indent=2, sort_keys=True)
            others = [m for m in models if m != image.model]
            rerun = (f'<form method="post" action="{h(base)}/gallery/{h(image.id)}/rerun" class="rerun">'
                     f'<input type="hidden" name="csrf" value="{h(csrf)}">'
                     f'{model_select("model", others, others[0], auto=False, label="Re-run on")}'
                     f'<button type="submit">Re-run</button></form>') if others else ""
            cards.append(f"""<article class="item" id="img-{h(image.id)}" data-image-id="{h(image.id)}">
<a href="{h(base)}/image/{h(image.id)}"><img src="{h(base)}/image/{h(image.id)}" alt="{h(image.prompt)}" loading="lazy"></a>
<div class="meta"><p class="prompt">{h(image.prompt)}</p>
<p><span class="model">{h(image.model)}</span> · {money(image.cost_usd)} · seed {h(image.seed)} · {h(image.width)}×{h(image.height)} · {h(image.source)}</p>
<details><summary>infotext</summary><pre class="infotext">{h(image.infotext)}</pre></details>
<details><summary>request</summary><pre class="request" id="req-{h(image.id)}">{h(request_json)}</pre></details>
<button type="button" class="copy" data-copy-target="req-{h(image.id)}">Copy request</button>
{rerun}</div></article>""")
        items = '<div class="gallery" id="gallery">' + "".join(cards) + "</div>"
    nav = ""
    if pages > 1:
        prev = f'<a href="{h(base)}/gallery?page={page - 1}">← newer</a>' if page > 1 else ""
        nxt = f'<a href="{h(base)}/gallery?page={page + 1}">older →</a>' if page < pages else ""
        nav = f'<p class="pages">{prev} page {page} of {pages} {nxt}</p>'
    body = f"<h1>Gallery</h1><p>{total} image{'s' if total != 1 else ''}, newest first.</p>{items}{nav}"
    return layout(title="Gallery", base=base, active="gallery", body=body)


def error_page(*, base: str, status: int, message: str) -> str:
    return layout(title=f"Error {status}", base=base, active="",
                  body=f'<h1>Error {status}</h1><p class="error" role="alert">{h(message)}</p>')
