"""Transcribes one file with faster-whisper the way earshot does (one channel a speaker for
stereo, turns ordered by time) and prints the same JSON shape as `earshot transcribe`.

Run with the bench virtual environment's Python: faster_whisper_run.py FILE MODEL_DIR
"""

import json
import sys
import time

from faster_whisper import WhisperModel, decode_audio


def main() -> None:
    path, model_dir = sys.argv[1], sys.argv[2]
    loading = time.monotonic()
    model = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=2)
    load_ms = int((time.monotonic() - loading) * 1000)
    started = time.monotonic()
    channels = decode_audio(path, sampling_rate=16000, split_stereo=True)
    left, right = channels
    stereo = float(abs(left - right).max()) > 1e-3
    sources = [left, right] if stereo else [left]
    turns = []
    for index, samples in enumerate(sources):
        segments, _info = model.transcribe(
            samples, language="en", beam_size=1, vad_filter=True, word_timestamps=True
        )
        for segment in segments:
            turns.append(
                {
                    "role": ("assistant" if index == 0 else "user"),
                    "content": segment.text.strip(),
                    "start_ms": int(segment.start * 1000),
                    "end_ms": int(segment.end * 1000),
                    "channel": index + 1 if stereo else None,
                }
            )
    turns.sort(key=lambda turn: turn["start_ms"])
    elapsed_ms = int((time.monotonic() - started) * 1000)
    print(
        json.dumps(
            {
                "turns": turns,
                "speaker_labels_estimated": not stereo,
                "channels": 2 if stereo else 1,
                "duration_ms": int(len(left) / 16),
                "load_ms": load_ms,
                "elapsed_ms": elapsed_ms,
            }
        )
    )


if __name__ == "__main__":
    main()
