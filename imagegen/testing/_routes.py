"""The emulator's route table: which endpoint answers which method and path."""

from __future__ import annotations

from imagegen.testing import _predictions as p
from imagegen.testing import _resources as r
from imagegen.testing._call import Route, route

_r = route  # short, so the table reads as one line per endpoint

ROUTES: tuple[Route, ...] = (
    _r("POST", "/v1/predictions", p.create_prediction, is_create=True),
    _r("GET", "/v1/predictions",
       lambda f, c: p.list_jobs(f, c, f._store.predictions, "predictions")),
    _r("GET", "/v1/predictions/{id}", p.get_prediction),
    _r("POST", "/v1/predictions/{id}/cancel", p.cancel_prediction),
    _r("GET", "/v1/predictions/{id}/stream", p.stream_prediction),
    _r("POST", "/v1/models/{owner}/{name}/predictions", p.create_model_prediction, is_create=True),
    _r("POST", "/v1/deployments/{owner}/{name}/predictions", p.create_deployment_prediction,
       is_create=True),
    _r("POST", "/v1/models", r.create_model),
    _r("GET", "/v1/models", r.list_models),
    _r("GET", "/v1/models/{owner}/{name}", r.get_model),
    _r("DELETE", "/v1/models/{owner}/{name}", r.delete_model),
    _r("GET", "/v1/models/{owner}/{name}/versions", r.list_versions),
    _r("GET", "/v1/models/{owner}/{name}/versions/{version}", r.get_version),
    _r("POST", "/v1/models/{owner}/{name}/versions/{version}/trainings", p.create_training,
       is_create=True),
    _r("GET", "/v1/trainings", lambda f, c: p.list_jobs(f, c, f._store.trainings, "trainings")),
    _r("GET", "/v1/trainings/{id}", p.get_training),
    _r("POST", "/v1/trainings/{id}/cancel", p.cancel_training),
    _r("POST", "/v1/files", r.create_file),
    _r("GET", "/v1/files", r.list_files),
    _r("GET", "/v1/files/{id}", r.get_file),
    _r("DELETE", "/v1/files/{id}", r.delete_file),
    _r("GET", "/v1/files/{id}/download", r.download_file),
    _r("GET", "/v1/webhooks/default/secret", r.webhook_secret),
    _r("GET", "/v1/account", r.get_account),
    _r("GET", "/v1/hardware", r.list_hardware),
    # Output files, like replicate.delivery: no token needed.
    _r("GET", "/delivery/{id}/{file}", r.delivery, auth=False),
)
