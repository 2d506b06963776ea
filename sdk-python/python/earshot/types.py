"""Typed inputs, an alternative to the plain dictionaries ``ingest_conversations`` also takes.

Each has ``to_dict()`` giving exactly the dictionary shape of ``POST /v0/conversations/ingest``.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional, Union

__all__ = ["Audio", "Conversation", "Turn"]


@dataclass
class Turn:
    """One utterance; ``role`` is ``"user"``, ``"assistant"``, ``"system"`` or ``"tool"``."""

    role: str
    content: str
    timestamp_ms: int = 0
    end_ms: Optional[int] = None

    def to_dict(self) -> Dict[str, Any]:
        turn: Dict[str, Any] = {"role": self.role, "content": self.content, "timestamp_ms": self.timestamp_ms}
        if self.end_ms is not None:
            turn["end_ms"] = self.end_ms
        return turn


@dataclass
class Audio:
    """Where a recording comes from: inline bytes, a URL the server downloads, or an uploaded file."""

    type: str
    inline_b64: Optional[str] = None
    url: Optional[str] = None
    voice_file_id: Optional[str] = None

    @classmethod
    def from_bytes(cls, data: bytes) -> "Audio":
        return cls(type="inline_b64", inline_b64=base64.b64encode(data).decode("ascii"))

    @classmethod
    def from_file(cls, path: Union[str, "os.PathLike[str]"]) -> "Audio":
        """The file's bytes, sent inline; for large files ``upload_audio`` streams instead."""
        with open(path, "rb") as file:
            return cls.from_bytes(file.read())

    @classmethod
    def from_url(cls, url: str) -> "Audio":
        return cls(type="url", url=url)

    @classmethod
    def uploaded(cls, voice_file_id: str) -> "Audio":
        """The ``audio_id`` (also ``voice_file_id``) that ``upload_audio`` returned."""
        return cls(type="voice_file_id", voice_file_id=voice_file_id)

    def to_dict(self) -> Dict[str, Any]:
        value = {"inline_b64": self.inline_b64, "url": self.url, "voice_file_id": self.voice_file_id}.get(self.type)
        return {"type": self.type, self.type: value}


@dataclass
class Conversation:
    """One completed call: a transcript, audio, or both (the transcript wins; the audio is stored)."""

    call_id: str
    transcript: List[Turn] = field(default_factory=list)
    audio: Optional[Audio] = None
    context_token: Optional[str] = None
    source_platform: Optional[str] = None
    conversation_start_at: Optional[Union[datetime, str]] = None
    diarization: Optional[bool] = None
    first_turn: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    metadata: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        conversation: Dict[str, Any] = {"call_id": self.call_id}
        if self.transcript:
            conversation["transcript"] = [turn.to_dict() for turn in self.transcript]
        if self.audio is not None:
            conversation["audio"] = self.audio.to_dict()
        for name in ("context_token", "source_platform", "conversation_start_at", "diarization", "first_turn"):
            value = getattr(self, name)
            if value is not None:
                conversation[name] = value
        if self.tags:
            conversation["tags"] = list(self.tags)
        if self.metadata:
            conversation["metadata"] = dict(self.metadata)
        return conversation
