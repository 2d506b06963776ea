"""Audio-only calls through the Python SDK, transcribed by a real server with the installed
speech models (scripts/test runs `earshot models install` into earshot-data/models first)."""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from server_process import REPO, Server, start_server, stop_server

LINES: List[Tuple[int, str]] = [
    (0, "Thank you for calling City Dental. How can I help you today?"),
    (1, "Hi, I would like to book a cleaning for next Tuesday morning."),
    (0, "Sure. We have an opening in the afternoon. Does that work for you?"),
]


@pytest.fixture(scope="module")
def asr_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    models = REPO / "earshot-data" / "models"
    assert (models / "ggml-tiny.en-q8_0.bin").is_file(), "run `earshot models install` first"
    running = start_server(tmp_path_factory.mktemp("earshot-asr"), {"EARSHOT_ASR__MODEL_DIR": str(models)})
    yield running
    stop_server(running)


def stereo_call(directory: Path) -> bytes:
    """The lines spoken by two espeak-ng voices, one a channel, 16 kHz 16-bit WAV (sox)."""
    tracks: List[List[str]] = [[], []]
    for index, (speaker, text) in enumerate(LINES):
        voice = ["-v", "en-us", "-p", "35"] if speaker == 0 else ["-v", "en-gb+f3", "-p", "60"]
        raw = directory / f"line{index}.wav"
        subprocess.run(["espeak-ng", *voice, "-s", "165", "-w", str(raw), text], check=True)
        line = directory / f"line{index}-16k.wav"
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(line), "pad", "0", "0.7"], check=True)
        silent = directory / f"line{index}-silent.wav"
        subprocess.run(["sox", str(line), str(silent), "vol", "0"], check=True)
        for channel in (0, 1):
            tracks[channel].append(str(line if channel == speaker else silent))
    channels = []
    for channel, parts in enumerate(tracks):
        joined = directory / f"channel{channel}.wav"
        subprocess.run(["sox", *parts, str(joined)], check=True)
        channels.append(str(joined))
    stereo = directory / "call.wav"
    subprocess.run(["sox", "-M", *channels, str(stereo)], check=True)
    return stereo.read_bytes()


def words(text: str) -> List[str]:
    return [w for w in (re.sub(r"[^a-z0-9']", "", t.lower()) for t in text.split()) if w]


def test_an_audio_only_stereo_call_is_transcribed_with_roles_in_order(asr_server: Server, tmp_path: Path) -> None:
    from earshot import Earshot

    client = Earshot(api_key=asr_server.api_key, base_url=asr_server.url, project=asr_server.project_id)
    call_id = f"py-asr-{uuid.uuid4().hex[:8]}"
    audio = base64.b64encode(stereo_call(tmp_path)).decode()
    client.ingest_conversations(
        project_id=asr_server.project_id,
        conversations=[{"call_id": call_id, "audio": {"type": "inline_b64", "inline_b64": audio}, "diarization": True}],
    )
    datapoint = client.wait_for_datapoint(call_id, timeout=120)
    assert datapoint["transcript_source"] == "asr"
    assert datapoint["speaker_labels_estimated"] is False
    assert [turn["role"] for turn in datapoint["turns"]] == ["assistant", "user", "assistant"]
    assert [turn["channel"] for turn in datapoint["turns"]] == [1, 2, 1]
    reference = [w for _speaker, text in LINES for w in words(text)]
    heard = [w for turn in datapoint["turns"] for w in words(turn["content"])]
    found = sum(1 for w in set(reference) if w in heard)
    assert found >= 0.8 * len(set(reference)), (found, heard)
    starts = [turn["start_ms"] for turn in datapoint["turns"]]
    assert starts == sorted(starts)
