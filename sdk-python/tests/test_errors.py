"""Every exception class, raised for its case."""

from __future__ import annotations

import socket

import pytest

from conftest import Server
from earshot import (
    AuthenticationError,
    DeadlineExceededError,
    Earshot,
    EarshotError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    UnavailableError,
)


def test_shape_errors_are_caught_before_sending_and_name_every_field(client: Earshot) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.ingest_conversations(
            conversations=[
                {"call_id": "fine", "transcript": [{"role": "user", "content": "hi"}]},
                {"call_id": "bad-role", "transcript": [{"role": "robot", "content": "beep"}]},
                {"call_id": "typo", "trnscript": []},
                {"call_id": "bad-audio", "audio": {"type": "url", "url": "https://x/a.wav"}, "recording_url": "https://x/b.wav"},
            ]
        )
    error = caught.value
    assert error.code == "invalid_argument"
    assert isinstance(error, ValueError)
    assert [violation.field for violation in error.violations] == [
        "conversations[1].transcript[0].role",
        "conversations[2].trnscript",
        "conversations[3].audio",
    ]
    assert "unknown role" in error.violations[0].description


def test_values_that_are_not_json_are_refused_by_path(client: Earshot) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.ingest_conversations(conversations=[{"call_id": "bad-meta", "transcript": [], "metadata": {"when": {1, 2}}}])
    [violation] = caught.value.violations
    assert violation.field == "conversations[0].metadata.when"
    assert "not set" in violation.description


def test_server_validation_names_the_field_and_stores_nothing(client: Earshot) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        client.ingest_conversations(
            conversations=[
                {"call_id": "stored-never-1", "transcript": [{"role": "user", "content": "hi"}]},
                {"call_id": "", "transcript": [{"role": "user", "content": "hi"}]},
            ]
        )
    assert FieldViolation("conversations[1].call_id", caught.value.violations[0].description) in caught.value.violations
    assert client.find_datapoints(call_id="stored-never-1") == []


def test_unknown_key_is_an_authentication_error(server: Server) -> None:
    stranger = Earshot(api_key="es_notarealkey", base_url=server.url, project=server.project_id)
    with pytest.raises(AuthenticationError) as caught:
        stranger.list_projects()
    assert caught.value.code == "unauthenticated"
    assert isinstance(caught.value, EarshotError)


def test_a_read_key_may_not_ingest(client: Earshot, server: Server) -> None:
    reader = client.create_api_key("reader", ["read"])
    assert reader["scopes"] == ["read"]
    read_only = Earshot(api_key=reader["secret"], base_url=server.url, project=server.project_id)
    with pytest.raises(PermissionDeniedError):
        read_only.ingest_conversations(conversations=[{"call_id": "x", "transcript": [{"role": "user", "content": "hi"}]}])
    read_only.find_datapoints(limit=1)
    client.revoke_api_key(reader["id"])
    with pytest.raises(AuthenticationError):
        read_only.find_datapoints(limit=1)


def test_missing_things(client: Earshot, tmp_path) -> None:
    with pytest.raises(NotFoundError) as caught:
        client.get_datapoint("0193a5d0-0000-7000-8000-000000000000")
    assert caught.value.code == "not_found"
    with pytest.raises(FileNotFoundError):
        client.upload_audio(tmp_path / "nope.wav")


def test_waiting_past_the_timeout(client: Earshot) -> None:
    with pytest.raises(DeadlineExceededError) as caught:
        client.wait_for_datapoint("never-sent", timeout=0.2)
    assert isinstance(caught.value, TimeoutError)
    assert "never-sent" in caught.value.message


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port once the probe socket is closed.
    offline = Earshot(api_key="es_x", base_url=f"http://127.0.0.1:{port}", connect_timeout=2)
    with pytest.raises(UnavailableError) as caught:
        offline.list_projects()
    assert caught.value.code == "unavailable"


def test_a_malformed_url_fails_at_construction() -> None:
    with pytest.raises(InvalidArgumentError):
        Earshot(api_key="es_x", base_url="not a url")


def test_past_the_key_budget_is_rate_limited(tmp_path) -> None:
    from conftest import start_server, stop_server

    limited = start_server(tmp_path / "limited", {"EARSHOT_SERVER__API_KEY_RATE_LIMIT_PER_MINUTE": "2"})
    try:
        client = Earshot(api_key=limited.api_key, base_url=limited.url, project=limited.project_id)
        client.list_projects()
        client.list_projects()
        with pytest.raises(RateLimitedError) as caught:
            client.list_projects()
        assert caught.value.code == "resource_exhausted"
        assert "2 requests a minute" in caught.value.message
    finally:
        stop_server(limited)
