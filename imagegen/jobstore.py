"""The durable fine-tune job store: one SQLite file under ``IMAGEGEN_HOME`` plus a folder per
job (dataset zip, trained weights). Any process can read it; every step a job takes is written
down before and after it happens, so a killed process loses nothing and repeats nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .catalog import ModelCard

DB_NAME = "jobs.sqlite3"
JOBS_DIR = "finetunes"
LORA_FILE = "lora.safetensors"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS finetune_jobs (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    destination TEXT NOT NULL,
    trainer TEXT NOT NULL,
    request_json TEXT NOT NULL,
    dataset_digest TEXT,
    training_input_json TEXT,
    zip_path TEXT,
    destination_created INTEGER NOT NULL DEFAULT 0,
    file_id TEXT,
    file_url TEXT,
    create_sent_at REAL,
    claim_pid INTEGER,
    training_id TEXT UNIQUE,
    logs TEXT,
    error TEXT,
    metrics_json TEXT,
    version TEXT,
    weights_url TEXT,
    weights_tar TEXT,
    lora_path TEXT,
    estimate_usd REAL,
    actual_usd REAL,
    card_json TEXT,
    warnings_json TEXT NOT NULL DEFAULT '[]'
)
"""


@dataclass
class JobRecord:
    """One row of the store, as written. ``create_sent_at`` is the idempotency marker: set
    just before the training create call, so a crash after it means "look before creating"."""

    id: str
    created_at: float
    updated_at: float
    status: str
    destination: str
    trainer: str  # "owner/name:version" of the trainer
    request_json: str
    dataset_digest: str | None = None
    training_input_json: str | None = None
    zip_path: str | None = None
    destination_created: int = 0
    file_id: str | None = None
    file_url: str | None = None
    create_sent_at: float | None = None
    claim_pid: int | None = None
    training_id: str | None = None
    logs: str | None = None
    error: str | None = None
    metrics_json: str | None = None
    version: str | None = None
    weights_url: str | None = None
    weights_tar: str | None = None
    lora_path: str | None = None
    estimate_usd: float | None = None
    actual_usd: float | None = None
    card_json: str | None = None
    warnings_json: str = "[]"

    @property
    def warnings(self) -> list[str]:
        return json.loads(self.warnings_json or "[]")

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics_json) if self.metrics_json else {}


_COLUMNS = tuple(f.name for f in fields(JobRecord))


class JobDatabase:
    """SQLite rows of fine-tune jobs. A connection per operation: safe across processes."""

    def __init__(self, home: Path | str):
        self.home = Path(home)
        self.path = self.home / DB_NAME

    def job_dir(self, job_id: str) -> Path:
        return self.home / JOBS_DIR / job_id

    @contextmanager
    def _connect(self, *, create: bool = True) -> Iterator[sqlite3.Connection]:
        if create:
            self.home.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            yield conn
        finally:
            conn.close()

    def insert(self, record: JobRecord) -> JobRecord:
        values = {name: getattr(record, name) for name in _COLUMNS}
        placeholders = ", ".join(f":{name}" for name in _COLUMNS)
        with self._connect() as conn:
            conn.execute(f"INSERT INTO finetune_jobs ({', '.join(_COLUMNS)}) VALUES ({placeholders})", values)
        return record

    def update(self, job_id: str, *, expect_status: tuple[str, ...] | None = None,
               **changes: Any) -> JobRecord | None:
        """Write ``changes``; with ``expect_status``, only while the status is one of those
        (a compare-and-set: returns None when another process moved the job on)."""
        unknown = set(changes) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        changes["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = :{name}" for name in changes)
        sql = f"UPDATE finetune_jobs SET {assignments} WHERE id = :_id"
        params: dict[str, Any] = {**changes, "_id": job_id}
        if expect_status is not None:
            sql += f" AND status IN ({', '.join(f':_s{i}' for i in range(len(expect_status)))})"
            params.update({f"_s{i}": status for i, status in enumerate(expect_status)})
        with self._connect() as conn:
            updated = conn.execute(sql, params).rowcount
        return self.get(job_id) if updated else None

    def get(self, job_id: str) -> JobRecord | None:
        """By our job id or by the provider's training id."""
        if not self.path.exists():
            return None
        with self._connect(create=False) as conn:
            row = conn.execute("SELECT * FROM finetune_jobs WHERE id = ? OR training_id = ?",
                               (job_id, job_id)).fetchone()
        return _record(row) if row else None

    def all(self) -> list[JobRecord]:
        """Newest first; an empty list when nothing was ever stored (nothing is created)."""
        if not self.path.exists():
            return []
        with self._connect(create=False) as conn:
            rows = conn.execute("SELECT * FROM finetune_jobs ORDER BY created_at DESC, id").fetchall()
        return [_record(row) for row in rows]

    def claim(self, job_id: str, expect_status: tuple[str, ...]) -> JobRecord | None:
        """Atomically take the right to advance a job: only one live process may hold it.

        Returns the record when claimed; None when the status moved on or a live process
        holds the claim. A claim left by a dead process is taken over.
        """
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT * FROM finetune_jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None or row["status"] not in expect_status:
                    conn.execute("ROLLBACK")
                    return None
                holder = row["claim_pid"]
                if holder and holder != os.getpid() and _alive(holder):
                    conn.execute("ROLLBACK")
                    return None
                conn.execute("UPDATE finetune_jobs SET claim_pid = ?, updated_at = ? WHERE id = ?",
                             (os.getpid(), time.time(), job_id))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return self.get(job_id)

    def release(self, job_id: str) -> None:
        with self._connect() as conn:
            conn.execute("UPDATE finetune_jobs SET claim_pid = NULL WHERE id = ? AND claim_pid = ?",
                         (job_id, os.getpid()))

    def finetune_cards(self) -> list[ModelCard]:
        """Cards of every succeeded fine-tune, for a provider's `models()` and the router."""
        if not self.path.exists():
            return []
        with self._connect(create=False) as conn:
            rows = conn.execute("SELECT card_json FROM finetune_jobs WHERE status = 'succeeded' "
                                "AND card_json IS NOT NULL ORDER BY created_at").fetchall()
        cards: dict[str, ModelCard] = {}
        for row in rows:
            card = ModelCard.model_validate_json(row["card_json"])
            cards[card.id] = card
        return list(cards.values())


