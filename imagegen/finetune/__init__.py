"""Provider-neutral LoRA fine-tunes: the request, dataset checks, the durable job store and
the job handle; the training itself is done by a provider's `Trainer`.

    job = gen.finetune(FineTuneRequest(images="./photos", destination="me/my-lora"))
    job.wait(); gen.generate("a photo of TOK", model=job.model)   # or later: gen.job(job.id)

Modules: `_request` (`FineTuneRequest`, masking secret inputs), `_dataset` (finding, checking
and zipping images and captions), `_store` (the SQLite job store under ``IMAGEGEN_HOME``),
`_trainer` (the `Trainer` protocol and `JobContext`), `_job` (`start_finetune`, `FineTuneJob`).
"""

from imagegen.errors import FineTuneError, FineTuneTimeout, JobStoreError

from ._dataset import Dataset, DatasetImage, load_dataset, safe_stem
from ._job import FineTuneJob, JobStore, start_finetune
from ._request import NAMED_INPUTS, REDACTED, FineTuneRequest, LocalTrainOptions, mask_secrets, scrub
from ._store import (
    BEFORE_START,
    NOT_STARTED,
    TERMINAL,
    JobDatabase,
    JobRecord,
    check_safetensors,
    finetune_cards,
)
from ._trainer import JobContext, Trainer, TrainingEstimate, pick_trainer, trainers_of

__all__ = [
    "BEFORE_START", "NAMED_INPUTS", "NOT_STARTED", "REDACTED", "TERMINAL", "Dataset", "DatasetImage", "FineTuneError",
    "FineTuneJob", "FineTuneRequest", "FineTuneTimeout", "JobContext", "JobDatabase", "JobRecord",
    "JobStore", "JobStoreError", "LocalTrainOptions", "Trainer", "TrainingEstimate", "check_safetensors", "finetune_cards",
    "load_dataset", "mask_secrets", "pick_trainer", "safe_stem", "scrub", "start_finetune", "trainers_of",
]
