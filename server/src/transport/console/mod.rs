//! The console: HTML pages under `/console`, rendered on the server (maud) with a little plain
//! JavaScript, nothing loaded from elsewhere. Sign-in exchanges an API key for a session
//! (`domain::console`); the session cookie is `HttpOnly`, `SameSite=Strict`, `Path=/console`,
//! `Secure` when the server's public address is https, and every form that changes something
//! carries the session's CSRF token. Pages read through the same domain calls as the APIs, so
//! the key's scopes and organization bound what they show.

mod manage;
mod pages;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::domain::console::{SESSION_LENGTH, csrf_matches, csrf_token};
use crate::domain::{Domain, parse_id};
use crate::error::Error;
use crate::model::auth::Principal;
use crate::model::datapoints::{DatapointCursor, DatapointQuery};
use crate::model::monitors::Granularity;

/// The session cookie's name.
const COOKIE: &str = "earshot_session";

/// Calls on a page of the list.
const PAGE_SIZE: usize = 50;

/// The operations page counts a project's ingests in one state up to this many ("10000+").
const QUEUE_COUNT_CAP: u64 = 10_000;

/// The console's routes, to merge beside the APIs.
pub fn router(domain: Domain) -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/calls") }))
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/console/calls", get(calls))
        .route("/console/calls/{id}", get(call))
        .route("/console/calls/{id}/audio", get(audio))
        .route("/console/calls/{id}/json", get(call_json))
        .route("/console/integrations", get(integrations).post(manage::create_integration))
        .route("/console/integrations/new", get(manage::new_integration))
        .route("/console/integrations/{id}", get(integration))
        .route("/console/integrations/{id}/status", post(manage::integration_status))
        .route("/console/integrations/{id}/secrets", post(manage::rotate_secrets))
        .route("/console/integrations/{id}/delete", post(manage::delete_integration))
        .route(
            "/console/integrations/{id}/deliveries/{delivery_id}/replay",
            post(manage::replay_delivery),
        )
        .route("/console/operations", get(operations))
        .route("/console/ingests/{id}/retry", post(manage::retry_ingest))
        .route("/console/endpoints/{id}", get(endpoint))
        .route("/console/endpoints/{id}/events/{event_id}/replay", post(manage::replay_event))
        .route("/console/monitors", get(monitors))
        .route("/console/monitors/{id}", get(monitor))
        .route("/console/console.js", get(script))
        .with_state(domain)
}

/// A console request's session: its token and principal.
struct Session {
    token: String,
    principal: Principal,
}

/// A page's session, taken before its handler runs; without one, the sign-in page.
impl axum::extract::FromRequestParts<Domain> for Session {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        domain: &Domain,
    ) -> Result<Self, Response> {
        session(domain, &parts.headers).await
    }
}

/// A changing form's refusal, if any: posted from another site, or without the session's
/// CSRF token.
fn refused_form(headers: &HeaderMap, session_token: &str, csrf: &str) -> Option<Response> {
    (!same_origin(headers) || !csrf_matches(session_token, csrf)).then(|| {
        html(StatusCode::FORBIDDEN, pages::error("this form has expired; reload the page"))
    })
}

/// The session of `headers`' cookie, or the sign-in page to go to.
async fn session(domain: &Domain, headers: &HeaderMap) -> Result<Session, Response> {
    let token = cookie(headers).unwrap_or_default();
    match domain.console_principal(&token).await {
        Ok(principal) => Ok(Session { token, principal }),
        Err(error) if error.code() == crate::ErrorCode::Unauthenticated => {
            Err(Redirect::to("/console/sign-in").into_response())
        }
        Err(error) => Err(page_error(&error)),
    }
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The `Set-Cookie` of a session (`max_age` seconds; 0 ends it).
fn session_cookie(domain: &Domain, token: &str, max_age: i64) -> HeaderValue {
    let secure =
        if domain.settings.public_base_url.starts_with("https://") { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or(HeaderValue::from_static("earshot_session=; Path=/console; Max-Age=0"))
}

/// Whether a form post comes from this console: browsers name the sending site
/// (`Sec-Fetch-Site`) or origin; a post from another site is refused even before a session
/// exists (sign-in), as the session's CSRF token cannot protect that one.
fn same_origin(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|value| value.to_str().ok());
    if fetch_site.is_some_and(|site| site != "same-origin" && site != "none") {
        return false;
    }
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok());
    match headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) {
        None => true,
        Some(origin) => host.is_some_and(|host| {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }),
    }
}

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
                ),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        ],
        markup,
    )
        .into_response()
}

