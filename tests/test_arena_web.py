"""The arena page's handlers, without a browser: blind comparisons on one seed, votes into the
same SQLite store the CLI reads, ratings, gallery, re-runs, the session budget, and the safety
rules (CSRF on every POST, Host allow-list, escaping, images by id only)."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("multipart")

from starlette.applications import Starlette  # noqa: E402
from starlette.routing import Mount  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from imagegen.arena import ENOUGH_VOTES, Arena, create_arena_app, ratings  # noqa: E402
from imagegen.router import RoutePolicy  # noqa: E402
from tests.arena_stub import StubGen  # noqa: E402

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


def client_for(gen, **kw):
    return TestClient(create_arena_app(gen, **kw), base_url="http://127.0.0.1")


@pytest.fixture
def setup(home):
    gen = StubGen(home)
    client = client_for(gen)
    token = csrf_of(client.get("/").text)
    return gen, client, token


def wait_finished(client, location, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(location + "/status").json()
        if status["finished"]:
            return status
        time.sleep(0.02)
    raise AssertionError("comparison did not finish")


def compare(client, token, prompt="a red house", left="auto", right="auto"):
    response = client.post("/compare", data={"csrf": token, "prompt": prompt, "left": left, "right": right},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def test_the_compare_page_has_a_token_a_session_cookie_and_the_budget(home):
    client = client_for(StubGen(home))
    page = client.get("/")
    assert page.status_code == 200
    assert 'name="prompt"' in page.text and "stub:red" in page.text
    assert "spent $0.00 of $0.50" in page.text
    assert 'elo_source="shipped"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["x-content-type-options"] == "nosniff"
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert "set-cookie" not in client.get("/").headers  # one session per browser
    assert csrf_of(client.get("/").text) == csrf_of(page.text)


def test_a_comparison_is_blind_on_one_seed_until_the_vote(setup, home):
    gen, client, token = setup
    location = compare(client, token, "a red house --seed 77", left="stub:red", right="stub:blue")
    status = wait_finished(client, location)
    assert status["votable"] and not status["revealed"]
    assert all("model" not in s and "cost_usd" not in s for s in status["slots"])
    page = client.get(location).text
    assert "stub:red" not in page.split("<main>")[1].split('id="budget"')[0]  # names hidden before the vote
    assert [r.seed for r in gen.calls] == [77, 77]
    assert {r.model for r in gen.calls} == {"stub:red", "stub:blue"}
    images = [client.get(s["image_url"]) for s in status["slots"]]
    assert all(i.status_code == 200 and i.headers["content-type"] == "image/png" for i in images)
    assert images[0].content != images[1].content
    assert all(b"stub:" not in i.content for i in images)  # the infotext would name the model

    vote = client.post(location + "/vote", data={"csrf": token, "verdict": "left"}, follow_redirects=False)
    assert vote.status_code == 303
    assert b"Model: stub:red" in client.get(status["slots"][0]["image_url"]).content  # the stored file, infotext and all
    after = client.get(location + "/status").json()
    assert after["revealed"] and after["voted"] == "left"
    assert [s["model"] for s in after["slots"]] == ["stub:red", "stub:blue"]
    # the same store the CLI reads
    (only,) = Arena.at_home(home).votes()
    assert (only.model_a, only.model_b, only.winner, only.prompt) == ("stub:red", "stub:blue", "a", "a red house")
    assert only.image_a.startswith("gallery:")
    best = ratings(home=home, rounds=0)[0]
    assert best.model == "stub:red" and best.wins == 1
    again = client.post(location + "/vote", data={"csrf": token, "verdict": "right"})
    assert again.status_code == 409
    assert len(Arena.at_home(home).votes()) == 1


def test_progress_is_reported_while_the_images_run(home):
    gen = StubGen(home, delay_s=0.6)
    client = client_for(gen)
    token = csrf_of(client.get("/").text)
    location = compare(client, token, left="stub:red", right="stub:blue")
    seen = set()
    status = client.get(location + "/status").json()
    while not status["finished"]:
        seen.update(s["label"] for s in status["slots"])
        assert not status["votable"]
        time.sleep(0.02)
        status = client.get(location + "/status").json()
    assert any(label.startswith("step ") for label in seen), seen
    # before both images are in, the page's buttons are disabled and a vote is refused
    assert 'id="vote-left" disabled' not in client.get(location).text


def test_a_vote_before_the_images_is_refused(home):
    gen = StubGen(home, delay_s=1.0)
    client = client_for(gen)
    token = csrf_of(client.get("/").text)
    location = compare(client, token, left="stub:red", right="stub:blue")
    assert 'id="vote-left" disabled' in client.get(location).text
    early = client.post(location + "/vote", data={"csrf": token, "verdict": "left"})
    assert early.status_code == 400 and "both images" in early.text
    assert Arena.at_home(home).votes() == []


def test_both_bad_is_a_tie_kept_apart(setup, home):
    gen, client, token = setup
    location = compare(client, token, left="stub:red", right="stub:blue")
    wait_finished(client, location)
    client.post(location + "/vote", data={"csrf": token, "verdict": "both_bad"})
    (vote,) = Arena.at_home(home).votes()
    assert vote.winner == "tie" and vote.both_bad
    assert "Both bad" in client.get(location).text
    rows = {r["model"]: r for r in client.get("/ratings.json").json()["ratings"]}
    assert rows["stub:red"]["ties"] == 1 and rows["stub:red"]["both_bad"] == 1


def test_unknown_verdict_is_refused(setup, home):
    gen, client, token = setup
    location = compare(client, token, left="stub:red", right="stub:blue")
    wait_finished(client, location)
    assert client.post(location + "/vote", data={"csrf": token, "verdict": "a"}).status_code == 400
    assert Arena.at_home(home).votes() == []


@pytest.mark.parametrize("case", ["missing", "wrong", "other-session", "no-cookie", "cross-origin"])
def test_every_post_needs_the_csrf_token_of_its_session(setup, home, case):
    gen, client, token = setup
    location = compare(client, token, left="stub:red", right="stub:blue")
    wait_finished(client, location)
    other = client_for(gen)  # a second app: its own secret, so its tokens mean nothing here
    other_token = csrf_of(other.get("/").text)
    data = {"verdict": "left", "csrf": token}
    headers = {}
    if case == "missing":
        data.pop("csrf")
    elif case == "wrong":
        data["csrf"] = "0" * 64
    elif case == "other-session":
        data["csrf"] = other_token
    elif case == "no-cookie":
        client.cookies.clear()
    elif case == "cross-origin":
        headers["origin"] = "http://evil.example"
    response = client.post(location + "/vote", data=data, headers=headers)
    assert response.status_code == 403
    assert Arena.at_home(home).votes() == []
    calls = len(gen.calls)
    for path, form in (("/compare", {"prompt": "a cat", "left": "auto", "right": "auto"}),):
        assert client.post(path, data={**form, **({"csrf": data["csrf"]} if "csrf" in data else {})},
                           headers=headers).status_code == 403
    assert len(gen.calls) == calls


def test_prompts_and_infotexts_are_escaped_everywhere(setup):
    gen, client, token = setup
    location = compare(client, token, XSS, left="stub:red", right="stub:blue")
    wait_finished(client, location)
    client.post(location + "/vote", data={"csrf": token, "verdict": "right"})
    for path in (location, "/gallery", "/ratings"):
        text = client.get(path).text
        assert "<script>alert" not in text and "onerror=alert" not in text.replace("onerror=alert(1)&gt;", "")
        assert "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in client.get("/gallery").text
    assert "&lt;script&gt;" in client.get(location).text


def test_a_bad_prompt_is_shown_back_escaped(setup):
    gen, client, token = setup
    response = client.post("/compare", data={"csrf": token, "prompt": XSS + " --ar 0:0", "left": "auto",
                                              "right": "auto"})
    assert response.status_code == 400
    assert "<script>alert" not in response.text and "&lt;script&gt;" in response.text
    assert gen.calls == []


def test_only_loopback_host_names_are_answered(home):
    gen = StubGen(home)
    evil = client_for(gen).get("/", headers={"host": "evil.example:7861"})
    assert evil.status_code == 421
    for host in ("127.0.0.1:7861", "localhost", "[::1]:7861"):
        assert client_for(gen).get("/", headers={"host": host}).status_code == 200
    assert client_for(gen, allowed_hosts=None).get("/", headers={"host": "box.lan"}).status_code == 200


def test_images_are_served_by_id_never_by_path(setup, home):
    gen, client, token = setup
    location = compare(client, token, left="stub:red", right="stub:blue")
    status = wait_finished(client, location)
    assert client.get(status["slots"][0]["image_url"]).status_code == 200
    (home / "secret.txt").write_text("nope")
    for bad in ("../secret.txt", "..%2Fsecret.txt", "%2e%2e/arena.sqlite", "0" * 16, "ZZ", "/etc/passwd"):
        response = client.get("/image/" + bad)
        assert response.status_code == 404, bad
        assert b"nope" not in response.content and b"SQLite" not in response.content


def test_auto_picks_the_least_sure_pair_within_the_session_budget(home):
    gen = StubGen(home)
    client = client_for(gen, session_budget_usd=0.05)  # stub:gold costs 0.40: never affordable
    token = csrf_of(client.get("/").text)
    location = compare(client, token)
    wait_finished(client, location)
    assert {r.model for r in gen.calls} == {"stub:red", "stub:blue"}
    assert "spent $0.01 of $0.05" in client.get("/").text
    pricey = client.post("/compare", data={"csrf": token, "prompt": "a cat", "left": "stub:gold", "right": "stub:red"})
    assert pricey.status_code == 402 and "budget" in pricey.text
    # a new browser session has its own budget
    fresh = client_for(gen, session_budget_usd=0.05)
    assert "spent $0.00 of $0.05" in fresh.get("/").text


def test_auto_prefers_models_with_fewer_votes(home):
    arena = Arena.at_home(home)
    for _ in range(30):
        arena.record_vote("p", "stub:red", "stub:blue", "a")
        arena.record_vote("p", "stub:red", "stub:blue", "b")
    gen = StubGen(home)
    client = client_for(gen, session_budget_usd=None)
    token = csrf_of(client.get("/").text)
    wait_finished(client, compare(client, token))
    assert "stub:gold" in {r.model for r in gen.calls}  # never voted on: the least sure
    wait_finished(client, compare(client, token, left="stub:red"))
    assert {r.model for r in gen.calls[-2:]} == {"stub:red", "stub:gold"}


def test_a_failing_model_is_shown_and_cannot_be_voted_on(home):
    gen = StubGen(home, fail={"stub:blue"})
    client = client_for(gen)
    token = csrf_of(client.get("/").text)
    location = compare(client, token, left="stub:red", right="stub:blue")
    status = wait_finished(client, location)
    assert not status["votable"]
    assert "broke on purpose" in client.get(location).text
    assert "spent $0.00 " in client.get("/").text  # the failed side's estimate is given back


def test_ratings_page_shows_intervals_matrix_shipped_elo_and_too_few_votes(home):
    arena = Arena.at_home(home)
    for i in range(12):
        arena.record_vote("p", "stub:red", "stub:blue", "a" if i % 3 else "b")
        arena.record_vote("p", "stub:blue", "stub:gold", "tie")
    client = client_for(StubGen(home, policy=RoutePolicy(elo_source="blend")))
    page = client.get("/ratings").text
    assert 'id="ratings-plot"' in page and "<circle" in page
    assert "too few votes" in page and f"of {ENOUGH_VOTES}" in page
    assert 'elo_source="blend"' in page
    red = re.search(r'<tr data-model="stub:red">(.*?)</tr>', page).group(1)
    assert "1000" in red  # the shipped Elo beside yours
    assert re.search(r"\[\d+–\d+\]", red)  # a 95% interval
    assert "8/12" in page  # red's score against blue in the win matrix (8 wins of 12)
    rows = {r["model"]: r for r in client.get("/ratings.json").json()["ratings"]}
    assert rows["stub:red"]["bt_low"] < rows["stub:red"]["bt"] < rows["stub:red"]["bt_high"]
    assert rows["stub:red"]["games"] == 12 and not rows["stub:red"]["enough"]


def test_no_votes_yet_says_so(setup):
    gen, client, token = setup
    assert 'id="no-votes"' in client.get("/ratings").text


def test_gallery_lists_images_with_infotext_and_reruns_on_another_model(setup, home):
    gen, client, token = setup
    location = compare(client, token, "a blue hill --seed 5", left="stub:red", right="stub:blue")
    wait_finished(client, location)
    blind = client.get("/gallery").text
    assert blind.count("vote on its comparison") == 2 and "stub:red" not in blind.split('id="gallery"')[1]
    unvoted = Arena.at_home(home).gallery()[0]
    assert client.post(f"/gallery/{unvoted.id}/rerun", data={"csrf": token, "model": "stub:gold"}).status_code == 409
    client.post(location + "/vote", data={"csrf": token, "verdict": "tie"})
    page = client.get("/gallery").text
    assert page.count('class="item"') == 2
    assert "Seed: 5, Model: stub:red" in page and "seed 5" in page
    assert "Copy request" in page and "&quot;prompt&quot;: &quot;a blue hill&quot;" in page
    image = next(i for i in Arena.at_home(home).gallery() if i.model == "stub:red")
    assert image.request["seed"] == 5 and image.request["model"] == "stub:red"
    response = client.post(f"/gallery/{image.id}/rerun", data={"csrf": token, "model": "stub:gold"},
                           follow_redirects=False)
    assert response.status_code == 303
    wait_finished(client, response.headers["location"])
    assert gen.calls[-1].model == "stub:gold" and gen.calls[-1].seed == 5
    assert client.get("/gallery").text.count('class="item"') == 3
    assert "stub:gold" in client.get(response.headers["location"]).text
    bad = client.post(f"/gallery/{image.id}/rerun", data={"csrf": token, "model": "stub:nope"})
    assert bad.status_code == 400


def test_the_app_mounts_under_a_prefix(home):
    gen = StubGen(home)
    outer = Starlette(routes=[Mount("/arena", app=create_arena_app(gen))])
    client = TestClient(outer, base_url="http://127.0.0.1")
    page = client.get("/arena/")
    assert page.status_code == 200
    assert 'href="/arena/static/arena.css"' in page.text and 'action="/arena/compare"' in page.text
    assert client.get("/arena/static/arena.js").status_code == 200
    location = compare(_Prefixed(client), csrf_of(page.text))
    assert location.startswith("/arena/c/")
    assert client.get(location).status_code == 200


class _Prefixed:
    def __init__(self, client):
        self.client = client

    def post(self, path, **kw):
        return self.client.post("/arena" + path, **kw)


def test_an_old_votes_table_gains_the_both_bad_column(home):
    home.mkdir(parents=True)
    db = sqlite3.connect(home / "arena.sqlite")
    db.execute("CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, "
               "prompt TEXT NOT NULL, model_a TEXT NOT NULL, model_b TEXT NOT NULL, winner TEXT NOT NULL "
               "CHECK (winner IN ('a', 'b', 'tie')), image_a TEXT, image_b TEXT)")
    db.execute("INSERT INTO votes (created_at, prompt, model_a, model_b, winner) VALUES (1, 'p', 'x', 'y', 'a')")
    db.commit()
    db.close()
    arena = Arena.at_home(home)
    arena.record_vote("p", "x", "y", "both_bad")
    votes = arena.votes()
    assert [(v.winner, v.both_bad) for v in votes] == [("a", False), ("tie", True)]


def test_imagegen_serve_mounts_the_page_at_arena(home):
    server = pytest.importorskip("imagegen.server")
    pytest.importorskip("fastapi")
    client = TestClient(server.create_app(StubGen(home)), base_url="http://127.0.0.1")
    page = client.get("/arena/")
    assert page.status_code == 200 and 'action="/arena/compare"' in page.text
    location = compare(_Prefixed(client), csrf_of(page.text))
    assert location.startswith("/arena/c/") and wait_finished(client, location)["votable"]
    # the page has no API key of its own: even inside a server bound elsewhere it answers loopback only
    assert client.get("/arena/", headers={"host": "box.lan"}).status_code == 421


def test_with_one_model_the_page_says_what_to_configure(home):
    gen = StubGen(home)
    client = client_for(gen, models=["stub:red"])
    page = client.get("/")
    assert "REPLICATE_API_TOKEN" in page.text
    response = client.post("/compare", data={"csrf": csrf_of(page.text), "prompt": "a cat", "left": "auto",
                                             "right": "auto"})
    assert response.status_code == 400 and "two models" in response.text and gen.calls == []
