"""FakeReplicate under load: a hundred concurrent predictions keep faithful timing, clients that
hang up leave no noise, and the fast image renderer draws the documented pattern exactly."""

from __future__ import annotations

import hashlib
import io
import json
import selectors
import socket
import struct
import time

import pytest
from PIL import Image

from imagegen.testing import FakeReplicate
from imagegen.testing._images import render_image, small_size

SCHNELL = "/v1/models/black-forest-labs/flux-schnell/predictions"


def _create_bytes(fake: FakeReplicate, seed: int, fmt: str = "webp") -> bytes:
    body = json.dumps({"input": {"prompt": "load", "seed": seed, "output_format": fmt}}).encode()
    return (f"POST {SCHNELL} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {fake.api_token}\r\n"
            f"Content-Type: application/json\r\nPrefer: wait\r\nContent-Length: {len(body)}\r\n"
            f"\r\n").encode() + body


def _connect(fake: FakeReplicate) -> socket.socket:
    host, port = fake.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _hang_up(sock: socket.socket) -> None:
    # SO_LINGER 0: close() sends a TCP reset, as a killed client's kernel does.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _wait_for_handlers(fake: FakeReplicate, timeout: float = 5.0) -> None:
    """Until every connection's handler has finished (its reply attempted)."""
    deadline = time.monotonic() + timeout
    while fake._server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not fake._server.open_connections


def test_hundred_concurrent_predictions_each_finish_processing_time_after_their_create():
    jobs, processing = 100, 0.5
    with FakeReplicate(processing_time_s=processing) as fake:
        # A near-free client: every request is written before the first reply is due, on a
        # fresh connection each, so the emulator alone sets the timing.
        requests = [_create_bytes(fake, seed) for seed in range(jobs)]
        sockets = []
        for request in requests:
            sock = _connect(fake)
            sock.sendall(request)
            sockets.append(sock)
        selector = selectors.DefaultSelector()
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        answered = 0
        deadline = time.monotonic() + 10
        while answered < jobs and time.monotonic() < deadline:
            for key, _ in selector.select(1):
                selector.unregister(key.fileobj)
                answered += 1
        for sock in sockets:
            sock.close()
        records = list(fake.predictions.values())

    assert answered == jobs and all(r.status == "succeeded" for r in records)
    late = max(r.completed_at - r.created_at for r in records) - processing
    span = max(r.completed_at for r in records) - min(r.created_at for r in records)
    # Before per-job wake-ups and off-path rendering: up to ~0.8 s late, span ~processing + 0.8.
    assert late < 0.2, f"a job finished {late:.3f} s after its processing time"
    assert span < processing + 0.35, f"first create to last completion took {span:.3f} s"


def test_client_hanging_up_before_its_sync_reply_prints_no_traceback(capfd):
    with FakeReplicate(processing_time_s=0.1) as fake:
        sock = _connect(fake)
        sock.sendall(_create_bytes(fake, seed=1))
        deadline = time.monotonic() + 5
        while not fake.predictions and time.monotonic() < deadline:
            time.sleep(0.005)
        _hang_up(sock)
        [record] = fake.predictions.values()
        assert fake.wait_for(record.id).status == "succeeded"
        _wait_for_handlers(fake)  # it tried to write the reply to the reset socket
    assert "Traceback" not in capfd.readouterr().err


def test_client_hanging_up_mid_request_prints_no_traceback(capfd):
    with FakeReplicate() as fake:
        sock = _connect(fake)
        sock.sendall(f"POST {SCHNELL} HTTP/1.1\r\nHost: test\r\nContent-Le".encode())
        time.sleep(0.05)
        _hang_up(sock)
        _wait_for_handlers(fake)
        assert fake.create_count == 0
    assert "Traceback" not in capfd.readouterr().err


def _reference_pixels(prompt: str, seed: int, index: int, requested: tuple[int, int]) -> bytes:
    """The pattern as documented, pixel by pixel: gradient c0 -> c1 along x + y, XOR a 4x4
    block grid, all from sha256(prompt NUL seed NUL index)."""
    digest = hashlib.sha256(f"{prompt}\x00{seed}\x00{index}".encode()).digest()
    width, height = small_size(*requested)
    c0, c1 = digest[0:3], digest[3:6]
    out = bytearray()
    for y in range(height):
        for x in range(width):
            t = (x + y) / max(1, width + height - 2)
            block = digest[6 + (4 * (4 * y // height) + 4 * x // width) % 26]
            out.extend(int(c0[c] * (1 - t) + c1[c] * t) ^ (block & 0x3F) for c in range(3))
    return bytes(out)


@pytest.mark.parametrize("requested", [(1024, 1024), (1344, 768), (384, 672), (100, 63),
                                       (5000, 1), (1, 3000), (64, 64), (3, 2)])
def test_rendered_png_has_exactly_the_reference_pattern(requested):
    data = render_image("a fox", 7, 1, requested, "png")
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == small_size(*requested)
        assert image.tobytes() == _reference_pixels("a fox", 7, 1, requested)


def test_rendering_is_fast_enough_for_a_hundred_jobs_finishing_together():
    render_image.cache_clear()
    started = time.process_time()
    for seed in range(100):
        render_image("speed", seed, 0, (1024, 1024), "webp")
    # The per-pixel version took ~6 ms of CPU per image; 100 images must fit well in 0.3 s.
    assert time.process_time() - started < 0.3