/// A page `result` built, or the page of its error.
fn page(result: Result<maud::Markup, Error>) -> Response {
    match result {
        Ok(markup) => html(StatusCode::OK, markup),
        Err(error) => page_error(&error),
    }
}

fn page_error(error: &Error) -> Response {
    error.log_if_internal();
    let status = match error.code() {
        crate::ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        crate::ErrorCode::NotFound => StatusCode::NOT_FOUND,
        crate::ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    html(status, pages::error(&error.public_message()))
}

async fn sign_in_page() -> Response {
    html(StatusCode::OK, pages::sign_in(None))
}

#[derive(Deserialize)]
struct SignInForm {
    api_key: String,
}

async fn sign_in(
    State(domain): State<Domain>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if !same_origin(&headers) {
        return html(StatusCode::FORBIDDEN, pages::error("a form from another site is refused"));
    }
    match domain.sign_in(&form.api_key).await {
        Ok((token, _)) => {
            let cookie = session_cookie(&domain, &token, SESSION_LENGTH.num_seconds());
            ([(header::SET_COOKIE, cookie)], Redirect::to("/console/calls")).into_response()
        }
        Err(error) if error.code() == crate::ErrorCode::InvalidArgument => page_error(&error),
        Err(error) => {
            error.log_if_internal();
            let message = match error.code() {
                crate::ErrorCode::PermissionDenied => "this key cannot read calls",
                crate::ErrorCode::ResourceExhausted => "too many attempts; wait a moment",
                _ => "this key is not valid",
            };
            html(StatusCode::UNAUTHORIZED, pages::sign_in(Some(message)))
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn sign_out(
    State(domain): State<Domain>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let token = cookie(&headers).unwrap_or_default();
    if !same_origin(&headers) || !csrf_matches(&token, &form.csrf) {
        return html(StatusCode::FORBIDDEN, pages::error("this form has expired; reload the page"));
    }
    if let Err(error) = domain.sign_out(&token).await {
        return page_error(&error);
    }
    let cookie = session_cookie(&domain, "", 0);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console/sign-in")).into_response()
}

/// The calls list's filters, as the page's form sends them (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CallFilters {
    pub(crate) project: String,
    pub(crate) provider: String,
    pub(crate) source: String,
    pub(crate) call_id: String,
    pub(crate) tag: String,
    /// `key=value`.
    pub(crate) metadata: String,
    pub(crate) text: String,
    /// Days (`YYYY-MM-DD`, UTC), both included.
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) issues_only: Option<String>,
    pub(crate) page: String,
}

impl CallFilters {
    /// The query; a bad field is named as the form names it.
    fn query(&self) -> Result<DatapointQuery, Error> {
        use crate::model::conversation::Source;
        let given = |value: &str| Some(value.trim().to_owned()).filter(|value| !value.is_empty());
        let day =
            |field: &str, value: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, Error> {
                given(value)
                    .map(|text| {
                        chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                            .map(|date| date.and_time(chrono::NaiveTime::MIN).and_utc())
                            .map_err(|_| Error::invalid(field, "must be a day, YYYY-MM-DD"))
                    })
                    .transpose()
            };
        let metadata = match given(&self.metadata) {
            None => Vec::new(),
            Some(pair) => match pair.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    vec![(key.trim().to_owned(), value.trim().to_owned())]
                }
                _ => return Err(Error::invalid("metadata", "must be key=value")),
            },
        };
        Ok(DatapointQuery {
            project_id: given(&self.project).map(|id| parse_id("project", &id)).transpose()?,
            provider: given(&self.provider),
            source: match given(&self.source) {
                None => None,
                Some(name) => Some(
                    Source::parse(&name)
                        .ok_or_else(|| Error::invalid("source", "must be webhook, sdk or api"))?,
                ),
            },
            call_id: given(&self.call_id),
            tags_all: given(&self.tag).into_iter().collect(),
            metadata_equals: metadata,
            text_contains: given(&self.text),
            from: day("from", &self.from)?,
            // The whole last day: up to its last millisecond.
            to: day("to", &self.to)?
                .map(|start| start + chrono::Duration::days(1) - chrono::Duration::milliseconds(1)),
            issues_only: self.issues_only.is_some(),
            before: DatapointCursor::from_token(&self.page)?,
            page_size: PAGE_SIZE,
            ..DatapointQuery::default()
        })
    }
}

