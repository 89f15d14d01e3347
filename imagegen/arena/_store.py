"""The arena's one SQLite file (``<home>/arena.sqlite``): pairwise votes, the gallery of images
the arena page (or ``imagegen generate --record``) produced, and the blind comparisons.

Image bytes live in the database and are found by a random id, never by a path.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._ratings import (
    _SCORES,
    Battle,
    Rating,
    VoteError,
    Winner,
    _winner,
    bradley_terry,
    information,
    rate,
)

if TYPE_CHECKING:
    from ..request import GenerateRequest
    from ..result import GenerateResult

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    prompt TEXT NOT NULL,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    winner TEXT NOT NULL CHECK (winner IN ('a', 'b', 'tie')),
    image_a TEXT,
    image_b TEXT
)
""",
    """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    prompt TEXT NOT NULL,
    request_json TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    seed INTEGER,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    infotext TEXT NOT NULL,
    data BLOB NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS comparisons (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    prompt TEXT NOT NULL,
    request_json TEXT NOT NULL,
    model_left TEXT NOT NULL,
    model_right TEXT NOT NULL,
    image_left TEXT,
    image_right TEXT,
    vote_id INTEGER
)
""",
)

#: What the page's four buttons mean. "Both bad" is a tie for the ratings (as in LMSYS's arena),
#: kept apart in the store so you can tell the two apart later.
VERDICTS = ("left", "right", "tie", "both_bad")


@dataclass(frozen=True)
class Vote:
    id: int
    created_at: float
    prompt: str
    model_a: str
    model_b: str
    winner: Winner
    image_a: str | None = None  # a path, URL or id of the image shown
    image_b: str | None = None
    both_bad: bool = False  # a tie where neither image was good enough


class UserRating(tuple):
    """``(rating, games)`` as the router reads it, plus ``effective_games``: the information in
    those games, in even games (see `information`), by which a blend weights the rating."""

    effective_games: float

    def __new__(cls, rating: float, games: int, effective_games: float) -> UserRating:
        self = super().__new__(cls, (rating, games))
        self.effective_games = effective_games
        return self

    @property
    def rating(self) -> float:
        return self[0]

    @property
    def games(self) -> int:
        return self[1]


@dataclass(frozen=True)
class GalleryImage:
    id: str
    created_at: float
    source: str  # "arena" (the page) or "cli" (imagegen generate --record)
    prompt: str
    request: dict[str, Any]
    model: str
    provider: str
    cost_usd: float
    seed: int | None
    width: int
    height: int
    format: str
    infotext: str


@dataclass
class Comparison:
    id: str
    created_at: float
    prompt: str
    request: dict[str, Any]
    model_left: str
    model_right: str
    image_left: str | None = None
    image_right: str | None = None
    vote_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_IMAGE_COLUMNS = ("id, created_at, source, prompt, request_json, model, provider, cost_usd, seed, width, "
                  "height, format, infotext")


def new_id() -> str:
    return secrets.token_hex(8)


def valid_id(value: str) -> bool:
    return len(value) == 16 and all(c in "0123456789abcdef" for c in value)


