"""Ingest throughput of the Python SDK against a plain httpx client posting the same JSON to
`POST /v0/conversations/ingest`, for batches of 1 and 100 conversations. A benchmark, not a test.

    .venv/bin/pip install httpx
    cargo build --release -p earshot-server
    EARSHOT_BIN=target/release/earshot .venv/bin/python sdk-python/bench/ingest_throughput.py

Both clients talk to one fresh server (release build, SQLite, temporary data directory), send the
same conversations (unique call ids, so every one is stored), one request at a time and reusing
their connection. Rounds alternate between the clients so that drift on a shared machine hits both;
the figures are medians over rounds, and the ratio is taken within each round. Throughput is
bounded by the server's durable commit; the client's CPU time a conversation shows what each
client itself costs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx  # noqa: E402

from earshot import Earshot  # noqa: E402
from server_process import start_server, stop_server  # noqa: E402


def conversation(call_id: str) -> Dict[str, Any]:
    return {
        "call_id": call_id,
        "source_platform": "custom",
        "transcript": [
            {"role": "assistant", "content": "Thanks for calling Acme, how can I help?", "timestamp_ms": 0},
            {"role": "user", "content": "I'd like to move my delivery to Friday, please.", "timestamp_ms": 2600},
            {"role": "assistant", "content": "Done: it will arrive on Friday between 9 and 12.", "timestamp_ms": 5200},
            {"role": "user", "content": "Great, thank you.", "timestamp_ms": 8100},
        ],
        "tags": ["deliveries"],
        "metadata": {"customer_id": "cust_123", "order": 48213},
    }


def batches(count: int, size: int) -> List[List[Dict[str, Any]]]:
    run = uuid.uuid4().hex[:10]
    return [[conversation(f"{run}-{batch}-{item}") for item in range(size)] for batch in range(count)]


def timed(send: Callable[[List[Dict[str, Any]]], None], work: List[List[Dict[str, Any]]]) -> Tuple[float, float]:
    """Conversations a second over one round, and the client process's CPU microseconds (every
    thread, the SDK's I/O threads included) a conversation."""
    conversations = sum(len(batch) for batch in work)
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch in work:
        send(batch)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return conversations / elapsed, cpu / conversations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=400, help="requests a round for batches of 1")
    parser.add_argument("--batch-requests", type=int, default=20, help="requests a round for batches of 100")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        server = start_server(Path(data_dir))
        try:
            sdk = Earshot(api_key=server.api_key, base_url=server.url, project=server.project_id)
            http = httpx.Client(base_url=server.url, headers={"api-key": server.api_key}, timeout=30)

            def via_sdk(batch: List[Dict[str, Any]]) -> None:
                result = sdk.ingest_conversations(project_id=server.project_id, conversations=batch)
                assert len(result["conversations"]) == len(batch)

            def via_httpx(batch: List[Dict[str, Any]]) -> None:
                response = http.post(
                    "/v0/conversations/ingest", json={"project_id": server.project_id, "conversations": batch}
                )
                response.raise_for_status()
                assert len(response.json()["conversations"]) == len(batch)

            # Warm both connections and the server.
            timed(via_sdk, batches(20, 1))
            timed(via_httpx, batches(20, 1))
            print(f"server {server.url}, {arguments.rounds} rounds, medians")
            print(f"{'batch':>5} {'sdk conv/s':>11} {'httpx conv/s':>13} {'sdk/httpx':>10} {'sdk cpu us/conv':>16} {'httpx cpu us/conv':>18}")
            for size, requests in ((1, arguments.requests), (100, arguments.batch_requests)):
                ratios, sdk_rates, http_rates, sdk_cpu, http_cpu = [], [], [], [], []
                for _ in range(arguments.rounds):
                    sdk_rate, sdk_micros = timed(via_sdk, batches(requests, size))
                    http_rate, http_micros = timed(via_httpx, batches(requests, size))
                    sdk_rates.append(sdk_rate)
                    http_rates.append(http_rate)
                    ratios.append(sdk_rate / http_rate)
                    sdk_cpu.append(sdk_micros)
                    http_cpu.append(http_micros)
                median = statistics.median
                print(
                    f"{size:>5} {median(sdk_rates):>11.0f} {median(http_rates):>13.0f} {median(ratios):>10.2f}"
                    f" {median(sdk_cpu):>16.0f} {median(http_cpu):>18.0f}"
                )
            http.close()
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
