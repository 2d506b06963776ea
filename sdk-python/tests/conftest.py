"""A real `earshot serve` process, started once per session on a free port with a temporary data
directory. The binary is EARSHOT_BIN, or target/debug/earshot (built with cargo when missing)."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Server:
    url: str
    api_key: str
    project_id: str
    process: subprocess.Popen
    data_dir: Path


def earshot_binary() -> Path:
    explicit = os.environ.get("EARSHOT_BIN")
    if explicit:
        return Path(explicit)
    binary = REPO / "target" / "debug" / "earshot"
    if not binary.exists():
        subprocess.run(["cargo", "build", "-p", "earshot-server", "--bin", "earshot"], cwd=REPO, check=True)
    return binary


def start_server(data_dir: Path, env: Optional[Dict[str, str]] = None) -> Server:
    binary = earshot_binary()
    environment = {**os.environ, "EARSHOT_LOG__FILTER": "warn", **(env or {})}
    bootstrap = subprocess.run(
        [str(binary), "--data-dir", str(data_dir), "bootstrap"],
        env=environment, check=True, capture_output=True, text=True,
    )  # fmt: skip
    created = json.loads(bootstrap.stdout)
    process = subprocess.Popen(
        [str(binary), "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", "serve"],
        env=environment, stdout=subprocess.PIPE, stderr=sys.stderr, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    # The server prints its bound address once it accepts connections.
    for line in process.stdout:
        if line.startswith("earshot: listening on "):
            url = line.split("listening on ", 1)[1].strip()
            return Server(url, created["api_key"], created["project_id"], process, data_dir)
    process.wait()
    raise RuntimeError(f"earshot serve exited with {process.returncode} before listening")


def stop_server(server: Server) -> None:
    server.process.terminate()
    server.process.wait(timeout=30)


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
