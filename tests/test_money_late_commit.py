"""Creates the server commits late, or whose reply comes after our read timeout: each is
searched for until a commit can no longer land, never sent twice; every paid prediction belongs
to exactly one result. Time scales are small (a fraction of a second stands for a minute)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from imagegen.providers.replicate import CallPolicy, ReplicateProvider

from imagegen.client import ImageGen
from imagegen.request import GenerateRequest
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate, Faults

SCHNELL = "replicate:black-forest-labs/flux-schnell"
FAST = dict(poll_initial_s=0.02, poll_max_s=0.1, get_backoff_s=0.01, reconcile_delay_s=0.05,
            reconcile_max_delay_s=0.2)


def client_for(fake: FakeReplicate, **policy) -> ImageGen:
    settings = Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)
    provider = ReplicateProvider(settings, policy=CallPolicy(**{**FAST, **policy}))
    return ImageGen(providers=[provider], settings=settings)


def creates(fake: FakeReplicate):
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/predictions")]


def test_late_commit_storm_pays_each_generation_once():
    """20% of creates committed 1.2 s late, after a 0.3 s read timeout: 40 generations make
    exactly 40 predictions, each owned by one result."""
    generations = 40
    with FakeReplicate(processing_time_s=0.01) as fake:
        fake.faults = Faults(rate_late_commit=0.2, late_commit_s=1.2, seed=7)
        gen = client_for(fake, timeout_s=0.3, commit_timeout_s=2.0)

        async def storm():
            return await asyncio.gather(*(
                gen.agenerate(GenerateRequest(prompt=f"late {i}", seed=i, model=SCHNELL))
                for i in range(generations)))

        with gen:
            results = asyncio.run(storm())
        late = sum(1 for r in fake.requests if r.fault == "late_commit")
        predictions = fake.predictions

    assert late >= 4  # the storm happened
    assert [len(r.images) for r in results] == [1] * generations
    made = Counter((p.input["prompt"], p.input["seed"]) for p in predictions.values())
    assert len(predictions) == generations and max(made.values()) == 1  # 0 duplicates
    owned = [pid for r in results for pid in r.raw["prediction_ids"]]
    assert sorted(owned) == sorted(predictions)  # each paid prediction in exactly one result


def test_our_read_timeout_governs_a_create_held_by_the_server():
    """The official client would wait 60.5 s on ``Prefer: wait``; ours asks the server to answer
    within our timeout and stops reading at it."""
    with FakeReplicate(processing_time_s=0.01) as fake:
        fake.faults = Faults(late_commit_s=2.0)
        fake.fail_next("late_commit", on="create")
        gen = client_for(fake, timeout_s=0.5, commit_timeout_s=4.0)
        started = time.monotonic()
        with gen:
            result = gen.generate(GenerateRequest(prompt="held", seed=3, model=SCHNELL))
        elapsed = time.monotonic() - started
        (post,) = creates(fake)
        searches = [r for r in fake.requests if r.method == "GET" and r.path == "/v1/predictions"]
        predictions = list(fake.predictions)

    assert predictions == result.raw["prediction_ids"]  # found, not made again
    assert searches and searches[0].time - post.time < 1.5  # gave up reading after ~0.5 s
    assert elapsed < 4.0  # found as soon as it was committed, not at the end of the window


def test_prefer_wait_fits_inside_the_read_timeout():
    with FakeReplicate(processing_time_s=0.01) as fake:
        with client_for(fake, timeout_s=2.5) as gen:
            gen.generate(GenerateRequest(prompt="a", seed=1, model=SCHNELL))
        with client_for(fake, timeout_s=0.4) as gen:
            gen.generate(GenerateRequest(prompt="b", seed=1, model=SCHNELL))
        with client_for(fake, timeout_s=90.0) as gen:
            gen.generate(GenerateRequest(prompt="c", seed=1, model=SCHNELL))
        headers = [r.headers.get("prefer") for r in creates(fake)]
    assert headers == ["wait=2", None, "wait=60"]


def test_a_create_that_never_commits_is_sent_again_only_after_the_commit_window():
    with FakeReplicate(processing_time_s=0.01) as fake:
        fake.fail_next("reset", on="create")  # dropped before anything was made
        gen = client_for(fake, commit_timeout_s=0.6)
        with gen:
            result = gen.generate(GenerateRequest(prompt="gone", seed=4, model=SCHNELL))
        first, second = creates(fake)
        count = fake.create_count
    assert count == 1 and len(result.images) == 1
    assert second.time - first.time >= 0.6


def test_a_prediction_adopted_by_an_identical_call_is_not_shared():
    """Call A's create commits late; its search meets the prediction of an identical call B
    whose held reply has not arrived, and adopts it. B must not also return that prediction:
    it looks for A's late one instead. Each result owns a different paid prediction."""
    with FakeReplicate(processing_time_s=1.5) as fake:
        fake.faults = Faults(late_commit_s=3.0)
        fake.fail_next("late_commit", on="create")  # the first create to arrive: A's
        gen = client_for(fake, timeout_s=2.5, commit_timeout_s=6.0)  # Prefer: wait=2
        request = GenerateRequest(prompt="twins", seed=9, model=SCHNELL)

        async def both():
            a = asyncio.ensure_future(gen.agenerate(request))
            await asyncio.sleep(1.8)  # B's create is made at once and held (sync wait)
            b = asyncio.ensure_future(gen.agenerate(request))
            return await asyncio.gather(a, b)

        with gen:
            a, b = asyncio.run(both())
        predictions = sorted(fake.predictions)

    owned = a.raw["prediction_ids"] + b.raw["prediction_ids"]
    assert len(predictions) == 2 and sorted(owned) == predictions


@pytest.mark.parametrize("late_s, found", [(0.3, True), (1.5, False)])
def test_session_search_ends_at_the_commit_window(late_s, found):
    """A commit later than ``commit_timeout_s`` is not waited for (and the policy says how long
    a commit can take): the window is a setting, not three fixed searches."""
    with FakeReplicate(processing_time_s=0.01) as fake:
        fake.faults = Faults(late_commit_s=late_s)
        fake.fail_next("late_commit", on="create")
        gen = client_for(fake, timeout_s=0.1, commit_timeout_s=0.8, create_attempts=1)
        with gen:
            if found:
                result = gen.generate(GenerateRequest(prompt="w", seed=5, model=SCHNELL))
                assert result.raw["prediction_ids"] == list(fake.predictions)
            else:
                from imagegen.errors import ImageGenError

                with pytest.raises(ImageGenError, match="no prediction appeared within 0.8s"):
                    gen.generate(GenerateRequest(prompt="w", seed=5, model=SCHNELL))
