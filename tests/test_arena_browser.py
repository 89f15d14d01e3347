"""The arena page in a real browser: Playwright driving headless Chromium against
`create_arena_app` served by uvicorn on loopback, with the built-in demo model (`local:demo`)
and FakeReplicate's flux-pro as the two models, so everything runs offline.

Skipped cleanly when Playwright or a Chromium binary is missing, or when
IMAGEGEN_BROWSER_TESTS=0. The browser is Debian's ``chromium`` (``apt-get install chromium``;
another binary via IMAGEGEN_CHROMIUM). IMAGEGEN_UPDATE_SCREENSHOTS=1 rewrites the screenshots
in docs/ (otherwise they go to a temporary folder, so a test run never dirties the tree).
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

if os.environ.get("IMAGEGEN_BROWSER_TESTS", "1").strip().lower() in ("0", "false", "no", "off"):
    pytest.skip("browser tests disabled by IMAGEGEN_BROWSER_TESTS=0", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright for the browser tests")
pytest.importorskip("uvicorn")
pytest.importorskip("starlette")

CHROMIUM = next((p for p in (os.environ.get("IMAGEGEN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and Path(p).exists()), None)
if CHROMIUM is None:
    pytest.skip("no Chromium binary (apt-get install chromium, or set IMAGEGEN_CHROMIUM)", allow_module_level=True)

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
MODELS = ["local:demo", "replicate:black-forest-labs/flux-pro"]  # flux-pro: a shipped Elo to show
DOCS = Path(__file__).resolve().parent.parent / "docs"
SLOW = 90_000  # ms: the first demo image loads torch and the weights


class Served:
    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("arena server did not start")
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from imagegen import ImageGen
    from imagegen.arena import create_arena_app
    from imagegen.testing import FakeReplicate

    home = tmp_path_factory.mktemp("arena_home")
    with FakeReplicate(processing_time_s=1.5) as fake:
        gen = ImageGen(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url, home=home)
        app = create_arena_app(gen, models=MODELS, session_budget_usd=1.00, rounds=50)
        served = Served(app)
        try:
            yield served.url, home
        finally:
            served.stop()
            gen.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 860})
    page = context.new_page()
    page.set_default_timeout(SLOW)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def shot(page, name, tmp_path):
    folder = DOCS if os.environ.get("IMAGEGEN_UPDATE_SCREENSHOTS") == "1" else tmp_path
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000


def ratings_json(page, url):
    return {r["model"]: r for r in page.request.get(url + "/ratings.json").json()["ratings"]}


def start_comparison(page, url, prompt):
    page.goto(url + "/")
    page.fill("#prompt", prompt)
    submit(page)


def submit(page):
    with page.expect_navigation():
        page.click("#generate")
    if "/c/" not in page.url:
        pytest.fail("the comparison did not start: " + page.inner_text("main")[:500])


def both_images(page):
    page.wait_for_function("() => document.querySelectorAll('#pair img.result').length == 2 && "
                           "[...document.querySelectorAll('#pair img.result')].every(i => i.complete && i.naturalWidth > 0)")
    page.wait_for_selector("#vote-left:not([disabled])")


def test_compare_vote_by_click_and_by_key_and_the_ratings_change(site, page, tmp_path):
    url, home = site
    before = ratings_json(page, url)
    start_comparison(page, url, "a red circle on a blue background --seed 11")
    # the cloud side takes 1.5 s: progress shows and the vote waits for both images
    page.wait_for_selector("#pair progress")
    assert page.is_disabled("#vote-left")
    both_images(page)
    assert page.locator(".hidden-name").count() == 2  # blind until the vote
    assert "seed 11" in page.inner_text(".prompt")
    shot(page, "arena-compare.png", tmp_path)

    page.click("#vote-left")
    page.wait_for_selector("#voted")
    names = page.locator("[data-model]").evaluate_all("els => els.map(e => e.dataset.model)")
    assert sorted(names) == sorted(MODELS)
    left = names[0]
    after_click = ratings_json(page, url)
    assert after_click[left]["wins"] == before.get(left, {"wins": 0})["wins"] + 1
    assert after_click[left]["bt"] > after_click[names[1]]["bt"]

    # the next comparison straight from the result page, voted with the keyboard
    page.fill("#prompt", "a green square")
    submit(page)
    both_images(page)
    page.keyboard.press("2")
    page.wait_for_selector("#voted")
    assert "Right is better" in page.inner_text("#voted")
    right = page.locator("[data-model]").evaluate_all("els => els.map(e => e.dataset.model)")[1]
    after_key = ratings_json(page, url)
    assert after_key[right]["wins"] == after_click[right]["wins"] + 1
    assert after_key[right]["bt"] != after_click[right]["bt"]

    page.goto(url + "/ratings")
    for model in MODELS:
        row = page.locator(f'tr[data-model="{model}"]')
        assert row.locator("td.games").inner_text() == str(after_key[model]["games"])
    assert page.locator("#ratings-plot circle").count() >= 4
    assert "too few votes" in page.inner_text("#ratings-table")
    assert 'elo_source="shipped"' in page.inner_text("#router-line")
    shot(page, "arena-ratings.png", tmp_path)


def test_the_image_is_in_the_gallery_with_its_infotext(site, page, tmp_path):
    url, home = site
    start_comparison(page, url, "a yellow sun over a hill --seed 23")
    both_images(page)
    comparison = page.url
    page.goto(url + "/gallery")
    assert page.locator("article.blind").count() == 2  # names wait for the vote
    page.goto(comparison)
    both_images(page)
    page.keyboard.press("3")
    page.wait_for_selector("#voted")
    page.goto(url + "/gallery")
    item = page.locator("article.item").filter(has=page.locator(".model", has_text="local:demo")).filter(
        has_text="a yellow sun over a hill").first
    item.locator("summary", has_text="infotext").click()
    infotext = item.locator("pre.infotext").inner_text()
    assert infotext.startswith("a yellow sun over a hill") and "Seed: 23" in infotext and "Model: demo" in infotext
    assert "seed 23" in item.inner_text()
    item.locator("button.copy").click()
    page.wait_for_function("() => [...document.querySelectorAll('button.copy')].some(b => b.textContent == 'Copied')")
    request = json.loads(item.locator("pre.request").text_content())
    assert request["prompt"] == "a yellow sun over a hill" and request["seed"] == 23
    assert request["model"] == "local:demo"
    shot(page, "arena-gallery.png", tmp_path)

    count = page.locator("article.item").count()
    item.locator("button", has_text="Re-run").click()  # on the other model, the same seed
    page.wait_for_url("**/c/*")
    page.wait_for_selector('#pair[data-finished="true"] img.result')
    assert page.locator('[data-model="replicate:black-forest-labs/flux-pro"]').count() == 1
    page.goto(url + "/gallery")
    assert page.locator("article.item").count() == count + 1
    newest = page.locator("article.item").first
    assert "flux-pro" in newest.inner_text() and "seed 23" in newest.inner_text()


def test_a_script_prompt_shows_as_text(site, page):
    url, home = site
    prompt = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> a cat'
    start_comparison(page, url, prompt)
    both_images(page)
    assert page.inner_text("#shown-prompt") == prompt
    assert page.evaluate("() => window.__xss") is None
    page.goto(url + "/gallery")
    assert page.locator("article.item .prompt").first.inner_text() == prompt
    assert page.evaluate("() => window.__xss") is None
    assert page.dialogs == []


class _EvilPage(http.server.BaseHTTPRequestHandler):
    target = ""

    def do_GET(self):  # noqa: N802 - http.server's name
        body = (f'<form id="f" method="post" action="{self.target}/compare">'
                '<input name="prompt" value="spend your budget"><input name="left" value="auto">'
                '<input name="right" value="auto"><input name="csrf" value="guessed"></form>'
                '<script>document.getElementById("f").submit()</script>').encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_posts_without_the_pages_token_are_refused(site, page):
    url, home = site
    from imagegen.arena import Arena

    votes = len(Arena.at_home(home).votes())
    page.goto(url + "/")  # the browser now holds a session cookie
    # a form on this page, its token removed
    page.evaluate("() => document.querySelector('#compare-form input[name=csrf]').remove()")
    page.fill("#prompt", "no token")
    page.click("#generate")
    assert "CSRF token" in page.inner_text("main")
    # another site posting to the arena (cross-origin form, a guessed token)
    _EvilPage.target = url
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EvilPage)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        response = None
        with page.expect_response(lambda r: r.url.endswith("/compare")) as info:
            page.goto(f"http://localhost:{evil.server_address[1]}/")
        response = info.value
        assert response.status == 403
    finally:
        evil.shutdown()
        evil.server_close()
    assert len(Arena.at_home(home).votes()) == votes
    assert "spend your budget" not in page.request.get(url + "/gallery").text()
