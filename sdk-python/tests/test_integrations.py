"""Integrations, projects and API keys."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import Server
from earshot import Earshot, InvalidArgumentError, NotFoundError


def test_integration_lifecycle(client: Earshot) -> None:
    created = client.integrations.create(
        "twilio",
        {"auth_token": "0123456789abcdef0123456789abcdef"},
        display_name="Support line",
        options={"twilio": {"account_sid": "AC11111111111111111111111111111111"}, "ip_allowlist": ["203.0.113.0/24"]},
    )
    assert created["provider"] == "twilio"
    assert created["webhook_auth_type"] == "twilio_signature"
    assert created["status"] == "active"
    assert created["public_id"] in created["webhook_url"]
    assert created["secrets"][0]["name"] == "auth_token"
    assert "0123456789abcdef0123456789abcdef" not in repr(created)
    assert created["options"]["ip_allowlist"] == ["203.0.113.0/24"]

    assert client.integrations.get(created["id"])["display_name"] == "Support line"
    assert created["id"] in [integration["id"] for integration in client.integrations.list(provider="twilio")]
    renamed = client.integrations.update(created["id"], display_name="Sales line")
    assert renamed["display_name"] == "Sales line"
    rotated = client.integrations.rotate(
        created["id"], {"auth_token": "fedcba9876543210fedcba9876543210"}, grace_period=timedelta(hours=1)
    )
    assert sorted(secret["state"] for secret in rotated["secrets"]) == ["current", "previous"]
    assert client.integrations.set_status(created["id"], "disabled")["status"] == "disabled"
    assert client.integrations.set_status(created["id"], "active")["status"] == "active"
    assert client.integrations.deliveries(created["id"]) == []

    with pytest.raises(InvalidArgumentError) as caught:
        client.integrations.create("twilio", {"auth_token": "short"})
    assert [violation.field for violation in caught.value.violations] == ["secrets[auth_token]"]
    with pytest.raises(InvalidArgumentError) as unknown:
        client.integrations.create("skype", {})
    assert unknown.value.violations[0].field == "provider"

    client.integrations.delete(created["id"])
    with pytest.raises(NotFoundError):
        client.integrations.get(created["id"])


def test_projects_and_restricted_keys(client: Earshot, server: Server) -> None:
    project = client.create_project("Outbound")
    assert project["name"] == "Outbound"
    dialer_key = client.create_api_key("dialer", ["ingest", "read"], project_id=project["id"])
    assert dialer_key["secret"].startswith("es_")
    assert dialer_key["project_id"] == project["id"]
    assert "dialer" in [key["name"] for key in client.list_api_keys()]

    # A key restricted to one project ingests there without naming it.
    dialer = Earshot(api_key=dialer_key["secret"], base_url=server.url)
    dialer.ingest_conversations(conversations=[{"call_id": "outbound-1", "transcript": [{"role": "assistant", "content": "Hi, this is Acme."}]}])
    datapoint = dialer.wait_for_datapoint("outbound-1")
    assert datapoint["project_id"] == project["id"]
    assert client.find_datapoints(call_id="outbound-1") == []
    assert len(client.find_datapoints(call_id="outbound-1", project_id=project["id"])) == 1
