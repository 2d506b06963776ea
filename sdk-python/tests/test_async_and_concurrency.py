"""The asyncio client, eight threads at once, and a forked child."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from typing import Dict, List

import pytest

from conftest import Server
from earshot import AsyncEarshot, Earshot, InvalidArgumentError, NotFoundError


def transcript_call(call_id: str) -> Dict[str, object]:
    return {"call_id": call_id, "transcript": [{"role": "user", "content": f"hello from {call_id}", "timestamp_ms": 0}]}


def test_async_client_ingests_waits_finds_and_raises(server: Server) -> None:
    async def scenario() -> None:
        client = AsyncEarshot(api_key=server.api_key, base_url=server.url, project=server.project_id)
        call_ids = [f"async-{uuid.uuid4().hex[:10]}" for _ in range(5)]
        results = await asyncio.gather(*(client.ingest_conversations(conversations=[transcript_call(call_id)]) for call_id in call_ids))
        assert all(result["status"] == "accepted" for result in results)
        datapoints = await asyncio.gather(*(client.wait_for_datapoint(call_id) for call_id in call_ids))
        assert [datapoint["call_id"] for datapoint in datapoints] == call_ids
        found = await client.find_datapoints(context_token=call_ids[0])
        assert found[0]["input"][0]["content"] == f"hello from {call_ids[0]}"
        status = await client.get_ingest_status(results[0]["conversations"][0]["ingest_id"])
        assert status["state"] == "done"
        with pytest.raises(NotFoundError):
            await client.get_datapoint("0193a5d0-0000-7000-8000-000000000000")
        with pytest.raises(InvalidArgumentError):
            await client.ingest_conversations(conversations=[{"call_id": ""}])
        projects = await client.list_projects()
        assert server.project_id in [project["id"] for project in projects]

    asyncio.run(scenario())


def test_eight_threads_ingesting_at_once_all_succeed(client: Earshot) -> None:
    threads_count, calls_per_thread = 8, 25
    barrier = threading.Barrier(threads_count)
    results: List[Dict[str, object]] = []
    errors: List[BaseException] = []
    lock = threading.Lock()
    run_id = uuid.uuid4().hex[:8]

    def worker(index: int) -> None:
        barrier.wait()
        try:
            for call in range(calls_per_thread):
                result = client.ingest_conversations(conversations=[transcript_call(f"thread-{run_id}-{index}-{call}")])
                with lock:
                    results.append(result)
        except BaseException as error:  # noqa: BLE001 - reported below
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == threads_count * calls_per_thread
    assert all(result["status"] == "accepted" and not result["conversations"][0]["duplicate"] for result in results)
    last = client.wait_for_datapoint(f"thread-{run_id}-7-{calls_per_thread - 1}")
    assert last["call_id"].endswith(f"-7-{calls_per_thread - 1}")


def test_a_forked_child_uses_the_client(client: Earshot) -> None:
    client.list_projects()  # the parent's runtime and connection exist before the fork
    call_id = f"forked-{uuid.uuid4().hex[:10]}"
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        status = 1
        try:
            result = client.ingest_conversations(conversations=[transcript_call(call_id)])
            status = 0 if result["status"] == "accepted" else 2
        finally:
            os.write(write_end, bytes([status]))
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        reported = pipe.read()
    _, wait_status = os.waitpid(child, 0)
    assert reported == b"\x00"
    assert os.WEXITSTATUS(wait_status) == 0
    assert client.wait_for_datapoint(call_id)["call_id"] == call_id
    client.list_projects()  # the parent's client still works