class Arena:
    """Pairwise votes, the gallery and blind comparisons in one SQLite file (``<home>/arena.sqlite``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def at_home(cls, home: str | Path) -> Arena:
        return cls(Path(home) / "arena.sqlite")

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=10)
        for statement in _SCHEMA:
            connection.execute(statement)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(votes)")}
        if "both_bad" not in columns:  # files written before "both bad" existed
            connection.execute("ALTER TABLE votes ADD COLUMN both_bad INTEGER NOT NULL DEFAULT 0")
        return connection

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            with db:
                yield db
        finally:
            db.close()

    # -- votes ---------------------------------------------------------------------------

    def record_vote(self, prompt: str, model_a: str, model_b: str, winner: str, *,
                    image_a: str | Path | None = None, image_b: str | Path | None = None,
                    both_bad: bool = False) -> Vote:
        """``winner``: "a", "b", "tie", "both_bad" (a tie where neither was good), or the id of
        the winning model."""
        if not prompt or not prompt.strip():
            raise VoteError("prompt must not be empty: a vote records what the images were asked for")
        if not model_a or not model_b:
            raise VoteError("model_a and model_b must name the two models compared")
        if model_a == model_b:
            raise VoteError(f"model_a and model_b are both {model_a!r}: a vote compares two models")
        if winner in ("both_bad", "both-bad", "bad"):
            winner, both_bad = "tie", True
        winner = _winner(winner, model_a, model_b)
        if both_bad and winner != "tie":
            raise VoteError("winner: a 'both bad' vote is a tie, it cannot also have a winner")
        image_a, image_b = (str(i) if i is not None else None for i in (image_a, image_b))
        created = time.time()
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO votes (created_at, prompt, model_a, model_b, winner, image_a, image_b, both_bad) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (created, prompt, model_a, model_b, winner, image_a, image_b, int(both_bad)))
            vote_id = cursor.lastrowid
        return Vote(vote_id or 0, created, prompt, model_a, model_b, winner, image_a, image_b, both_bad)

    def votes(self) -> list[Vote]:
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT id, created_at, prompt, model_a, model_b, winner, image_a, image_b, "
                              "both_bad FROM votes ORDER BY id").fetchall()
        return [Vote(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8])) for row in rows]

    def battles(self) -> list[Battle]:
        return [(v.model_a, v.model_b, _SCORES[v.winner]) for v in self.votes()]

    def ratings(self, *, method: Literal["bt", "elo"] = "bt", rounds: int = 200, seed: int = 0,
                k: float = 4.0) -> list[Rating]:
        """Ratings, best first, with 95 % bootstrap intervals (``rounds=0``: no intervals)."""
        return rate(self.battles(), method=method, rounds=rounds, seed=seed, k=k)

    def ratings_for_router(self) -> dict[str, UserRating]:
        """Card id -> (Bradley–Terry rating, games), without intervals (fast); each value also
        carries ``effective_games``, the confidence a blend weights it by."""
        battles = self.battles()
        fitted = bradley_terry(battles)
        info = information(battles, fitted)
        return {r.model: UserRating(r.rating, r.games, info.get(r.model, 0.0))
                for r in rate(battles, rounds=0)}

    # -- the gallery ---------------------------------------------------------------------

    def record_result(self, request: GenerateRequest, result: GenerateResult, *,
                      source: str = "cli") -> list[GalleryImage]:
        """Keep every image of ``result`` (bytes, infotext, model, cost share, seed) in the gallery."""
        images = list(result.images)
        share = (result.cost_usd or 0.0) / len(images) if images else 0.0
        request_json = request.model_dump(mode="json", exclude_defaults=True)
        rows: list[GalleryImage] = []
        with self._db() as db:
            for image in images:
                seeded = dict(request_json)
                if image.seed is not None:
                    seeded["seed"] = image.seed
                seeded.pop("batch_size", None)
                seeded.pop("batch_count", None)
                seeded["model"] = result.model or request_json.get("model")
                row = GalleryImage(new_id(), time.time(), source, request.prompt, seeded, result.model,
                                   result.provider, share, image.seed, image.width, image.height,
                                   image.format, image.infotext or "")
                db.execute(f"INSERT INTO images ({_IMAGE_COLUMNS}, data) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (row.id, row.created_at, row.source, row.prompt, json.dumps(row.request),
                            row.model, row.provider, row.cost_usd, row.seed, row.width, row.height,
                            row.format, row.infotext, image.data))
                rows.append(row)
        return rows

    def gallery(self, *, limit: int = 200, offset: int = 0) -> list[GalleryImage]:
        """Images, newest first (without their bytes)."""
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute(f"SELECT {_IMAGE_COLUMNS} FROM images ORDER BY created_at DESC, rowid DESC "
                              "LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [_gallery_image(row) for row in rows]

    def gallery_count(self) -> int:
        if not self.path.exists():
            return 0
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    def image(self, image_id: str) -> GalleryImage | None:
        if not valid_id(image_id) or not self.path.exists():
            return None
        with self._db() as db:
            row = db.execute(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ?", (image_id,)).fetchone()
        return _gallery_image(row) if row else None

    def image_bytes(self, image_id: str) -> tuple[bytes, str] | None:
        """(bytes, format) of one stored image, by its id."""
        if not valid_id(image_id) or not self.path.exists():
            return None
        with self._db() as db:
            row = db.execute("SELECT data, format FROM images WHERE id = ?", (image_id,)).fetchone()
        return (bytes(row[0]), row[1]) if row else None

    # -- blind comparisons ---------------------------------------------------------------

    def new_comparison(self, request: GenerateRequest, model_left: str, model_right: str) -> Comparison:
        comparison = Comparison(new_id(), time.time(), request.prompt,
                                request.model_dump(mode="json", exclude_defaults=True), model_left, model_right)
        with self._db() as db:
            db.execute("INSERT INTO comparisons (id, created_at, prompt, request_json, model_left, model_right) "
                       "VALUES (?, ?, ?, ?, ?, ?)",
                       (comparison.id, comparison.created_at, comparison.prompt, json.dumps(comparison.request),
                        model_left, model_right))
        return comparison

    def set_comparison_image(self, comparison_id: str, side: Literal["left", "right"], image_id: str) -> None:
        column = {"left": "image_left", "right": "image_right"}[side]
        with self._db() as db:
            db.execute(f"UPDATE comparisons SET {column} = ? WHERE id = ?", (image_id, comparison_id))

    def comparison(self, comparison_id: str) -> Comparison | None:
        if not valid_id(comparison_id) or not self.path.exists():
            return None
        with self._db() as db:
            row = db.execute("SELECT id, created_at, prompt, request_json, model_left, model_right, image_left, "
                             "image_right, vote_id FROM comparisons WHERE id = ?", (comparison_id,)).fetchone()
        if row is None:
            return None
        return Comparison(row[0], row[1], row[2], json.loads(row[3]), *row[4:])

    def vote_on(self, comparison_id: str, verdict: str) -> Vote:
        """Record the vote on a blind comparison once: ``verdict`` is one of `VERDICTS`."""
        if verdict not in VERDICTS:
            raise VoteError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
        comparison = self.comparison(comparison_id)
        if comparison is None:
            raise VoteError(f"comparison {comparison_id!r} does not exist")
        if comparison.vote_id is not None:
            raise VoteError("comparison: this pair has already been voted on")
        if comparison.image_left is None or comparison.image_right is None:
            raise VoteError("comparison: both images must be shown before a vote")
        winner = {"left": "a", "right": "b", "tie": "tie", "both_bad": "tie"}[verdict]
        vote = self.record_vote(comparison.prompt, comparison.model_left, comparison.model_right, winner,
                                image_a=f"gallery:{comparison.image_left}",
                                image_b=f"gallery:{comparison.image_right}", both_bad=verdict == "both_bad")
        with self._db() as db:
            db.execute("UPDATE comparisons SET vote_id = ? WHERE id = ? AND vote_id IS NULL",
                       (vote.id, comparison_id))
        return vote

    def in_blind_comparison(self, image_id: str) -> bool:
        """Whether the image belongs to a comparison not voted on yet (its metadata would name the model)."""
        if not valid_id(image_id) or not self.path.exists():
            return False
        with self._db() as db:
            row = db.execute("SELECT 1 FROM comparisons WHERE vote_id IS NULL AND (image_left = ? OR image_right = ?) "
                             "LIMIT 1", (image_id, image_id)).fetchone()
        return row is not None

    def blind_images(self) -> dict[str, str]:
        """Image id -> comparison id, for every image of a comparison not voted on yet."""
        if not self.path.exists():
            return {}
        with self._db() as db:
            rows = db.execute("SELECT id, image_left, image_right FROM comparisons WHERE vote_id IS NULL").fetchall()
        return {image: cid for cid, *images in rows for image in images if image}

    def vote(self, vote_id: int) -> Vote | None:
        for vote in self.votes():
            if vote.id == vote_id:
                return vote
        return None


def _gallery_image(row: tuple) -> GalleryImage:
    return GalleryImage(row[0], row[1], row[2], row[3], json.loads(row[4]), *row[5:])


# -- module-level shortcuts (what `imagegen arena vote|ratings` calls) ---------------------


def _arena(home: str | Path | None) -> Arena:
    if home is None:
        from ..settings import Settings

        home = Settings().home
    return Arena.at_home(home)


def record_vote(prompt: str, model_a: str, model_b: str, winner: str, *, image_a: str | None = None,
                image_b: str | None = None, home: str | Path | None = None) -> Vote:
    """Record one comparison in the arena under ``home`` (default: ``settings.home``)."""
    return _arena(home).record_vote(prompt, model_a, model_b, winner, image_a=image_a, image_b=image_b)


def ratings(*, home: str | Path | None = None, method: Literal["bt", "elo"] = "bt", rounds: int = 200,
            seed: int = 0) -> list[Rating]:
    """Your ratings from every recorded vote, best first, with 95 % bootstrap intervals."""
    return _arena(home).ratings(method=method, rounds=rounds, seed=seed)


def record_result(request: GenerateRequest, result: GenerateResult, *, source: str = "cli",
                  home: str | Path | None = None) -> list[GalleryImage]:
    """Keep ``result``'s images in the arena gallery under ``home`` (what ``generate --record`` calls)."""
    return _arena(home).record_result(request, result, source=source)
