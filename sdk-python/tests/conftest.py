"""Fixtures: one real `earshot serve` process for the session (see server_process.py), clients of
it, and WAV audio."""

from __future__ import annotations

import io
import struct
import wave
from typing import Iterator, List

import pytest

from server_process import REPO, Server, start_server, stop_server

__all__ = ["REPO", "Server", "start_server", "stop_server", "wav_bytes"]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("earshot-data"))
    yield running
    stop_server(running)


@pytest.fixture()
def client(server: Server):
    from earshot import Earshot

    return Earshot(api_key=server.api_key, base_url=server.url, project=server.project_id)


def wav_bytes(seconds: float = 1.0, rate: int = 8000, channels: int = 1, seed: int = 1) -> bytes:
    """A quiet 16-bit PCM tone; `seed` makes the content differ."""
    frames = int(seconds * rate)
    samples: List[int] = []
    for frame in range(frames):
        value = ((frame % 64) - 32) * (seed + 1)
        samples.extend([value] * channels)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as output:
        output.setnchannels(channels)
        output.setsampwidth(2)
        output.setframerate(rate)
        output.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buffer.getvalue()
