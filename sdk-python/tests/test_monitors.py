"""Checks and monitors against the real server: calls flagged in the commit that stores them,
found by their issues, a verdict attached from outside and resolved."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conftest import Server
from earshot import AsyncEarshot, Earshot
from earshot.errors import InvalidArgumentError


def call(call_id: str, tag: str, answer_after_ms: int, words: str = "Let me check that.") -> dict:
    return {
        "call_id": call_id,
        "tags": [tag],
        "transcript": [
            {"role": "user", "content": "Hi, my card was charged twice.", "timestamp_ms": 0, "end_ms": 1000},
            {
                "role": "assistant",
                "content": words,
                "timestamp_ms": 1000 + answer_after_ms,
                "end_ms": 2500 + answer_after_ms,
            },
        ],
    }


def test_monitors_flag_calls_and_take_outside_verdicts(client: Earshot, server: Server) -> None:
    tag = f"mon-{uuid.uuid4().hex[:10]}"
    slow = client.create_check(f"slow {tag}", "p95_response_latency_ms", "greater_than", 1500)
    human = client.create_check(
        f"human {tag}", "transcript_contains", "equal", True, phrase="speak to a human"
    )
    assert (slow["version"], slow["threshold"], human["phrase"]) == (1, "1500", "speak to a human")
    with pytest.raises(InvalidArgumentError) as refused:
        client.create_check(f"broken {tag}", "duration_ms", "contains", 1)
    assert [violation.field for violation in refused.value.violations] == ["rule.comparator"]
    monitor = client.create_monitor(f"monitor {tag}", [slow["id"], human["id"]], tags=[tag])
    assert [check["name"] for check in monitor["checks"]] == [f"slow {tag}", f"human {tag}"]

    client.ingest_conversations(
        project_id=server.project_id,
        conversations=[
            call(f"{tag}-fast", tag, 300),
            call(f"{tag}-slow", tag, 2_000),
            call(f"{tag}-human", tag, 300, "Sure. Or do you want to speak to a human?"),
        ],
    )
    for suffix in ["fast", "slow", "human"]:
        client.wait_for_datapoint(f"{tag}-{suffix}", timeout=30)

    def call_ids(**filters: object) -> set:
        return {datapoint["call_id"] for datapoint in client.find_datapoints(**filters)}  # type: ignore[arg-type]

    assert call_ids(tags=[tag], issues_only=True) == {f"{tag}-slow", f"{tag}-human"}
    assert call_ids(failed_check=f"slow {tag}") == {f"{tag}-slow"}
    # Calls sent without a provider verdict match no verdict filter.
    assert call_ids(tags=[tag], successful=False) == set()
    assert call_ids(tags=[tag], sentiment="negative", outcome="voicemail") == set()
    assert call_ids(monitor_id=monitor["id"]) == {f"{tag}-fast", f"{tag}-slow", f"{tag}-human"}
    [slow_call] = client.find_datapoints(call_id=f"{tag}-slow")
    assert slow_call["failed_checks"] == [f"slow {tag}"]
    latency = next(value for value in slow_call["check_values"] if value["name"] == f"slow {tag}")
    assert (latency["value"], latency["value_type"], latency["is_issue"]) == (2000.0, "number", True)
    assert latency["explanation"] == "p95_response_latency_ms is 2000 ms, greater than 1500 ms: an issue"
    assert (latency["check_id"], latency["check_version"], latency["origin"]) == (slow["id"], 1, "monitor")

    summary = client.monitor_summary(monitor["id"], precision="day")
    total = summary["total"]
    assert (total["datapoints"], total["issues"], total["failed_checks"]) == (3, 2, [f"slow {tag}", f"human {tag}"])
    assert total["issue_rate"] == pytest.approx(2 / 3)
    assert total["average_metrics"][f"slow {tag}"] == pytest.approx((300 + 2_000 + 300) / 3)
    assert sum(bucket["datapoints"] for bucket in summary["buckets"]) == 3
    with pytest.raises(InvalidArgumentError):
        client.monitor_summary(monitor["id"], precision="minute")

    # An LLM judge's verdict from outside, then a reviewer resolves it.
    judge = client.create_check(f"judge {tag}", "provider_call_successful", "equal", False)
    [fast_call] = client.find_datapoints(call_id=f"{tag}-fast")
    verdict = {"check_id": judge["id"], "is_issue": True, "value": False, "explanation": "No refund offered."}
    judged = client.attach_check_results(fast_call["id"], [verdict])
    assert judged["failed_checks"] == [f"judge {tag}"]
    attached = next(value for value in judged["check_values"] if value["check_id"] == judge["id"])
    assert (attached["origin"], attached["explanation"], attached["value"]) == ("external", "No refund offered.", False)
    assert call_ids(tags=[tag], issues_only=True) == {f"{tag}-fast", f"{tag}-slow", f"{tag}-human"}
    resolved = client.resolve_issues(fast_call["id"], [judge["id"]])
    assert resolved["failed_checks"] == []
    assert next(value for value in resolved["check_values"] if value["check_id"] == judge["id"])["resolved_time"]
    assert call_ids(tags=[tag], issues_only=True) == {f"{tag}-slow", f"{tag}-human"}

    # A stricter rule is a new version; a monitor's new list of checks raises its version.
    stricter = client.update_check(slow["id"], "p95_response_latency_ms", "greater_than", 1000)
    assert (stricter["version"], client.get_check(slow["id"])["threshold"]) == (2, "1000")
    described = client.update_check(slow["id"], description="Answers over a second")
    assert (described["version"], described["description"]) == (2, "Answers over a second")
    with pytest.raises(InvalidArgumentError) as half:
        client.update_check(slow["id"], "duration_ms")
    assert [violation.field for violation in half.value.violations] == ["comparator"]
    narrowed = client.update_monitor(monitor["id"], f"monitor {tag}", [slow["id"]], tags=[tag])
    assert (narrowed["version"], [check["name"] for check in narrowed["checks"]]) == (2, [f"slow {tag}"])
    fetched = client.get_monitor(monitor["id"])
    assert (fetched["version"], fetched["checks"], fetched["filter"]) == (2, narrowed["checks"], narrowed["filter"])

    client.delete_monitor(monitor["id"])
    assert monitor["id"] not in {found["id"] for found in client.list_monitors()}
    assert f"judge {tag}" in {check["name"] for check in client.list_checks()}
    client.delete_check(judge["id"])


def test_a_backfill_evaluates_calls_stored_before_the_monitor(client: Earshot, server: Server) -> None:
    tag = f"bf-{uuid.uuid4().hex[:10]}"
    client.ingest_conversations(
        project_id=server.project_id,
        conversations=[call(f"{tag}-{index}", tag, 2_000 if index % 2 else 300) for index in range(6)],
    )
    client.wait_for_datapoint(f"{tag}-5", timeout=30)
    slow = client.create_check(f"slow {tag}", "p95_response_latency_ms", "greater_than", 1500)
    monitor = client.create_monitor(f"monitor {tag}", [slow["id"]], tags=[tag])
    assert client.find_datapoints(tags=[tag], issues_only=True) == []

    started = client.backfill_monitor(monitor["id"])
    assert (started["state"], started["total"], started["monitor_id"]) == ("running", 6, monitor["id"])
    done = client.wait_for_backfill(started["id"], timeout=60)
    assert (done["state"], done["processed"], done["matched"], done["issues"]) == ("succeeded", 6, 6, 3)
    assert done["time_finished"] is not None
    assert [backfill["id"] for backfill in client.list_backfills(monitor["id"])] == [started["id"]]
    flagged = {datapoint["call_id"] for datapoint in client.find_datapoints(tags=[tag], issues_only=True)}
    assert flagged == {f"{tag}-1", f"{tag}-3", f"{tag}-5"}
    assert client.monitor_summary(monitor["id"])["total"]["issues"] == 3
    # A monitor may look only at calls the provider judged: these carry no verdict, so a
    # backfill of one over them matches none.
    judged = client.create_monitor(
        f"judged {tag}", [slow["id"]], tags=[tag], successful=False, sentiment="Negative"
    )
    assert (judged["filter"]["successful"], judged["filter"]["sentiment"]) == (False, "Negative")
    none = client.wait_for_backfill(client.backfill_monitor(judged["id"])["id"], timeout=60)
    assert (none["state"], none["matched"]) == ("succeeded", 0)
    client.delete_monitor(judged["id"])
    client.delete_monitor(monitor["id"])
    client.delete_check(slow["id"])


def test_async_client_creates_and_lists_monitors(server: Server) -> None:
    async def scenario() -> None:
        tag = f"amon-{uuid.uuid4().hex[:10]}"
        client = AsyncEarshot(api_key=server.api_key, base_url=server.url, project=server.project_id)
        check = await client.create_check(f"empty {tag}", "empty_transcript", "equal", True)
        monitor = await client.create_monitor(f"monitor {tag}", [check["id"]], provider="custom")
        assert monitor["filter"]["provider"] == "custom"
        assert monitor["id"] in {found["id"] for found in await client.list_monitors()}
        backfill = await client.backfill_monitor(monitor["id"], from_date="2026-01-01T00:00:00Z")
        done = await client.wait_for_backfill(backfill["id"], timeout=60)
        assert (done["state"], done["from_date"]) == ("succeeded", "2026-01-01T00:00:00+00:00")
        assert [found["id"] for found in await client.list_backfills(monitor["id"])] == [backfill["id"]]
        assert (await client.get_backfill(backfill["id"]))["id"] == backfill["id"]
        summary = await client.monitor_summary(monitor["id"], precision="hour")
        assert set(summary) == {"buckets", "total"}
        await client.delete_monitor(monitor["id"])
        await client.delete_check(check["id"])
        assert check["id"] not in {found["id"] for found in await client.list_checks()}

    asyncio.run(scenario())
