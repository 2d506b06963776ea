"""Event endpoints through the Python SDK against a real earshot process, with a receiver in the
test: create (a secret once, sealed headers never back), list, pause and resume, a test event
that verifies with the returned secret, its attempt, a replay under the same webhook-id, a Slack
endpoint's readable message, refusals that name the field, and the asyncio client."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Dict, Iterator, Tuple

import pytest

import earshot
from server_process import Server, start_server, stop_server

Received = Tuple[Dict[str, str], bytes]


@pytest.fixture(scope="module")
def events_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that may send to loopback receivers and looks for due events every 20 ms."""
    running = start_server(
        tmp_path_factory.mktemp("earshot-events"),
        {"EARSHOT_FETCH__ALLOW_PRIVATE_NETWORKS": "true", "EARSHOT_EVENTS__POLL_INTERVAL_MS": "20"},
    )
    yield running
    stop_server(running)


@pytest.fixture()
def receiver() -> Iterator[Tuple[str, "queue.Queue[Received]"]]:
    got: "queue.Queue[Received]" = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
            body = self.rfile.read(int(self.headers["content-length"]))
            got.put(({name.lower(): value for name, value in self.headers.items()}, body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hooks", got
    server.shutdown()


def client_of(server: Server) -> earshot.Earshot:
    return earshot.Earshot(api_key=server.api_key, base_url=server.url, project=server.project_id)


def test_endpoint_lifecycle(events_server: Server, receiver: Tuple[str, "queue.Queue[Received]"]) -> None:
    url, got = receiver
    client = client_of(events_server)
    endpoints = client.event_endpoints
    created = endpoints.create(
        url,
        event_types=["call.processed"],
        filter={"tags": ["vip"]},
        description="crm",
        headers={"X-Team-Token": "t0k3n"},
    )
    secret = created["secret"]
    endpoint = created["endpoint"]
    assert secret.startswith("whsec_")
    assert endpoint["kind"] == "webhook" and endpoint["enabled"]
    assert endpoint["filter"]["tags"] == ["vip"]
    assert endpoint["header_names"] == ["x-team-token"]
    assert "t0k3n" not in json.dumps(endpoint)
    assert endpoint["id"] in [listed["id"] for listed in endpoints.list()]

    paused = endpoints.update(endpoint["id"], enabled=False, description="paused")
    assert (paused["enabled"], paused["disabled_reason"], paused["description"]) == (False, "disabled", "paused")
    with pytest.raises(earshot.InvalidArgumentError) as refused:
        endpoints.send_test_event(endpoint["id"])
    assert [violation.field for violation in refused.value.violations] == ["endpoint_id"]
    assert endpoints.update(endpoint["id"], enabled=True)["enabled"]

    event_id = endpoints.send_test_event(endpoint["id"])
    headers, body = got.get(timeout=30)
    assert headers["webhook-id"] == event_id
    assert headers["x-team-token"] == "t0k3n"
    assert earshot.verify_webhook(headers, body, secret)["type"] == "endpoint.test"
    # The attempt is logged just after the receiver answered it.
    deadline = time.monotonic() + 30
    attempts = endpoints.attempts(endpoint["id"], event_id=event_id, outcome="succeeded")
    while not attempts and time.monotonic() < deadline:
        attempts = endpoints.attempts(endpoint["id"], event_id=event_id, outcome="succeeded")
    assert attempts, "the test event's attempt logged within 30 s"
    assert attempts[0]["http_status"] == 200 and attempts[0]["event_type"] == "endpoint.test"
    assert endpoints.replay(endpoint["id"], event_id=event_id) == 1
    assert got.get(timeout=30)[0]["webhook-id"] == event_id
    window_start = datetime.now(timezone.utc) - timedelta(hours=1)
    assert endpoints.replay(endpoint["id"], failed_from=window_start) == 0

    rotated = endpoints.rotate_secret(endpoint["id"], grace_period=timedelta(hours=1))
    assert rotated["endpoint"]["active_secrets"] == 2 and rotated["secret"] != secret
    with pytest.raises(earshot.InvalidArgumentError) as refused:
        endpoints.update(endpoint["id"], url="ftp://example.com")
    assert [violation.field for violation in refused.value.violations] == ["url"]
    with pytest.raises(earshot.InvalidArgumentError) as refused:
        endpoints.attempts(endpoint["id"], outcome="maybe")
    assert [violation.field for violation in refused.value.violations] == ["outcome"]
    endpoints.delete(endpoint["id"])
    with pytest.raises(earshot.NotFoundError):
        endpoints.get(endpoint["id"])


def test_a_slack_endpoint_gets_readable_messages(
    events_server: Server, receiver: Tuple[str, "queue.Queue[Received]"]
) -> None:
    url, got = receiver
    endpoints = client_of(events_server).event_endpoints
    slack = endpoints.create(url, kind="slack", alert_cooldown=timedelta(minutes=30))["endpoint"]
    assert (slack["kind"], slack["event_types"], slack["alert_cooldown_seconds"]) == ("slack", ["check.failed"], 1800)
    endpoints.send_test_event(slack["id"])
    message = json.loads(got.get(timeout=30)[1])
    assert message["text"].startswith(":white_check_mark:")
    endpoints.delete(slack["id"])


def test_the_asyncio_client_manages_endpoints(
    events_server: Server, receiver: Tuple[str, "queue.Queue[Received]"]
) -> None:
    url, got = receiver

    async def scenario() -> None:
        client = earshot.AsyncEarshot(
            api_key=events_server.api_key, base_url=events_server.url, project=events_server.project_id
        )
        created = await client.event_endpoints.create(url)
        endpoint_id = created["endpoint"]["id"]
        assert (await client.event_endpoints.get(endpoint_id))["event_types"] == []
        event_id = await client.event_endpoints.send_test_event(endpoint_id)
        headers, body = await asyncio.get_running_loop().run_in_executor(None, lambda: got.get(timeout=30))
        assert headers["webhook-id"] == event_id
        assert earshot.verify_webhook(headers, body, created["secret"])["data"]["endpoint_id"] == endpoint_id
        await client.event_endpoints.delete(endpoint_id)
        assert endpoint_id not in [listed["id"] for listed in await client.event_endpoints.list()]

    asyncio.run(scenario())