async fn calls(
    State(domain): State<Domain>,
    session: Session,
    Query(filters): Query<CallFilters>,
) -> Response {
    let query = match filters.query() {
        Ok(query) => query,
        Err(error) => return page_error(&error),
    };
    let found = async {
        let projects = domain.list_projects(&session.principal).await?;
        let page = domain.search_datapoints(&session.principal, query).await?;
        Ok::<_, Error>((projects, page))
    }
    .await;
    let csrf = csrf_token(&session.token);
    page(found.map(|(projects, found)| pages::calls(&csrf, &filters, &projects, &found)))
}

async fn call(State(domain): State<Domain>, session: Session, Path(id): Path<String>) -> Response {
    let id = match parse_id("id", &id) {
        Ok(id) => id,
        Err(error) => return page_error(&error),
    };
    let found = async {
        let view = domain.get_datapoint(&session.principal, id).await?;
        let history = domain.call_history(&session.principal, &view.datapoint, PAGE_SIZE).await?;
        Ok::<_, Error>((view, history))
    }
    .await;
    let csrf = csrf_token(&session.token);
    page(
        found.map(|(view, (ingests, deliveries))| pages::call(&csrf, &view, &ingests, &deliveries)),
    )
}

/// The integrations of every project the key reaches, with their use.
async fn integrations(State(domain): State<Domain>, session: Session) -> Response {
    let principal = &session.principal;
    let result = async {
        let mut rows = Vec::new();
        for project in domain.list_projects(principal).await? {
            let mut token = String::new();
            loop {
                let page = domain.list_integrations(principal, project.id, None, 0, &token).await?;
                rows.extend(
                    page.integrations
                        .into_iter()
                        .map(|integration| (project.name.clone(), integration)),
                );
                match page.next_page_token {
                    Some(next) => token = next,
                    None => break,
                }
            }
        }
        Ok::<_, Error>(rows)
    }
    .await;
    page(result.map(|rows| pages::integrations(&csrf_token(&session.token), &rows)))
}

/// One integration: the webhook URL to paste at the provider, its secrets' state, its latest
/// deliveries with their verdicts and reasons, and (for an admin key) enabling or disabling it.
async fn integration(
    State(domain): State<Domain>,
    session: Session,
    Path(id): Path<String>,
    Query(notice): Query<pages::Notice>,
) -> Response {
    let principal = &session.principal;
    let result = async {
        let id = parse_id("id", &id)?;
        let integration = domain.get_integration(principal, id).await?;
        let deliveries = domain.list_webhook_deliveries(principal, id, None, PAGE_SIZE, "").await?;
        Ok::<_, Error>((integration, deliveries))
    }
    .await;
    let admin = principal.has_scope(crate::model::auth::Scope::Admin);
    let csrf = csrf_token(&session.token);
    page(result.map(|(integration, deliveries)| {
        let url = domain.webhook_url(&integration);
        pages::integration(&csrf, &integration, &url, &deliveries, admin, &notice)
    }))
}

