"""The Replicate adapter: the predictions and trainings APIs, with no paid call made twice.

Modules: `_provider` (the Provider: cards, checks, generate), `_schemas` (each model's input
schema and card, as data), `_translate` (a request to the predictions it needs), `_session`
(HTTP session, retries and reconciling unknown outcomes), `_downloads` (fetching outputs under
size, time and host rules), `_loop` (the event loop the sync API runs on).
"""

from ._provider import ReplicateProvider
from ._session import CallPolicy

__all__ = ["CallPolicy", "ReplicateProvider"]
