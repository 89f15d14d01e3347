"""The durable fine-tune job store: one SQLite file under ``IMAGEGEN_HOME`` plus a folder per
job (dataset zip, trained weights). Any process can read it; every step a job takes is written
down before and after it happens, so a killed process loses nothing and repeats nothing.

A store that cannot be used (a corrupt or truncated file, one locked by another process for
longer than `BUSY_TIMEOUT_S`) raises `JobStoreError` naming the file and what to do; the store
never deletes or rewrites a file it cannot read.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from imagegen.catalog import ModelCard
from imagegen.errors import JobStoreError

log = logging.getLogger("imagegen")

DB_NAME = "jobs.sqlite3"
JOBS_DIR = "finetunes"
LORA_FILE = "lora.safetensors"
BUSY_TIMEOUT_S = 5.0  # a writer holds the file for milliseconds; longer means another process is stuck

# Job statuses. Before the training exists: ``preparing`` (recorded, nothing sent), then the
# trainer's own steps (``uploaded``, ``creating``: a create may have been sent). Then
# ``starting`` / ``processing``, and one of `TERMINAL`.
NOT_STARTED = ("preparing", "uploaded")
BEFORE_START = ("preparing", "uploaded", "creating")
TERMINAL = ("succeeded", "failed", "canceled", "aborted")

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
# Columns added since the first schema; a store written before them gets them on first use.
_ADDED = {"provider": "TEXT", "model": "TEXT", "charge_id": "TEXT", "state_json": "TEXT",
          "progress_json": "TEXT"}


@dataclass
class JobRecord:
    """One row of the store, as written. ``create_sent_at`` is the idempotency marker: set
    just before the training create call, so a crash after it means "look before creating".

    ``provider`` names the trainer (a provider name); ``trainer`` is what that trainer ran
    (a training model and version, a script). ``training_id`` is the trainer's own id for the
    training; ``state_json`` holds anything else only that trainer reads; ``progress_json``
    the latest ``step``, ``total``, ``loss``, ``eta_s`` it reported.
    """

    id: str
    created_at: float
    updated_at: float
    status: str
    destination: str
    trainer: str
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
    provider: str | None = None
    model: str | None = None
    charge_id: str | None = None
    state_json: str | None = None
    progress_json: str | None = None

    @property
    def warnings(self) -> list[str]:
        return json.loads(self.warnings_json or "[]")

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics_json) if self.metrics_json else {}

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_json) if self.state_json else {}

    @property
    def progress(self) -> dict[str, Any]:
        return json.loads(self.progress_json) if self.progress_json else {}

    @property
    def request(self) -> dict[str, Any]:
        return json.loads(self.request_json or "{}")


_COLUMNS = tuple(f.name for f in fields(JobRecord))


class JobDatabase:
    """SQLite rows of fine-tune jobs. A connection per operation: safe across processes.

    ``busy_timeout_s``: how long an operation waits for another process's lock before it
    raises `JobStoreError`.
    """

    def __init__(self, home: Path | str, *, busy_timeout_s: float | None = None):
        self.home = Path(home)
        self.path = self.home / DB_NAME
        self.busy_timeout_s = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        self._migrated = False

    def job_dir(self, job_id: str) -> Path:
        return self.home / JOBS_DIR / job_id

    @contextmanager
    def _connect(self, *, create: bool = True) -> Iterator[sqlite3.Connection]:
        if create:
            self.home.mkdir(parents=True, exist_ok=True)
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            if not self._migrated:
                self._add_columns(conn)
            yield conn
        except sqlite3.Error as exc:
            raise self._store_error(exc) from None
        finally:
            if conn is not None:
                conn.close()

    def _add_columns(self, conn: sqlite3.Connection) -> None:
        present = {row["name"] for row in conn.execute("PRAGMA table_info(finetune_jobs)")}
        for name, kind in _ADDED.items():
            if name not in present:
                try:
                    conn.execute(f"ALTER TABLE finetune_jobs ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:  # another process added it meanwhile
                    if "duplicate column" not in str(exc):
                        raise
        self._migrated = True

    def _store_error(self, exc: sqlite3.Error) -> JobStoreError:
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return JobStoreError(
                f"the job store {self.path} is locked by another process (waited "
                f"{self.busy_timeout_s:g} s); nothing was changed: try again once that process "
                f"is done, or stop it", path=self.path)
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in text:
            return JobStoreError(f"the job store {self.path} cannot be opened ({text}); check that "
                                 f"{self.home} exists and is writable (IMAGEGEN_HOME)", path=self.path)
        return JobStoreError(
            f"the job store {self.path} is unreadable ({text}); nothing in it was changed. Move it "
            f"aside (e.g. to {self.path.name}.broken) to start a new store, or restore it from a "
            f"backup; the job folders in {self.home / JOBS_DIR} are kept", path=self.path)

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
        """By our job id or by the trainer's training id."""
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
            card = _card_from_json(row["card_json"])
            cards[card.id] = card
        return list(cards.values())


@functools.lru_cache(maxsize=1024)
def _card_from_json(text: str) -> ModelCard:
    """One card object per stored card: cards are frozen, and the router remembers what it worked
    out per card object."""
    return ModelCard.model_validate_json(text)


def finetune_cards(home: Path | str, provider: str | None = None) -> list[ModelCard]:
    """The succeeded fine-tunes stored under ``home`` (``settings.home``) as model cards;
    ``provider``: only the cards of that provider (``card.provider``)."""
    try:
        cards = JobDatabase(home).finetune_cards()
    except JobStoreError as exc:
        log.warning("fine-tuned models not listed: %s", exc)
        return []  # an unreadable store must not break listing the other models
    return [c for c in cards if provider is None or c.provider == provider]


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
