"""A real `earshot serve` process on a free port with its own data directory, for the pytest
suite and the benchmark. The binary is EARSHOT_BIN, or target/debug/earshot (built with cargo when
missing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

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
