"""Export as JSON Lines, deletion with its audit log, and retention, against the real server."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from pathlib import Path

import pytest

from conftest import Server, wav_bytes
from earshot import AsyncEarshot, Earshot
from earshot.errors import InvalidArgumentError


def store_calls(client: Earshot, server: Server, tag: str, count: int) -> list:
    calls = [f"{tag}-{index}" for index in range(count)]
    conversations = [
        {
            "call_id": call_id,
            "transcript": [{"role": "user", "content": f"line of {call_id}", "timestamp_ms": 0}],
            "tags": [tag],
        }
        for call_id in calls
    ]
    # The first call also carries a recording.
    conversations[0]["audio"] = {"type": "inline_b64", "inline_b64": base64.b64encode(wav_bytes(seed=7)).decode()}
    conversations[0]["diarization"] = False
    client.ingest_conversations(project_id=server.project_id, conversations=conversations)
    return [client.wait_for_datapoint(call_id, timeout=30) for call_id in calls]


def test_export_then_delete_by_call_id_id_and_filter(client: Earshot, server: Server, tmp_path: Path) -> None:
    tag = f"life-{uuid.uuid4().hex[:10]}"
    stored = store_calls(client, server, tag, 4)

    path = tmp_path / "calls.jsonl"
    assert client.export_datapoints(path, tags=[tag], include_audio_links=True) == 4
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["call_id"] for line in lines) == sorted(d["call_id"] for d in stored)
    with_audio = [line for line in lines if line.get("audio_url")]
    assert [line["call_id"] for line in with_audio] == [f"{tag}-0"]
    assert with_audio[0]["audio_url"].endswith(f"/v0/datapoints/{with_audio[0]['id']}/audio")

    deletion = client.delete_datapoints(call_id=f"{tag}-1")
    assert deletion["removed"]["datapoints"] == 1
    assert deletion["removed"]["ingests"] == 1
    assert deletion["filter"]["call_id"] == f"{tag}-1"
    assert client.find_datapoints(call_id=f"{tag}-1") == []

    by_id = client.delete_datapoints([stored[0]["id"]])
    assert by_id["removed"] == {"datapoints": 1, "ingests": 1, "delivery_bodies": 0, "recordings": 1}

    rest = client.delete_datapoints(tags=[tag])
    assert rest["removed"]["datapoints"] == 2
    assert client.export_datapoints(path, tags=[tag]) == 0
    assert path.read_text() == ""

    logged = [entry["id"] for entry in client.list_deletions(limit=50)]
    assert [deletion["id"], by_id["id"], rest["id"]] == [d for d in reversed(logged) if d in {deletion["id"], by_id["id"], rest["id"]}]


def test_a_deletion_must_name_its_calls(client: Earshot) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.delete_datapoints()
    assert [violation.field for violation in caught.value.violations] == ["filter"]


def test_retention_is_set_per_project(client: Earshot) -> None:
    project = client.create_project(f"retained-{uuid.uuid4().hex[:8]}")
    unset = {"datapoint_days": None, "audio_days": None, "delivery_body_days": None, "delivery_days": None}
    assert project["retention"] == unset
    updated = client.set_project_retention(project["id"], datapoint_days=90, audio_days=30, delivery_days=60)
    expected = {"datapoint_days": 90, "audio_days": 30, "delivery_body_days": None, "delivery_days": 60}
    assert updated["retention"] == expected
    listed = [p for p in client.list_projects() if p["id"] == project["id"]]
    assert listed[0]["retention"] == expected
    with pytest.raises(InvalidArgumentError) as caught:
        client.set_project_retention(project["id"], delivery_body_days=40, delivery_days=10)
    assert [violation.field for violation in caught.value.violations] == ["retention.delivery_body_days"]
    with pytest.raises(InvalidArgumentError) as caught:
        client.set_project_retention(project["id"], datapoint_days=0)
    assert [violation.field for violation in caught.value.violations] == ["retention.datapoint_days"]


def test_async_export_and_delete(server: Server, tmp_path: Path) -> None:
    sync = Earshot(api_key=server.api_key, base_url=server.url, project=server.project_id)
    tag = f"alife-{uuid.uuid4().hex[:10]}"
    store_calls(sync, server, tag, 2)

    async def run() -> tuple:
        client = AsyncEarshot(api_key=server.api_key, base_url=server.url, project=server.project_id)
        written = await client.export_datapoints(tmp_path / "a.jsonl", tags=[tag])
        deletion = await client.delete_datapoints(tags=[tag])
        return written, deletion

    written, deletion = asyncio.run(run())
    assert written == 2
    assert deletion["removed"]["datapoints"] == 2


def test_relevance_order_puts_the_best_match_first(client: Earshot, server: Server) -> None:
    word = f"zq{uuid.uuid4().hex[:8]}"
    filler = "the caller asked about opening hours and parking at the store"
    texts = {"once": f"{word} {filler} {filler}", "thrice": f"{word} {word} {word} please", "twice": f"{word} {word} {filler}"}
    client.ingest_conversations(
        project_id=server.project_id,
        conversations=[
            {"call_id": f"{word}-{name}", "transcript": [{"role": "user", "content": text, "timestamp_ms": 0}]}
            for name, text in texts.items()
        ],
    )
    ranked = client.find_datapoints(search_value=word, order="relevance")
    assert [d["call_id"] for d in ranked] == [f"{word}-thrice", f"{word}-twice", f"{word}-once"]
    newest = client.find_datapoints(search_value=word)
    assert sorted(d["call_id"] for d in newest) == sorted(d["call_id"] for d in ranked)
    with pytest.raises(InvalidArgumentError) as caught:
        client.find_datapoints(order="relevance")
    assert [violation.field for violation in caught.value.violations] == ["order"]
