from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from earshot import _native
from earshot.types import Conversation

ConversationInput = Union[Mapping[str, Any], Conversation]
PathLike = Union[str, "os.PathLike[str]"]
Time = Union[datetime, str]

DEFAULT_BASE_URL = "http://127.0.0.1:8080"


def _native_client(
    api_key: Optional[str], base_url: Optional[str], project: Optional[str], timeout: float, connect_timeout: float
) -> _native.Client:
    return _native.Client(
        base_url or os.environ.get("EARSHOT_BASE_URL") or DEFAULT_BASE_URL,
        api_key or os.environ.get("EARSHOT_API_KEY"),
        project or os.environ.get("EARSHOT_PROJECT_ID"),
        timeout,
        connect_timeout,
    )


def _conversation_dicts(conversations: Iterable[ConversationInput]) -> List[Any]:
    return [item.to_dict() if isinstance(item, Conversation) else item for item in conversations]


def _find_query(**filters: Any) -> Dict[str, Any]:
    return {name: value for name, value in filters.items() if value is not None}


def _threshold(value: Union[str, float, bool, None]) -> Optional[str]:
    """A check's threshold as the server reads it: text, a number, or true/false."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _seconds(value: Union[float, timedelta, None]) -> Optional[float]:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _time_text(value: Optional[Time]) -> Optional[str]:
    """A time as the server reads it: ISO 8601 text (a naive ``datetime`` is UTC)."""
    return value.isoformat() if isinstance(value, datetime) else value


class Earshot:
    """A client of one earshot server.

    ``api_key``, ``base_url`` and ``project`` default to ``EARSHOT_API_KEY``, ``EARSHOT_BASE_URL``
    (else ``http://127.0.0.1:8080``) and ``EARSHOT_PROJECT_ID``. ``project`` is the project id
    calls use when they name none. Nothing is sent until the first call. Safe to share between
    threads; network calls release the GIL.
    """

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        project: Optional[str] = None,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self._native = _native_client(api_key, base_url, project, timeout, connect_timeout)
        self.integrations = Integrations(self._native)
        self.event_endpoints = EventEndpoints(self._native)

    def ingest_conversations(
        self,
        project_id: Optional[str] = None,
        conversations: Iterable[ConversationInput] = (),
        *,
        mut_id: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Stores a batch of calls; returns ``{"status": "accepted", "conversations": [{"call_id",
        "context_token", "ingest_id", "duplicate"}]}`` once every one is durably stored. One invalid
        conversation raises :class:`~earshot.errors.InvalidArgumentError` naming each bad field,
        and nothing is stored."""
        result: Dict[str, Any] = self._native.ingest_conversations(
            _conversation_dicts(conversations), project_id, mut_id, False
        )
        return result

    def upload_audio(self, path: PathLike, *, project_id: Optional[str] = None) -> Dict[str, Any]:
        """Streams a file up; returns ``{"audio_id", "voice_file_id", "sha256", "size_bytes",
        "content_type"}``. Use it as ``{"type": "voice_file_id", "voice_file_id": ...}``."""
        result: Dict[str, Any] = self._native.upload_audio(os.fspath(path), project_id, False)
        return result

    def get_ingest_status(self, ingest_id: str) -> Dict[str, Any]:
        """``state`` is queued, processing, awaiting_transcription, done, failed or dead."""
        result: Dict[str, Any] = self._native.get_ingest_status(ingest_id, False)
        return result

    def wait_for_datapoint(self, context_token: str, timeout: float = 30.0) -> Dict[str, Any]:
        """Waits for the datapoint of ``context_token`` and returns it; raises
        :class:`~earshot.errors.DeadlineExceededError` (a ``TimeoutError``) after ``timeout`` seconds."""
        result: Dict[str, Any] = self._native.wait_for_datapoint(context_token, timeout, False)
        return result

    def find_datapoints(
        self,
        context_token: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        provider: Optional[str] = None,
        *,
        project_id: Optional[str] = None,
        call_id: Optional[str] = None,
        source: Optional[str] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
        order: Optional[str] = None,
        issues_only: bool = False,
        failed_check: Optional[str] = None,
        monitor_id: Optional[str] = None,
        successful: Optional[bool] = None,
        sentiment: Optional[str] = None,
        outcome: Optional[str] = None,
        limit: int = 100,
    ) -> List[Dict[str, Any]]:
        """Datapoints matching every filter, newest call first, at most ``limit``. ``tags`` must
        all be present, ``tags_any`` at least one; ``search_value`` is words of the transcript
        that must all occur, or phrases in double quotes, whole words, case- and
        accent-insensitive. ``order="relevance"`` puts the best transcript matches first (among
        the 2,000 newest matching calls) instead of the newest call. ``issues_only`` keeps calls
        with an unresolved issue, ``failed_check`` those on which the check of that name is one,
        ``monitor_id`` those the monitor matched; ``successful``, ``sentiment`` and ``outcome``
        match the provider's verdicts (case ignored); each datapoint carries ``check_values`` and
        ``failed_checks``."""
        query = _find_query(
            project_id=project_id, context_token=context_token, call_id=call_id, provider=provider,
            source=source, tags=tags, tags_any=tags_any, metadata=metadata, from_date=from_date,
            to_date=to_date, search_value=search_value, integration_id=integration_id, order=order,
            issues_only=issues_only or None, failed_check=failed_check, monitor_id=monitor_id,
            successful=successful, sentiment=sentiment, outcome=outcome, limit=limit,
        )  # fmt: skip
        result: List[Dict[str, Any]] = self._native.find_datapoints(query, False)
        return result

    def get_datapoint(self, datapoint_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.get_datapoint(datapoint_id, False)
        return result

    def export_datapoints(
        self,
        path: PathLike,
        *,
        project_id: Optional[str] = None,
        context_token: Optional[str] = None,
        call_id: Optional[str] = None,
        provider: Optional[str] = None,
        source: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
        include_audio_links: bool = False,
    ) -> int:
        """Writes every datapoint matching the filters (those of :meth:`find_datapoints`) to
        ``path`` as JSON Lines, newest call first, each once, streamed a page at a time; returns
        how many were written. With ``include_audio_links``, calls with a stored recording carry
        ``audio_url``, which downloads it with the API key."""
        query = _find_query(
            project_id=project_id, context_token=context_token, call_id=call_id, provider=provider,
            source=source, tags=tags, tags_any=tags_any, metadata=metadata, from_date=from_date,
            to_date=to_date, search_value=search_value, integration_id=integration_id,
        )  # fmt: skip
        result: int = self._native.export_datapoints(query, os.fspath(path), include_audio_links, False)
        return result

    def delete_datapoints(
        self,
        datapoint_ids: Optional[Sequence[str]] = None,
        *,
        project_id: Optional[str] = None,
        context_token: Optional[str] = None,
        call_id: Optional[str] = None,
        provider: Optional[str] = None,
        source: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Deletes calls with everything stored of them (admin scope): the ones of
        ``datapoint_ids``, or every call matching the filters (a call id, a context token, ...).
        Filters that name nothing are refused. Returns the audit record: ``{"id", "actor",
        "reason", "filter", "request_time", "finish_time", "removed": {"datapoints", "ingests",
        "delivery_bodies", "recordings"}}``. A deleted call delivered again is stored again as
        new."""
        query = _find_query(
            project_id=project_id, context_token=context_token, call_id=call_id, provider=provider,
            source=source, tags=tags, tags_any=tags_any, metadata=metadata, from_date=from_date,
            to_date=to_date, search_value=search_value, integration_id=integration_id,
        )  # fmt: skip
        result: Dict[str, Any] = self._native.delete_datapoints(list(datapoint_ids or ()), query, False)
        return result

    def list_deletions(self, limit: int = 100) -> List[Dict[str, Any]]:
        """Deletions by request and by retention, newest first (admin scope)."""
        result: List[Dict[str, Any]] = self._native.list_deletions(limit, False)
        return result

    def set_project_retention(
        self,
        project_id: Optional[str] = None,
        *,
        datapoint_days: Optional[int] = None,
        audio_days: Optional[int] = None,
        delivery_body_days: Optional[int] = None,
        delivery_days: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Replaces how long the project keeps its calls, its recordings and its webhook
        deliveries' bodies and log entries, in days; ``None`` keeps calls and recordings forever
        and deliveries as the server's settings say (admin scope)."""
        result: Dict[str, Any] = self._native.set_project_retention(
            project_id, datapoint_days, audio_days, delivery_body_days, delivery_days, False
        )
        return result

    def download_audio(self, datapoint_id: str) -> bytes:
        """The stored recording of a datapoint."""
        result: bytes = self._native.download_audio(datapoint_id, None, False)
        return result

    def download_audio_to(self, datapoint_id: str, path: PathLike) -> Dict[str, Any]:
        """Streams the recording into ``path``; returns its audio information."""
        result: Dict[str, Any] = self._native.download_audio(datapoint_id, os.fspath(path), False)
        return result

    def list_projects(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = self._native.list_projects(False)
        return result

    def create_project(self, name: str) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.create_project(name, False)
        return result

    def create_api_key(
        self, name: str, scopes: Sequence[str] = ("ingest",), *, project_id: Optional[str] = None
    ) -> Dict[str, Any]:
        """``scopes`` from admin, ingest, read. The result's ``secret`` is the key, shown only now."""
        result: Dict[str, Any] = self._native.create_api_key(name, list(scopes), project_id, False)
        return result

    def list_api_keys(self, include_revoked: bool = False) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = self._native.list_api_keys(include_revoked, False)
        return result

    def revoke_api_key(self, api_key_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.revoke_api_key(api_key_id, False)
        return result

    def create_check(
        self,
        name: str,
        measure: str,
        comparator: str,
        threshold: Union[str, float, bool, None] = None,
        *,
        phrase: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Creates a check (admin scope): ``measure comparator threshold`` describes the bad
        case, e.g. ``create_check("slow", "p95_response_latency_ms", "greater_than", 1500)``.
        Measures and comparators are listed in docs/API.md; a bad rule raises
        :class:`~earshot.errors.InvalidArgumentError` naming ``rule.measure``,
        ``rule.comparator``, ``rule.threshold`` or ``rule.phrase``."""
        result: Dict[str, Any] = self._native.create_check(
            name, measure, comparator, _threshold(threshold), phrase, description, False
        )
        return result

    def list_checks(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = self._native.list_checks(False)
        return result

    def delete_check(self, check_id: str) -> None:
        """Refused while a monitor uses the check; its results stay on their calls."""
        self._native.delete_check(check_id, False)

    def create_monitor(
        self,
        name: str,
        check_ids: Sequence[str],
        *,
        project_id: Optional[str] = None,
        provider: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
        successful: Optional[bool] = None,
        sentiment: Optional[str] = None,
        outcome: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Creates a monitor (admin scope): every call stored from now on that matches the
        filters (as in :meth:`find_datapoints`) gets the checks' results, in the commit that
        stores it."""
        monitor_filter = _find_query(
            project_id=project_id, provider=provider, tags=tags, tags_any=tags_any,
            metadata=metadata, search_value=search_value, integration_id=integration_id,
            successful=successful, sentiment=sentiment, outcome=outcome,
        )  # fmt: skip
        result: Dict[str, Any] = self._native.create_monitor(
            name, list(check_ids), monitor_filter, description, False
        )
        return result

    def list_monitors(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = self._native.list_monitors(False)
        return result

    def delete_monitor(self, monitor_id: str) -> None:
        self._native.delete_monitor(monitor_id, False)

    def attach_check_results(
        self, datapoint_id: str, results: Sequence[Mapping[str, Any]]
    ) -> Dict[str, Any]:
        """Attaches results computed elsewhere (an LLM judge, a reviewer) to a call (ingest
        scope), each ``{"check_id", "is_issue", "value", "explanation"}``; attaching again for a
        check replaces its result. Returns the datapoint."""
        result: Dict[str, Any] = self._native.attach_check_results(
            datapoint_id, [dict(item) for item in results], False
        )
        return result

    def resolve_issues(
        self, datapoint_id: str, check_ids: Sequence[str], *, reopen: bool = False
    ) -> Dict[str, Any]:
        """Marks the call's issues of these checks resolved (or, with ``reopen``, open again).
        Returns the datapoint."""
        result: Dict[str, Any] = self._native.resolve_issues(
            datapoint_id, list(check_ids), reopen, False
        )
        return result

    def get_check(self, check_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.get_check(check_id, False)
        return result

    def update_check(
        self,
        check_id: str,
        measure: Optional[str] = None,
        comparator: Optional[str] = None,
        threshold: Union[str, float, bool, None] = None,
        *,
        phrase: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Changes a check's description and, given ``measure`` and ``comparator``, its rule: a
        different rule is a new version; results name the version that produced them."""
        result: Dict[str, Any] = self._native.update_check(
            check_id, measure, comparator, _threshold(threshold), phrase, description, False
        )
        return result

    def get_monitor(self, monitor_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.get_monitor(monitor_id, False)
        return result

    def update_monitor(
        self,
        monitor_id: str,
        name: str,
        check_ids: Sequence[str],
        *,
        project_id: Optional[str] = None,
        provider: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
        successful: Optional[bool] = None,
        sentiment: Optional[str] = None,
        outcome: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Replaces a monitor's whole definition (as :meth:`create_monitor` takes it); calls
        stored from then on are evaluated by it, and a change to its checks raises its
        ``version``."""
        monitor_filter = _find_query(
            project_id=project_id, provider=provider, tags=tags, tags_any=tags_any,
            metadata=metadata, search_value=search_value, integration_id=integration_id,
            successful=successful, sentiment=sentiment, outcome=outcome,
        )  # fmt: skip
        result: Dict[str, Any] = self._native.update_monitor(
            monitor_id, name, list(check_ids), monitor_filter, description, False
        )
        return result

    def backfill_monitor(
        self,
        monitor_id: str,
        *,
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
    ) -> Dict[str, Any]:
        """Starts evaluating a monitor over the calls already stored (admin scope), those that
        took place in ``[from_date, to_date)`` or all, newest first, each as when it is stored
        again (by every monitor, its earlier results replaced). Returns the backfill at once;
        it resumes where it was after a restart. See :meth:`wait_for_backfill`."""
        result: Dict[str, Any] = self._native.backfill_monitor(
            monitor_id, _time_text(from_date), _time_text(to_date), False
        )
        return result

    def get_backfill(self, backfill_id: str) -> Dict[str, Any]:
        """A backfill: its ``state`` (running, succeeded, failed) and progress (``processed`` of
        ``total``, ``matched``, ``issues``)."""
        result: Dict[str, Any] = self._native.get_backfill(backfill_id, False)
        return result

    def wait_for_backfill(self, backfill_id: str, timeout: float = 600.0) -> Dict[str, Any]:
        """Polls a backfill until it ends; :class:`~earshot.errors.DeadlineExceededError` after
        ``timeout`` seconds."""
        result: Dict[str, Any] = self._native.wait_for_backfill(
            backfill_id, timeout, False
        )
        return result

    def list_backfills(self, monitor_id: str) -> List[Dict[str, Any]]:
        """A monitor's backfills, newest first."""
        result: List[Dict[str, Any]] = self._native.list_backfills(monitor_id, False)
        return result

    def monitor_summary(
        self,
        monitor_id: str,
        *,
        precision: str = "hour",
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
    ) -> Dict[str, Any]:
        """What a monitor found per ``precision`` (``"hour"`` or ``"day"``, UTC) on the calls
        that took place in ``[from_date, to_date)`` (by default the last 48 hours, or 30 days):
        ``{"buckets": [...], "total": {...}}``, each with ``group`` (the bucket's start),
        ``datapoints``, ``issues``, ``issue_rate``, ``average_metrics`` (check name to mean),
        ``failed_checks`` and ``checks``."""
        result: Dict[str, Any] = self._native.monitor_summary(
            monitor_id, precision, _time_text(from_date), _time_text(to_date), False
        )
        return result


class Integrations:
    """Provider integrations (``client.integrations``): where a voice platform posts finished calls."""

    def __init__(self, native: _native.Client) -> None:
        self._native = native

    def create(
        self,
        provider: str,
        secrets: Optional[Mapping[str, str]] = None,
        *,
        display_name: Optional[str] = None,
        auth_type: Optional[str] = None,
        options: Optional[Mapping[str, Any]] = None,
        project_id: Optional[str] = None,
    ) -> Dict[str, Any]:
        """``provider``: twilio, retell, vapi, elevenlabs, livekit, bland, voicekit or webhook. The
        result's ``webhook_url`` is what to configure at the provider; secrets never come back."""
        result: Dict[str, Any] = self._native.create_integration(
            provider, dict(secrets or {}), display_name, auth_type, dict(options) if options else None, project_id, False
        )
        return result

    def list(self, project_id: Optional[str] = None, provider: Optional[str] = None) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = self._native.list_integrations(project_id, provider, False)
        return result

    def get(self, integration_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.get_integration(integration_id, False)
        return result

    def update(
        self, integration_id: str, *, display_name: Optional[str] = None, options: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.update_integration(
            integration_id, display_name, dict(options) if options else None, False
        )
        return result

    def rotate(
        self, integration_id: str, secrets: Mapping[str, str], *, grace_period: Union[float, timedelta, None] = None
    ) -> Dict[str, Any]:
        """Makes ``secrets`` current; the old ones stay valid for ``grace_period`` (default 24 h)."""
        result: Dict[str, Any] = self._native.rotate_integration(
            integration_id, dict(secrets), _seconds(grace_period), False
        )
        return result

    def set_status(self, integration_id: str, status: str) -> Dict[str, Any]:
        """``status``: active or disabled (a disabled integration answers 404 to its webhooks)."""
        result: Dict[str, Any] = self._native.set_integration_status(integration_id, status, False)
        return result

    def delete(self, integration_id: str) -> None:
        self._native.delete_integration(integration_id, False)

    def deliveries(self, integration_id: str, verdict: Optional[str] = None, limit: int = 100) -> List[Dict[str, Any]]:
        """Requests that reached the webhook, newest first; ``verdict``: accepted, duplicate, ignored, rejected."""
        result: List[Dict[str, Any]] = self._native.list_deliveries(integration_id, verdict, limit, False)
        return result

    def replay(self, integration_id: str, delivery_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.replay_delivery(integration_id, delivery_id, False)
        return result


class AsyncEarshot:
    """:class:`Earshot` for asyncio: the same methods, as coroutines."""

    def __init__(
        self,
        api_key: Optional[str] = None,
        base_url: Optional[str] = None,
        project: Optional[str] = None,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        self._native = _native_client(api_key, base_url, project, timeout, connect_timeout)
        self.integrations = AsyncIntegrations(self._native)
        self.event_endpoints = AsyncEventEndpoints(self._native)

    async def ingest_conversations(
        self,
        project_id: Optional[str] = None,
        conversations: Iterable[ConversationInput] = (),
        *,
        mut_id: Optional[str] = None,
    ) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.ingest_conversations(
            _conversation_dicts(conversations), project_id, mut_id, True
        )
        return result

    async def upload_audio(self, path: PathLike, *, project_id: Optional[str] = None) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.upload_audio(os.fspath(path), project_id, True)
        return result

    async def get_ingest_status(self, ingest_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.get_ingest_status(ingest_id, True)
        return result

    async def wait_for_datapoint(self, context_token: str, timeout: float = 30.0) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.wait_for_datapoint(context_token, timeout, True)
        return result

    async def find_datapoints(
        self,
        context_token: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        provider: Optional[str] = None,
        *,
        project_id: Optional[str] = None,
        call_id: Optional[str] = None,
        source: Optional[str] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
        order: Optional[str] = None,
        issues_only: bool = False,
        failed_check: Optional[str] = None,
        monitor_id: Optional[str] = None,
        successful: Optional[bool] = None,
        sentiment: Optional[str] = None,
        outcome: Optional[str] = None,
        limit: int = 100,
    ) -> List[Dict[str, Any]]:
        query = _find_query(
            project_id=project_id, context_token=context_token, call_id=call_id, provider=provider,
            source=source, tags=tags, tags_any=tags_any, metadata=metadata, from_date=from_date,
            to_date=to_date, search_value=search_value, integration_id=integration_id, order=order,
            issues_only=issues_only or None, failed_check=failed_check, monitor_id=monitor_id,
            successful=successful, sentiment=sentiment, outcome=outcome, limit=limit,
        )  # fmt: skip
        result: List[Dict[str, Any]] = await self._native.find_datapoints(query, True)
        return result

    async def get_datapoint(self, datapoint_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.get_datapoint(datapoint_id, True)
        return result

    async def export_datapoints(
        self,
        path: PathLike,
        *,
        project_id: Optional[str] = None,
        context_token: Optional[str] = None,
        call_id: Optional[str] = None,
        provider: Optional[str] = None,
        source: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
        include_audio_links: bool = False,
    ) -> int:
        """Writes every datapoint matching the filters (those of :meth:`find_datapoints`) to
        ``path`` as JSON Lines, newest call first, each once, streamed a page at a time; returns
        how many were written. With ``include_audio_links``, calls with a stored recording carry
        ``audio_url``, which downloads it with the API key."""
        query = _find_query(
            project_id=project_id, context_token=context_token, call_id=call_id, provider=provider,
            source=source, tags=tags, tags_any=tags_any, metadata=metadata, from_date=from_date,
            to_date=to_date, search_value=search_value, integration_id=integration_id,
        )  # fmt: skip
        result: int = await self._native.export_datapoints(query, os.fspath(path), include_audio_links, True)
        return result

    async def delete_datapoints(
        self,
        datapoint_ids: Optional[Sequence[str]] = None,
        *,
        project_id: Optional[str] = None,
        context_token: Optional[str] = None,
        call_id: Optional[str] = None,
        provider: Optional[str] = None,
        source: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Deletes calls with everything stored of them (admin scope): the ones of
        ``datapoint_ids``, or every call matching the filters (a call id, a context token, ...).
        Filters that name nothing are refused. Returns the audit record: ``{"id", "actor",
        "reason", "filter", "request_time", "finish_time", "removed": {"datapoints", "ingests",
        "delivery_bodies", "recordings"}}``. A deleted call delivered again is stored again as
        new."""
        query = _find_query(
            project_id=project_id, context_token=context_token, call_id=call_id, provider=provider,
            source=source, tags=tags, tags_any=tags_any, metadata=metadata, from_date=from_date,
            to_date=to_date, search_value=search_value, integration_id=integration_id,
        )  # fmt: skip
        result: Dict[str, Any] = await self._native.delete_datapoints(list(datapoint_ids or ()), query, True)
        return result

    async def list_deletions(self, limit: int = 100) -> List[Dict[str, Any]]:
        """Deletions by request and by retention, newest first (admin scope)."""
        result: List[Dict[str, Any]] = await self._native.list_deletions(limit, True)
        return result

    async def set_project_retention(
        self,
        project_id: Optional[str] = None,
        *,
        datapoint_days: Optional[int] = None,
        audio_days: Optional[int] = None,
        delivery_body_days: Optional[int] = None,
        delivery_days: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Replaces how long the project keeps its calls, its recordings and its webhook
        deliveries' bodies and log entries, in days; ``None`` keeps calls and recordings forever
        and deliveries as the server's settings say (admin scope)."""
        result: Dict[str, Any] = await self._native.set_project_retention(
            project_id, datapoint_days, audio_days, delivery_body_days, delivery_days, True
        )
        return result

    async def download_audio(self, datapoint_id: str) -> bytes:
        result: bytes = await self._native.download_audio(datapoint_id, None, True)
        return result

    async def download_audio_to(self, datapoint_id: str, path: PathLike) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.download_audio(datapoint_id, os.fspath(path), True)
        return result

    async def list_projects(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = await self._native.list_projects(True)
        return result

    async def create_project(self, name: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.create_project(name, True)
        return result

    async def create_api_key(
        self, name: str, scopes: Sequence[str] = ("ingest",), *, project_id: Optional[str] = None
    ) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.create_api_key(name, list(scopes), project_id, True)
        return result

    async def list_api_keys(self, include_revoked: bool = False) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = await self._native.list_api_keys(include_revoked, True)
        return result

    async def revoke_api_key(self, api_key_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.revoke_api_key(api_key_id, True)
        return result

    async def create_check(
        self,
        name: str,
        measure: str,
        comparator: str,
        threshold: Union[str, float, bool, None] = None,
        *,
        phrase: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Creates a check (admin scope): ``measure comparator threshold`` describes the bad
        case, e.g. ``create_check("slow", "p95_response_latency_ms", "greater_than", 1500)``.
        Measures and comparators are listed in docs/API.md; a bad rule raises
        :class:`~earshot.errors.InvalidArgumentError` naming ``rule.measure``,
        ``rule.comparator``, ``rule.threshold`` or ``rule.phrase``."""
        result: Dict[str, Any] = await self._native.create_check(
            name, measure, comparator, _threshold(threshold), phrase, description, True
        )
        return result

    async def list_checks(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = await self._native.list_checks(True)
        return result

    async def delete_check(self, check_id: str) -> None:
        """Refused while a monitor uses the check; its results stay on their calls."""
        await self._native.delete_check(check_id, True)

    async def create_monitor(
        self,
        name: str,
        check_ids: Sequence[str],
        *,
        project_id: Optional[str] = None,
        provider: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
        successful: Optional[bool] = None,
        sentiment: Optional[str] = None,
        outcome: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Creates a monitor (admin scope): every call stored from now on that matches the
        filters (as in :meth:`find_datapoints`) gets the checks' results, in the commit that
        stores it."""
        monitor_filter = _find_query(
            project_id=project_id, provider=provider, tags=tags, tags_any=tags_any,
            metadata=metadata, search_value=search_value, integration_id=integration_id,
            successful=successful, sentiment=sentiment, outcome=outcome,
        )  # fmt: skip
        result: Dict[str, Any] = await self._native.create_monitor(
            name, list(check_ids), monitor_filter, description, True
        )
        return result

    async def list_monitors(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = await self._native.list_monitors(True)
        return result

    async def delete_monitor(self, monitor_id: str) -> None:
        await self._native.delete_monitor(monitor_id, True)

    async def attach_check_results(
        self, datapoint_id: str, results: Sequence[Mapping[str, Any]]
    ) -> Dict[str, Any]:
        """Attaches results computed elsewhere (an LLM judge, a reviewer) to a call (ingest
        scope), each ``{"check_id", "is_issue", "value", "explanation"}``; attaching again for a
        check replaces its result. Returns the datapoint."""
        result: Dict[str, Any] = await self._native.attach_check_results(
            datapoint_id, [dict(item) for item in results], True
        )
        return result

    async def resolve_issues(
        self, datapoint_id: str, check_ids: Sequence[str], *, reopen: bool = False
    ) -> Dict[str, Any]:
        """Marks the call's issues of these checks resolved (or, with ``reopen``, open again).
        Returns the datapoint."""
        result: Dict[str, Any] = await self._native.resolve_issues(
            datapoint_id, list(check_ids), reopen, True
        )
        return result

    async def get_check(self, check_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.get_check(check_id, True)
        return result

    async def update_check(
        self,
        check_id: str,
        measure: Optional[str] = None,
        comparator: Optional[str] = None,
        threshold: Union[str, float, bool, None] = None,
        *,
        phrase: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Changes a check's description and, given ``measure`` and ``comparator``, its rule: a
        different rule is a new version; results name the version that produced them."""
        result: Dict[str, Any] = await self._native.update_check(
            check_id, measure, comparator, _threshold(threshold), phrase, description, True
        )
        return result

    async def get_monitor(self, monitor_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.get_monitor(monitor_id, True)
        return result

    async def update_monitor(
        self,
        monitor_id: str,
        name: str,
        check_ids: Sequence[str],
        *,
        project_id: Optional[str] = None,
        provider: Optional[str] = None,
        tags: Optional[Sequence[str]] = None,
        tags_any: Optional[Sequence[str]] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        search_value: Optional[str] = None,
        integration_id: Optional[str] = None,
        successful: Optional[bool] = None,
        sentiment: Optional[str] = None,
        outcome: Optional[str] = None,
        description: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Replaces a monitor's whole definition (as :meth:`create_monitor` takes it); calls
        stored from then on are evaluated by it, and a change to its checks raises its
        ``version``."""
        monitor_filter = _find_query(
            project_id=project_id, provider=provider, tags=tags, tags_any=tags_any,
            metadata=metadata, search_value=search_value, integration_id=integration_id,
            successful=successful, sentiment=sentiment, outcome=outcome,
        )  # fmt: skip
        result: Dict[str, Any] = await self._native.update_monitor(
            monitor_id, name, list(check_ids), monitor_filter, description, True
        )
        return result

    async def backfill_monitor(
        self,
        monitor_id: str,
        *,
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
    ) -> Dict[str, Any]:
        """Starts evaluating a monitor over the calls already stored (admin scope), those that
        took place in ``[from_date, to_date)`` or all, newest first, each as when it is stored
        again (by every monitor, its earlier results replaced). Returns the backfill at once;
        it resumes where it was after a restart. See :meth:`wait_for_backfill`."""
        result: Dict[str, Any] = await self._native.backfill_monitor(
            monitor_id, _time_text(from_date), _time_text(to_date), True
        )
        return result

    async def get_backfill(self, backfill_id: str) -> Dict[str, Any]:
        """A backfill: its ``state`` (running, succeeded, failed) and progress (``processed`` of
        ``total``, ``matched``, ``issues``)."""
        result: Dict[str, Any] = await self._native.get_backfill(backfill_id, True)
        return result

    async def wait_for_backfill(self, backfill_id: str, timeout: float = 600.0) -> Dict[str, Any]:
        """Polls a backfill until it ends; :class:`~earshot.errors.DeadlineExceededError` after
        ``timeout`` seconds."""
        result: Dict[str, Any] = await self._native.wait_for_backfill(
            backfill_id, timeout, True
        )
        return result

    async def list_backfills(self, monitor_id: str) -> List[Dict[str, Any]]:
        """A monitor's backfills, newest first."""
        result: List[Dict[str, Any]] = await self._native.list_backfills(monitor_id, True)
        return result

    async def monitor_summary(
        self,
        monitor_id: str,
        *,
        precision: str = "hour",
        from_date: Optional[Time] = None,
        to_date: Optional[Time] = None,
    ) -> Dict[str, Any]:
        """What a monitor found per ``precision`` (``"hour"`` or ``"day"``, UTC) on the calls
        that took place in ``[from_date, to_date)`` (by default the last 48 hours, or 30 days):
        ``{"buckets": [...], "total": {...}}``, each with ``group`` (the bucket's start),
        ``datapoints``, ``issues``, ``issue_rate``, ``average_metrics`` (check name to mean),
        ``failed_checks`` and ``checks``."""
        result: Dict[str, Any] = await self._native.monitor_summary(
            monitor_id, precision, _time_text(from_date), _time_text(to_date), True
        )
        return result


class AsyncIntegrations:
    """:class:`Integrations` for asyncio."""

    def __init__(self, native: _native.Client) -> None:
        self._native = native

    async def create(
        self,
        provider: str,
        secrets: Optional[Mapping[str, str]] = None,
        *,
        display_name: Optional[str] = None,
        auth_type: Optional[str] = None,
        options: Optional[Mapping[str, Any]] = None,
        project_id: Optional[str] = None,
    ) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.create_integration(
            provider, dict(secrets or {}), display_name, auth_type, dict(options) if options else None, project_id, True
        )
        return result

    async def list(self, project_id: Optional[str] = None, provider: Optional[str] = None) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = await self._native.list_integrations(project_id, provider, True)
        return result

    async def get(self, integration_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.get_integration(integration_id, True)
        return result

    async def update(
        self, integration_id: str, *, display_name: Optional[str] = None, options: Optional[Mapping[str, Any]] = None
    ) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.update_integration(
            integration_id, display_name, dict(options) if options else None, True
        )
        return result

    async def rotate(
        self, integration_id: str, secrets: Mapping[str, str], *, grace_period: Union[float, timedelta, None] = None
    ) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.rotate_integration(
            integration_id, dict(secrets), _seconds(grace_period), True
        )
        return result

    async def set_status(self, integration_id: str, status: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.set_integration_status(integration_id, status, True)
        return result

    async def delete(self, integration_id: str) -> None:
        await self._native.delete_integration(integration_id, True)

    async def deliveries(
        self, integration_id: str, verdict: Optional[str] = None, limit: int = 100
    ) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = await self._native.list_deliveries(integration_id, verdict, limit, True)
        return result

    async def replay(self, integration_id: str, delivery_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.replay_delivery(integration_id, delivery_id, True)
        return result


class EventEndpoints:
    """Event endpoints (``client.event_endpoints``): where earshot sends signed events and Slack alerts."""

    def __init__(self, native: _native.Client) -> None:
        self._native = native

    def create(
        self,
        url: str,
        *,
        event_types: Sequence[str] = (),
        filter: Optional[Mapping[str, Any]] = None,
        description: Optional[str] = None,
        include_transcript: bool = False,
        rate_limit_per_second: int = 0,
        headers: Optional[Mapping[str, str]] = None,
        kind: Optional[str] = None,
        alert_cooldown: Union[float, timedelta, None] = None,
    ) -> Dict[str, Any]:
        """Returns ``{"endpoint": {...}, "secret": "whsec_..."}``; the secret is shown only here.
        ``event_types`` empty: every type. ``filter``: ``provider``, ``tags``, ``metadata``,
        ``monitor_id``. ``kind``: webhook (default) or slack (a readable message per event).
        ``alert_cooldown``: check.failed at most once per monitor per this long."""
        cooldown = _seconds(alert_cooldown)
        result: Dict[str, Any] = self._native.create_event_endpoint(
            url,
            list(event_types),
            dict(filter) if filter is not None else None,
            description,
            include_transcript,
            rate_limit_per_second,
            dict(headers or {}),
            kind,
            None if cooldown is None else int(cooldown),
            False,
        )
        return result

    def list(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = self._native.list_event_endpoints(False)
        return result

    def get(self, endpoint_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = self._native.get_event_endpoint(endpoint_id, False)
        return result

    def update(self, endpoint_id: str, **changes: Any) -> Dict[str, Any]:
        """Changes what is named (``url``, ``description``, ``event_types``, ``filter``,
        ``include_transcript``, ``rate_limit_per_second``, ``headers``, ``enabled``,
        ``alert_cooldown_seconds``); the rest stays. ``enabled=False`` pauses it."""
        result: Dict[str, Any] = self._native.update_event_endpoint(endpoint_id, changes, False)
        return result

    def delete(self, endpoint_id: str) -> None:
        self._native.delete_event_endpoint(endpoint_id, False)

    def rotate_secret(
        self, endpoint_id: str, *, grace_period: Union[float, timedelta, None] = None
    ) -> Dict[str, Any]:
        """A new secret (``{"endpoint", "secret"}``); the old ones keep signing for ``grace_period``."""
        result: Dict[str, Any] = self._native.rotate_event_endpoint_secret(
            endpoint_id, _seconds(grace_period), False
        )
        return result

    def send_test_event(self, endpoint_id: str) -> str:
        """Sends ``endpoint.test`` to this endpoint; returns the event's id (its ``webhook-id``)."""
        result: str = self._native.send_test_event(endpoint_id, False)
        return result

    def replay(
        self,
        endpoint_id: str,
        *,
        event_id: Optional[str] = None,
        failed_from: Optional[Time] = None,
        failed_to: Optional[Time] = None,
    ) -> int:
        """Delivers again one event, or every event whose delivery failed in the window; returns how many."""
        result: int = self._native.replay_events(
            endpoint_id, event_id, _time_text(failed_from), _time_text(failed_to), False
        )
        return result

    def attempts(
        self, endpoint_id: str, *, event_id: Optional[str] = None, outcome: Optional[str] = None, limit: int = 100
    ) -> List[Dict[str, Any]]:
        """Delivery attempts, newest first; ``outcome``: succeeded or failed."""
        result: List[Dict[str, Any]] = self._native.list_event_attempts(endpoint_id, event_id, outcome, limit, False)
        return result


class AsyncEventEndpoints:
    """:class:`EventEndpoints` for asyncio."""

    def __init__(self, native: _native.Client) -> None:
        self._native = native

    async def create(
        self,
        url: str,
        *,
        event_types: Sequence[str] = (),
        filter: Optional[Mapping[str, Any]] = None,
        description: Optional[str] = None,
        include_transcript: bool = False,
        rate_limit_per_second: int = 0,
        headers: Optional[Mapping[str, str]] = None,
        kind: Optional[str] = None,
        alert_cooldown: Union[float, timedelta, None] = None,
    ) -> Dict[str, Any]:
        """Returns ``{"endpoint": {...}, "secret": "whsec_..."}``; the secret is shown only here.
        ``event_types`` empty: every type. ``filter``: ``provider``, ``tags``, ``metadata``,
        ``monitor_id``. ``kind``: webhook (default) or slack (a readable message per event).
        ``alert_cooldown``: check.failed at most once per monitor per this long."""
        cooldown = _seconds(alert_cooldown)
        result: Dict[str, Any] = await self._native.create_event_endpoint(
            url,
            list(event_types),
            dict(filter) if filter is not None else None,
            description,
            include_transcript,
            rate_limit_per_second,
            dict(headers or {}),
            kind,
            None if cooldown is None else int(cooldown),
            True,
        )
        return result

    async def list(self) -> List[Dict[str, Any]]:
        result: List[Dict[str, Any]] = await self._native.list_event_endpoints(True)
        return result

    async def get(self, endpoint_id: str) -> Dict[str, Any]:
        result: Dict[str, Any] = await self._native.get_event_endpoint(endpoint_id, True)
        return result

    async def update(self, endpoint_id: str, **changes: Any) -> Dict[str, Any]:
        """Changes what is named (``url``, ``description``, ``event_types``, ``filter``,
        ``include_transcript``, ``rate_limit_per_second``, ``headers``, ``enabled``,
        ``alert_cooldown_seconds``); the rest stays. ``enabled=False`` pauses it."""
        result: Dict[str, Any] = await self._native.update_event_endpoint(endpoint_id, changes, True)
        return result

    async def delete(self, endpoint_id: str) -> None:
        await self._native.delete_event_endpoint(endpoint_id, True)

    async def rotate_secret(
        self, endpoint_id: str, *, grace_period: Union[float, timedelta, None] = None
    ) -> Dict[str, Any]:
        """A new secret (``{"endpoint", "secret"}``); the old ones keep signing for ``grace_period``."""
        result: Dict[str, Any] = await self._native.rotate_event_endpoint_secret(
            endpoint_id, _seconds(grace_period), True
        )
        return result

    async def send_test_event(self, endpoint_id: str) -> str:
        """Sends ``endpoint.test`` to this endpoint; returns the event's id (its ``webhook-id``)."""
        result: str = await self._native.send_test_event(endpoint_id, True)
        return result

    async def replay(
        self,
        endpoint_id: str,
        *,
        event_id: Optional[str] = None,
        failed_from: Optional[Time] = None,
        failed_to: Optional[Time] = None,
    ) -> int:
        """Delivers again one event, or every event whose delivery failed in the window; returns how many."""
        result: int = await self._native.replay_events(
            endpoint_id, event_id, _time_text(failed_from), _time_text(failed_to), True
        )
        return result

    async def attempts(
        self, endpoint_id: str, *, event_id: Optional[str] = None, outcome: Optional[str] = None, limit: int = 100
    ) -> List[Dict[str, Any]]:
        """Delivery attempts, newest first; ``outcome``: succeeded or failed."""
        result: List[Dict[str, Any]] = await self._native.list_event_attempts(endpoint_id, event_id, outcome, limit, True)
        return result
