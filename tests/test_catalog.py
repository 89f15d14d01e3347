"""Prices in the units providers bill by (a test per unit), charges from Replicate's metrics, the
age check, and the shipped cards agreeing with the adapter's schema tables."""

from datetime import date

import pytest
from imagegen.providers.replicate._schemas import MODELS
from pydantic import ValidationError

from imagegen.catalog import MEGAPIXEL, ModelCard, Price, cloud_cards, parse_date, stale_entries

MP = MEGAPIXEL  # 1024 x 1024 pixels


# -- one test per pricing unit ----------------------------------------------------------------


def test_per_image_counts_output_images_only():
    price = Price(per_image=0.04)
    assert price.estimate(images=3, output_pixels=4 * MP, input_pixels=(MP,), runs=3) == pytest.approx(0.12)
    assert price.charge({"image_output_count": 2}) == pytest.approx(0.08)


def test_per_output_megapixel_rounds_each_image_up_when_billed_so():
    exact, ceil = Price(per_megapixel=0.01), Price(per_megapixel=0.01, megapixel_rounding="ceil")
    assert exact.estimate(images=2, output_pixels=1.5 * MP) == pytest.approx(0.03)
    assert ceil.estimate(images=2, output_pixels=1.5 * MP) == pytest.approx(0.04)
    assert ceil.estimate(images=1, output_pixels=1344 * 768) == pytest.approx(0.01)  # 0.98 MP -> 1
    assert ceil.charge({"image_output_megapixel_count": 3}) == pytest.approx(0.03)


def test_per_input_megapixel_counts_every_input_of_every_run_with_a_minimum():
    price = Price(per_input_megapixel=0.015, megapixel_rounding="ceil", min_input_megapixels=1.0)
    inputs = (0.2 * MP, 2.5 * MP)  # 1 MP (minimum) + 3 MP (rounded up)
    assert price.estimate(images=2, input_pixels=inputs, runs=2) == pytest.approx(2 * 4 * 0.015)
    assert price.estimate(images=1) == 0.0
    assert price.charge({"image_input_megapixel_count": 4}) == pytest.approx(0.06)


def test_per_input_image_counts_inputs_per_run():
    price = Price(per_input_image=0.002)
    assert price.estimate(images=1, input_pixels=(MP, MP, MP)) == pytest.approx(0.006)
    assert price.charge({"image_input_count": 3}) == pytest.approx(0.006)


def test_per_run_is_a_fixed_fee_per_prediction():
    price = Price(per_run=0.015)
    assert price.estimate(images=4, runs=4) == pytest.approx(0.06)
    assert price.charge({}) == pytest.approx(0.015)  # needs no metric


def test_per_gpu_second_names_its_hardware_and_bills_predict_time():
    price = Price(per_gpu_second=0.001525, gpu="gpu-h100")
    assert price.units == ["$0.001525/GPU-second (gpu-h100)"]
    assert price.estimate(images=2, gpu_seconds=20) == pytest.approx(0.0305)
    assert price.charge({"predict_time": 8.74}) == pytest.approx(0.013329)


def test_flux_2_pro_matches_the_published_example():
    """1 MP out + one 1 MP reference = $0.045 (research note, FLUX.2 [pro])."""
    pro = next(c for c in cloud_cards() if c.model == "black-forest-labs/flux-2-pro")
    assert pro.price.estimate(images=1, output_pixels=MP, input_pixels=(MP,)) == pytest.approx(0.045)
    assert pro.price.charge({"image_output_count": 1, "image_output_megapixel_count": 1,
                             "image_input_megapixel_count": 1}) == pytest.approx(0.045)


def test_tiers_follow_the_input_that_selects_them():
    cards = {c.model: c for c in cloud_cards()}
    banana = cards["google/nano-banana-2"].price
    assert [banana.estimate(images=1, tier=t) for t in ("1K", "2K", "4K", None)] == [0.067, 0.101, 0.151, 0.067]
    dev = cards["black-forest-labs/flux-2-dev"].price
    assert dev.estimate(images=1, tier="false") == pytest.approx(0.014)
    assert dev.estimate(images=1, tier="true") == pytest.approx(0.012)
    gpt = cards["openai/gpt-image-1.5"].price
    assert gpt.estimate(images=2, tier="low") == pytest.approx(0.026)
    with pytest.raises(ValidationError, match="not a price unit"):
        Price(tier_input="quality", tiers={"low": {"per_pixel": 1.0}})
    with pytest.raises(ValidationError, match="tier_input"):
        Price(tiers={"low": {"per_image": 1.0}})


