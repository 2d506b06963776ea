"""Ingest with a transcript, inline audio and an uploaded file; wait, find, download."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone

from conftest import Server, wav_bytes
from earshot import Audio, Conversation, Earshot, Turn


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def test_transcript_ingest_then_wait_and_find(client: Earshot, server: Server) -> None:
    call_id = unique("call")
    result = client.ingest_conversations(
        project_id=server.project_id,
        conversations=[
            {
                "call_id": call_id,
                "source_platform": "retell",
                "conversation_start_at": "2026-11-20T10:00:00Z",
                "transcript": [
                    {"role": "assistant", "content": "Thanks for calling, how can I help?", "timestamp_ms": 0},
                    {"role": "user", "content": "What are your hours?", "timestamp_ms": 2400, "speaker_id": "caller"},
                ],
                "tags": ["support", "hours"],
                "metadata": {"customer_id": "cust_123", "attempt": 2, "vip": True},
            }
        ],
    )
    assert result["status"] == "accepted"
    [ingested] = result["conversations"]
    assert ingested["call_id"] == call_id
    assert ingested["context_token"] == call_id
    assert ingested["duplicate"] is False
    uuid.UUID(ingested["ingest_id"])

    datapoint = client.wait_for_datapoint(call_id, timeout=30)
    assert datapoint["call_id"] == call_id
    assert datapoint["provider"] == "retell"
    assert datapoint["source"] == "sdk"
    assert [turn["content"] for turn in datapoint["input"]] == ["Thanks for calling, how can I help?", "What are your hours?"]
    assert [turn["role"] for turn in datapoint["turns"]] == ["assistant", "user"]
    assert datapoint["input"][1]["timestamp_ms"] == 2400
    assert datapoint["user_metadata"] == {"customer_id": "cust_123", "attempt": 2, "vip": True}
    assert datapoint["tags"] == ["support", "hours"]
    assert datapoint["start_time"].startswith("2026-11-20T10:00:00")
    assert datapoint["model_metadata"]["call_id"] == call_id

    status = client.get_ingest_status(ingested["ingest_id"])
    assert status["state"] == "done"
    assert status["datapoint_id"] == datapoint["id"]
    assert client.get_datapoint(datapoint["id"])["id"] == datapoint["id"]

    found = client.find_datapoints(context_token=call_id)
    assert [item["id"] for item in found] == [datapoint["id"]]
    assert client.find_datapoints(context_token=call_id, tags=["support", "nope"]) == []
    assert len(client.find_datapoints(context_token=call_id, tags_any=["nope", "hours"], provider="retell")) == 1
    assert len(client.find_datapoints(search_value="WHAT ARE YOUR", metadata={"customer_id": "cust_123"}, context_token=call_id)) == 1

    again = client.ingest_conversations(conversations=[{"call_id": call_id, "source_platform": "retell", "transcript": [
        {"role": "assistant", "content": "Thanks for calling, how can I help?", "timestamp_ms": 0},
        {"role": "user", "content": "What are your hours?", "timestamp_ms": 2400}],
        "conversation_start_at": "2026-11-20T10:00:00Z", "tags": ["support", "hours"],
        "metadata": {"customer_id": "cust_123", "attempt": 2, "vip": True}}])  # fmt: skip
    assert again["conversations"][0]["duplicate"] is True


def test_inline_audio_and_legacy_aliases(client: Earshot) -> None:
    mono, stereo = wav_bytes(1.5, 8000, 1, seed=3), wav_bytes(1.0, 16000, 2, seed=4)
    inline_id, legacy_id = unique("inline"), unique("legacy")
    client.ingest_conversations(
        conversations=[
            {"call_id": inline_id, "audio": {"type": "inline_b64", "inline_b64": base64.b64encode(mono).decode()}, "diarization": False},
            {"call_id": legacy_id, "recording_bytes_b64": base64.b64encode(stereo).decode(), "diarization": False},
        ]
    )  # fmt: skip
    inline = client.wait_for_datapoint(inline_id)
    assert inline["audio"]["channels"] == 1
    assert inline["audio"]["duration_ms"] == 1500
    assert inline["transcript_source"] == "none"
    assert inline["model_metadata"]["voice_file_id"] == inline["audio"]["audio_id"]
    assert client.download_audio(inline["id"]) == mono
    legacy = client.wait_for_datapoint(legacy_id)
    assert legacy["audio"]["channels"] == 2
    assert client.download_audio(legacy["id"]) == stereo


def test_uploaded_file_and_typed_inputs(client: Earshot, tmp_path) -> None:
    recording = wav_bytes(12.0, 16000, 1, seed=5)  # several upload chunks
    path = tmp_path / "call.wav"
    path.write_bytes(recording)
    uploaded = client.upload_audio(path)
    assert uploaded["size_bytes"] == len(recording)
    assert uploaded["content_type"] == "audio/wav"
    assert uploaded["voice_file_id"] == uploaded["audio_id"]

    uploaded_id, typed_id = unique("uploaded"), unique("typed")
    client.ingest_conversations(
        conversations=[
            {"call_id": uploaded_id, "audio": {"type": "voice_file_id", "voice_file_id": uploaded["audio_id"]}, "diarization": False},
            Conversation(
                call_id=typed_id,
                context_token=typed_id + "-ctx",
                conversation_start_at=datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc),
                transcript=[Turn("assistant", "Hello, Acme support.", 0, 1800), Turn("user", "Hi!", 2000)],
                audio=Audio.from_bytes(wav_bytes(0.5, 8000, 1, seed=6)),
                tags=["typed"],
                metadata={"team": "billing"},
            ),
        ]
    )  # fmt: skip
    stored = client.wait_for_datapoint(uploaded_id)
    assert stored["audio"]["sha256"] == uploaded["sha256"]
    target = tmp_path / "back.wav"
    info = client.download_audio_to(stored["id"], target)
    assert info["size_bytes"] == len(recording)
    assert target.read_bytes() == recording

    typed = client.wait_for_datapoint(typed_id + "-ctx")
    assert typed["turns"][0]["end_ms"] == 1800
    assert typed["start_time"].startswith("2026-11-20T09:30:00")
    assert typed["transcript_source"] == "client"
    assert typed["audio"]["duration_ms"] == 500
    assert typed["user_metadata"] == {"team": "billing"}
