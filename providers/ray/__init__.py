"""A pool of local workers on Ray, one provider (``ray``) to the router.

Each worker is a Ray actor holding warm `LocalProvider` pipelines (the local adapter itself, run
on the worker's GPU or CPUs); the pool places a request on a worker that has its checkpoint warm
when one is free, else on the least-loaded free worker, and re-runs it elsewhere when a worker
dies. Modules: `_connect` (addresses and connecting, with a timeout), `_worker` (the actor),
`_pool` (placement, queue, faults), `_provider` (the Provider: cards, prepare, generate).

Nothing here imports ``ray`` until a pool is used.
"""

from ._provider import RayProvider

__all__ = ["RayProvider"]