/// Calls whose processing failed, in every project the key reaches (dead ones, and failed
/// ones waiting for a retry), and the event endpoints with their counters.
async fn operations(State(domain): State<Domain>, session: Session) -> Response {
    use crate::model::ingest::IngestState;
    let principal = &session.principal;
    let result = async {
        // The projects the key reaches come with their queue depth: listed once.
        let depth = domain.queue_depth(principal, QUEUE_COUNT_CAP).await?;
        let mut stuck = Vec::new();
        for (project, _) in &depth {
            for state in [IngestState::Dead, IngestState::Failed] {
                let (records, _) = domain
                    .list_ingests(principal, Some(project.id), Some(state), PAGE_SIZE, "")
                    .await?;
                stuck.extend(records);
            }
        }
        let endpoints = domain.list_event_endpoints(principal).await?;
        Ok::<_, Error>((depth, stuck, endpoints))
    }
    .await;
    let can_retry = principal.has_scope(crate::model::auth::Scope::Ingest);
    let csrf = csrf_token(&session.token);
    page(result.map(|(depth, stuck, endpoints)| {
        pages::operations(&csrf, &depth, &stuck, &endpoints, can_retry)
    }))
}

/// One event endpoint and its latest delivery attempts, each failed one with a replay.
async fn endpoint(
    State(domain): State<Domain>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let principal = &session.principal;
    let result = async {
        let id = parse_id("id", &id)?;
        let endpoint = domain.get_event_endpoint(principal, id).await?;
        let filter = crate::model::events::AttemptFilter::default();
        let (attempts, _) =
            domain.list_event_attempts(principal, id, &filter, PAGE_SIZE, "").await?;
        Ok::<_, Error>((endpoint, attempts))
    }
    .await;
    // Replays need the rule the domain applies to managing endpoints.
    let admin = crate::domain::require_organization_admin(principal, "event endpoints").is_ok();
    let csrf = csrf_token(&session.token);
    page(result.map(|(endpoint, attempts)| pages::endpoint(&csrf, &endpoint, &attempts, admin)))
}

/// Days the monitors' charts cover.
const CHART_DAYS: i64 = 14;

/// The monitors, each with its issue rate per day over the last `CHART_DAYS` days.
async fn monitors(State(domain): State<Domain>, session: Session) -> Response {
    let principal = &session.principal;
    let result = async {
        let from = domain.clock.now() - chrono::Duration::days(CHART_DAYS);
        let mut rows = Vec::new();
        for monitor in domain.list_monitors(principal).await? {
            let summary = domain
                .monitor_summary(principal, monitor.id, Some(from), None, Granularity::Day)
                .await?;
            rows.push((monitor, summary));
        }
        Ok::<_, Error>(rows)
    }
    .await;
    page(result.map(|rows| pages::monitors(&csrf_token(&session.token), &rows)))
}

/// One monitor: its checks with their figures, its chart, and its calls with open issues.
async fn monitor(
    State(domain): State<Domain>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let principal = &session.principal;
    let result = async {
        let id = parse_id("id", &id)?;
        let monitor = domain.get_monitor(principal, id).await?;
        let from = domain.clock.now() - chrono::Duration::days(CHART_DAYS);
        let summary =
            domain.monitor_summary(principal, id, Some(from), None, Granularity::Day).await?;
        let failing = DatapointQuery {
            monitor_id: Some(id),
            issues_only: true,
            page_size: PAGE_SIZE,
            ..DatapointQuery::default()
        };
        let calls = domain.search_datapoints(principal, failing).await?;
        Ok::<_, Error>((monitor, summary, calls))
    }
    .await;
    let csrf = csrf_token(&session.token);
    page(result.map(|(monitor, summary, calls)| pages::monitor(&csrf, &monitor, &summary, &calls)))
}

