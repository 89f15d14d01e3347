"""`imagegen models`: prices in their units with dates, Elo with arena and date, a user's
`catalog.json` laid over the shipped cards, and `--check` for figures over a year old."""

import json

from typer.testing import CliRunner

from imagegen import cli

runner = CliRunner()
FLUX2 = "replicate:black-forest-labs/flux-2-pro"


def run(tmp_path, monkeypatch, *args):
    monkeypatch.setenv("IMAGEGEN_HOME", str(tmp_path))
    monkeypatch.setenv("REPLICATE_API_TOKEN", "r8_not_used")
    monkeypatch.setenv("COLUMNS", "400")
    return runner.invoke(cli.app, ["models", *args])


def test_models_shows_price_units_and_elo_arena_and_date(tmp_path, monkeypatch):
    result = run(tmp_path, monkeypatch, "--json")
    assert result.exit_code == 0, result.output
    cards = {c["id"]: c for c in json.loads(result.output)}
    assert cards[FLUX2]["elo"]["arena"] == "Artificial Analysis text-to-image"
    table = run(tmp_path, monkeypatch).output
    line = next(row for row in table.splitlines() if "flux-2-pro " in row)
    assert "$0.015/run + $0.015/output MP + $0.015/input MP [2026-08-17]" in line
    assert "1185 (Artificial Analysis text-to-image, 2026-07-20)" in line
    imagen = next(row for row in table.splitlines() if "google/imagen-4 " in row)
    assert "measured 1175 -53 offset" in imagen


def test_check_reports_old_and_undated_figures_and_follows_the_users_table(tmp_path, monkeypatch):
    result = run(tmp_path, monkeypatch, "--check", "--json")
    assert result.exit_code == 1
    stale = {(row["id"], row["what"]) for row in json.loads(result.output)}
    assert ("replicate:black-forest-labs/flux-schnell", "price") in stale
    assert ("replicate:google/imagen-4", "Elo") in stale
    assert not any(cid == FLUX2 for cid, _ in stale)
    (tmp_path / "catalog.json").write_text(json.dumps({"cards": [
        {"id": FLUX2, "price": {"per_image": 0.02, "source": "my old quote", "date": "2024-05-01"}},
        {"id": "replicate:black-forest-labs/flux-schnell",
         "price": {"per_image": 0.003, "source": "checked again", "date": "2026-11-30"}}]}))
    stale = {(row["id"], row["what"]) for row in json.loads(run(tmp_path, monkeypatch, "--check", "--json").output)}
    assert (FLUX2, "price") in stale
    assert ("replicate:black-forest-labs/flux-schnell", "price") not in stale
    shown = run(tmp_path, monkeypatch).output
    assert "$0.02/image [2024-05-01]" in next(row for row in shown.splitlines() if "flux-2-pro " in row)