def test_a_charge_needs_every_metric_its_units_use():
    price = Price(per_run=0.04, per_megapixel=0.03)
    assert price.charge({"image_output_count": 1}) is None  # no megapixel count: estimate only
    assert price.charge({"image_output_megapixel_count": True}) is None  # not a count
    assert Price().charge(None) == 0.0


# -- the shipped table --------------------------------------------------------------------------


def test_every_shipped_card_has_priced_units_a_source_and_an_elo_note():
    for card in cloud_cards():
        assert card.price.units and card.price.source, card.id
        assert card.elo.source, card.id  # a value names its source; a null says why
        assert card.latency_s > 0 and card.latency_source, card.id
        if card.elo.value is not None:
            assert card.elo.arena and card.elo.date, card.id
        for other in card.elo.others:
            assert other.arena and other.source and other.date


def test_unconfirmed_prices_say_so():
    unconfirmed = {c.model for c in cloud_cards() if c.price.source.startswith("UNCONFIRMED")}
    assert {"qwen/qwen-image", "qwen/qwen-image-edit", "black-forest-labs/flux-krea-dev"} <= unconfirmed


@pytest.mark.parametrize("card", cloud_cards(), ids=lambda c: c.model)
def test_card_capabilities_agree_with_the_schema_table(card):
    schema = MODELS[card.model]
    caps = card.capabilities
    assert caps.aspect_ratios == schema.ratios
    assert caps.custom_size == schema.allows_custom
    assert caps.seed == schema.takes_seed
    assert caps.negative_prompt == bool(schema.negative_field)
    assert caps.lora == bool(schema.lora_slots)
    assert caps.edit == bool(schema.edit_field)
    assert caps.max_reference_images == schema.list_limit(schema.reference_field)
    assert set(caps.output_megapixels) == set(schema.megapixel_values.values())
    steps = schema.inputs.get(schema.steps_field or "")
    assert caps.steps_range == ((int(steps.minimum), int(steps.maximum)) if steps else None)
    guidance = schema.inputs.get(schema.guidance_field or "")
    assert caps.cfg == bool(guidance)
    if "output_format" in schema.inputs:
        assert all(schema.format_name(f) for f in caps.output_formats)
    if card.price.tier_input:
        assert card.price.tier_input in schema.inputs
        values = schema.inputs[card.price.tier_input].enum or ("true", "false")  # a boolean input
        assert set(card.price.tiers) == {str(v) for v in values}


# -- how old the figures are ------------------------------------------------------------------


def test_parse_date_reads_days_months_and_years():
    assert parse_date("2026-07-20") == date(2026, 7, 20)
    assert parse_date("2025-10") == date(2025, 10, 1)
    assert parse_date("2026") == date(2026, 1, 1)
    assert parse_date("") is None and parse_date("soon") is None


def test_stale_entries_reports_old_or_undated_prices_and_elo():
    old = ModelCard(id="x:old", provider="x", price={"per_image": 0.01, "source": "s", "date": "2024-01"},
                    elo={"value": 1000, "source": "s", "date": "2025-01-01"})
    fresh = ModelCard(id="x:new", provider="x", price={"per_image": 0.01, "source": "s", "date": "2026-10-05"},
                      elo={"source": "no figure"})
    undated = ModelCard(id="x:undated", provider="x", price={"per_image": 0.01, "source": "s"})
    found = stale_entries([old, fresh, undated], today=date(2026, 12, 1))
    assert [(cid, what) for cid, what, _ in found] == [("x:old", "price"), ("x:old", "Elo"), ("x:undated", "price")]
    assert "days old" in found[0][2] and found[2][2] == "no date recorded"


def test_the_shipped_table_reports_its_undated_and_year_old_figures():
    found = {(cid.split(":", 1)[1], what) for cid, what, _ in stale_entries(cloud_cards(), date(2026, 12, 2))}
    assert ("black-forest-labs/flux-schnell", "price") in found  # the page copy is undated
    assert ("google/imagen-4", "Elo") in found  # ~2025-10 snapshot, offset onto the scale
    assert ("black-forest-labs/flux-2-pro", "price") not in found