def finetune_cards(home: Path | str) -> list[ModelCard]:
    """The succeeded fine-tunes stored under ``home`` (``settings.home``) as model cards."""
    try:
        return JobDatabase(home).finetune_cards()
    except sqlite3.Error:
        return []  # an unreadable store must not break listing the other models


def finetune_card(version: str, *, trigger_word: str, trainer: str, job_id: str,
                  base: ModelCard | None = None) -> ModelCard:
    """The card of a trained version ``owner/name:<version>``: ``base`` (the Replicate
    provider's card for it) marked as a fine-tune, with its trigger word in the notes."""
    if base is None:
        from imagegen.providers.replicate._schemas import finetune_card as provider_card

        base = provider_card(version)
        if base is None:
            raise ValueError(f"{version!r} is not 'owner/name:<64-hex version>'")
    notes = (f"LoRA fine-tune by {trainer} (job {job_id}); put the trigger word "
             f"{trigger_word!r} in the prompt")
    caps = base.capabilities.model_copy(update={"lora": True})
    return base.model_copy(update={"kind": "finetune", "capabilities": caps,
                                   "notes": "; ".join(n for n in (notes, base.notes) if n)})


def _record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(**{name: row[name] for name in _COLUMNS})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- trained weights ----------------------------------------------------------------------

def download(url: str, dest: Path, headers: dict[str, str] | None = None) -> Path:
    """Stream ``url`` (https, http or ``data:``) to ``dest`` through a partial file."""
    import base64

    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    if url.startswith("data:"):
        partial.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    else:
        with httpx.stream("GET", url, headers=headers or {}, follow_redirects=True,
                          timeout=httpx.Timeout(30.0, read=300.0)) as response:
            response.raise_for_status()
            with partial.open("wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
    partial.replace(dest)
    return dest


def extract_lora(tar_path: Path, dest: Path) -> Path:
    """Copy ``lora.safetensors`` out of a trainer's ``trained_model.tar`` (only that member,
    so a hostile archive cannot write elsewhere) and check its safetensors header."""
    with tarfile.open(tar_path) as archive:
        members = [m for m in archive.getmembers()
                   if m.isfile() and Path(m.name).name == LORA_FILE]
        if not members:
            raise ValueError(f"{tar_path.name} holds no {LORA_FILE}")
        member = min(members, key=lambda m: len(m.name))  # output/flux_train_replicate/lora.safetensors
        source = archive.extractfile(member)
        assert source is not None
        partial = dest.with_name(dest.name + ".partial")
        with partial.open("wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    try:
        check_safetensors(partial)
    except ValueError:
        partial.unlink()
        raise
    partial.replace(dest)
    return dest


def check_safetensors(path: Path) -> None:
    """A safetensors file starts with an 8-byte little-endian header length and a JSON header."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if length <= 0 or 8 + length > size:
            raise ValueError(f"{path.name} is not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(length))
        except ValueError as exc:
            raise ValueError(f"{path.name} is not a safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path.name} is not a safetensors file (header is not a table)")
