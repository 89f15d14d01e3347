"""Testing tools: ``FakeReplicate``, an offline emulator of Replicate's HTTP API.

    with imagegen.testing.FakeReplicate() as fake:
        client = replicate.Client(api_token=fake.api_token, base_url=fake.base_url)
"""

from imagegen.testing._delivery import WebhookDelivery
from imagegen.testing._fake import FakeReplicate
from imagegen.testing._faults import Faults
from imagegen.testing._images import requested_size_of
from imagegen.testing._server import RecordedRequest
from imagegen.testing._state import JobRecord

__all__ = ["FakeReplicate", "Faults", "JobRecord", "RecordedRequest", "WebhookDelivery",
           "requested_size_of"]