/// Everything stored of the call as JSON (the export's shape), as a download.
async fn call_json(
    State(domain): State<Domain>,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    let view = match parse_id("id", &id) {
        Ok(id) => domain.get_datapoint(&session.principal, id).await,
        Err(error) => Err(error),
    };
    match view {
        Ok(view) => {
            let id = view.datapoint.id;
            let audio = view
                .audio
                .as_ref()
                .map(|_| crate::domain::lifecycle::audio_url(&domain.settings.public_base_url, id));
            let json = crate::transport::rest::datapoints::export_json(&view, audio);
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{id}.json\""))
                .unwrap_or(HeaderValue::from_static("attachment"));
            ([(header::CONTENT_DISPOSITION, disposition)], axum::Json(json)).into_response()
        }
        Err(error) => page_error(&error),
    }
}

/// The recording, with HTTP ranges (`Accept-Ranges: bytes`, one `bytes=a-b` range answered
/// 206), so players can seek without fetching the whole file.
async fn audio(
    State(domain): State<Domain>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let session = match session(&domain, &headers).await {
        Ok(session) => session,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    let view = match parse_id("id", &id) {
        Ok(id) => domain.get_datapoint(&session.principal, id).await,
        Err(error) => Err(error),
    };
    let audio = match view.map(|view| view.audio) {
        Ok(Some(audio)) => audio,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            error.log_if_internal();
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    let size = u64::try_from(audio.size_bytes).unwrap_or(0);
    let content_type = HeaderValue::from_str(&audio.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map(|value| byte_range(value, size));
    let (status, range) = match range {
        None => (StatusCode::OK, 0..size),
        Some(Some(range)) => (StatusCode::PARTIAL_CONTENT, range),
        Some(None) => {
            let unsatisfiable = HeaderValue::from_str(&format!("bytes */{size}"))
                .unwrap_or(HeaderValue::from_static("bytes */0"));
            return (StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, unsatisfiable)])
                .into_response();
        }
    };
    let bytes = match domain.blobs.get_range(&audio.blob_key, range.clone()).await {
        Ok(bytes) => bytes,
        Err(error) => return page_error(&error),
    };
    let mut response = (status, bytes).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(header::CONTENT_TYPE, content_type);
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!(
            "bytes {}-{}/{size}",
            range.start,
            range.end.saturating_sub(1)
        ))
    {
        response_headers.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// One range of a `Range: bytes=...` header over `size` bytes, as a half-open range; None when
/// it cannot be satisfied (or asks for several ranges, which players do not).
fn byte_range(header: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let range = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        size.saturating_sub(suffix)..size
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size
        } else {
            last.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        start..end
    };
    (range.start < range.end).then_some(range)
}

/// The page's script: seeking the player to a clicked turn and marking the turn being spoken.
async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")),
        ],
        pages::SCRIPT,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_are_read_as_browsers_send_them() {
        assert_eq!(byte_range("bytes=0-", 100), Some(0..100));
        assert_eq!(byte_range("bytes=10-19", 100), Some(10..20));
        assert_eq!(byte_range("bytes=90-200", 100), Some(90..100));
        assert_eq!(byte_range("bytes=-10", 100), Some(90..100));
        assert_eq!(byte_range("bytes=100-", 100), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=5-2", 100), None);
    }

    #[test]
    fn only_this_sites_forms_are_taken() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            headers
        };
        assert!(same_origin(&headers(&[("host", "earshot:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "earshot:8080"),
            ("origin", "http://earshot:8080"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "earshot:8080"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "earshot:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "earshot:8080"),
            ("sec-fetch-site", "same-site")
        ])));
    }

    #[test]
    fn the_session_is_read_from_its_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; earshot_session=tok; b=2"));
        assert_eq!(cookie(&headers).as_deref(), Some("tok"));
        headers.insert(header::COOKIE, HeaderValue::from_static("earshot_sessionx=tok"));
        assert_eq!(cookie(&headers), None);
    }
}
