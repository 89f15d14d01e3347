"""Your own quality ratings: pairwise votes kept in SQLite under ``settings.home``, rated by
online Elo and by Bradley–Terry maximum likelihood, with bootstrap confidence intervals; the
gallery of images you generated; and a local web page to compare models blind and vote
(``imagegen arena serve``, `create_arena_app`, extra ``serve``).

Formulas follow the arena convention (LMSYS FastChat): ``P(A beats B) = 1 / (1 + 10^((R_B −
R_A)/400))``, a tie counts half a win for each side, ratings start at / are anchored on 1000.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._ratings import (
    _SCORES,
    BASE,
    ELO_PER_NAT,
    ENOUGH_VOTES,
    INIT_RATING,
    SCALE,
    Battle,
    Rating,
    VoteError,
    Winner,
    _anchor_shift,
    _quantile,
    _winner,
    blend_weight,
    bootstrap,
    bradley_terry,
    expected_score,
    information,
    least_sure_pair,
    online_elo,
    rate,
    standard_error,
    win_matrix,
)
from ._store import (
    VERDICTS,
    Arena,
    Comparison,
    GalleryImage,
    UserRating,
    Vote,
    _arena,
    ratings,
    record_result,
    record_vote,
)

if TYPE_CHECKING:
    from ._web import create_arena_app

__all__ = [
    "BASE", "ELO_PER_NAT", "ENOUGH_VOTES", "INIT_RATING", "SCALE", "VERDICTS", "Arena", "Battle",
    "Comparison", "GalleryImage", "Rating", "UserRating", "Vote", "VoteError", "Winner", "blend_weight",
    "bootstrap", "bradley_terry", "create_arena_app", "expected_score", "information", "least_sure_pair",
    "online_elo", "rate", "ratings", "record_result", "record_vote", "standard_error", "win_matrix",
]
_PRIVATE = (_SCORES, _anchor_shift, _quantile, _winner, _arena)  # kept importable from here


def __getattr__(name: str) -> Any:
    if name == "create_arena_app":  # the web page needs the `serve` extra: import it only when asked
        from ._web import create_arena_app

        return create_arena_app
    raise AttributeError(f"module 'imagegen.arena' has no attribute {name!r}")
