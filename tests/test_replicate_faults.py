"""A fault storm: 200 generations while 20% of requests fail; every image arrives, none is paid twice."""

from __future__ import annotations

import asyncio
from collections import Counter

from imagegen.providers.replicate import CallPolicy, ReplicateProvider

from imagegen.request import GenerateRequest
from imagegen.settings import Settings
from imagegen.testing import FakeReplicate, Faults

GENERATIONS = 200


def test_fault_storm_every_image_arrives_and_no_create_is_duplicated():
    with FakeReplicate(processing_time_s=0.005) as fake:
        fake.faults = Faults(rate_429=0.04, rate_5xx=0.04, rate_reset=0.04,
                             rate_5xx_after_create=0.04, rate_reset_after_create=0.04,
                             processing_with_output=0.1, retry_after_s=1, seed=20261124)
        settings = Settings(replicate_api_token=fake.api_token, replicate_base_url=fake.base_url)
        provider = ReplicateProvider(settings, policy=CallPolicy(
            poll_initial_s=0.02, poll_max_s=0.1, get_backoff_s=0.01, reconcile_delay_s=0.02,
            commit_timeout_s=0.3,
            get_attempts=10, create_attempts=10, max_concurrency=50))
        card = next(c for c in provider.models() if c.model.endswith("flux-schnell"))

        async def storm():
            limit = asyncio.Semaphore(50)

            async def one(i: int):
                async with limit:
                    return await provider.arun(GenerateRequest(prompt=f"storm {i}", seed=i), card)

            return await asyncio.gather(*(one(i) for i in range(GENERATIONS)))

        results = asyncio.run(storm())
        faults = Counter(r.fault for r in fake.requests if r.fault)
        predictions = fake.predictions

    assert [len(r.images) for r in results] == [1] * GENERATIONS
    assert [r.images[0].seed for r in results] == list(range(GENERATIONS))
    # The storm really happened, including creates the server made but the client never heard of.
    assert faults["5xx_after_create"] + faults["reset_after_create"] >= 10
    assert sum(faults.values()) >= 0.15 * len(fake.requests)
    # Exactly one prediction per generation: no create was paid twice.
    sent = Counter((p.input["prompt"], p.input["seed"]) for p in predictions.values())
    assert len(predictions) == GENERATIONS and max(sent.values()) == 1
    owned = [r.raw["prediction_ids"][0] for r in results]
    assert sorted(owned) == sorted(predictions)
