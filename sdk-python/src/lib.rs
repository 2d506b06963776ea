//! `earshot._native`: the Python package's calls, made by the earshot Rust client.
//!
//! Every call takes `asynchronous`: false runs it on the process runtime with the GIL released
//! and returns the result; true returns an asyncio awaitable. Inputs are converted from Python
//! while the GIL is held; nothing Python is touched while the call is on the network.

mod convert;
mod runtime;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use earshot::proto as pb;
use earshot::{
    AttemptOutcomeFilter, DatapointQuery, EventEndpointChange, FieldViolation, IngestBatch,
    NewEventEndpoint, NewIntegration,
};
use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList};
use serde::Deserialize;
use serde_json::Value;

use crate::convert::to_json;
use crate::runtime::{ForkSafeTokio, runtime};

/// What a call gives back to Python.
enum Output {
    Json(Value),
    Bytes(Vec<u8>),
}

impl<'py> IntoPyObject<'py> for Output {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        match self {
            Self::Json(value) => convert::to_python(py, &value),
            Self::Bytes(bytes) => Ok(PyBytes::new(py, &bytes).into_any()),
        }
    }
}

/// An `earshot.errors` exception for a client error (an `OSError` for local file errors). By
/// value, to read as `.map_err(to_py_err)`.
#[allow(clippy::needless_pass_by_value)]
fn to_py_err(error: earshot::Error) -> PyErr {
    if let earshot::Error::File { path, source } = &error {
        let message = format!("{}: {source}", path.display());
        return match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
            _ => PyOSError::new_err(message),
        };
    }
    Python::attach(|py| {
        let violations: Vec<(String, String)> = error
            .field_violations()
            .iter()
            .map(|violation| (violation.field.clone(), violation.description.clone()))
            .collect();
        match error_factory(py).and_then(|factory| {
            factory.call1((earshot::code_name(error.code()), error.message(), violations))
        }) {
            Ok(exception) => PyErr::from_value(exception),
            Err(import_failure) => import_failure,
        }
    })
}

fn error_factory(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static FACTORY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    FACTORY
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("earshot.errors")?.getattr("_from_native")?.unbind())
        })
        .map(|factory| factory.bind(py).clone())
}

fn invalid(violations: Vec<FieldViolation>) -> PyErr {
    to_py_err(earshot::Error::invalid(violations))
}

/// Runs `future` for Python: blocking with the GIL released, or as an awaitable.
fn run<'py, F>(py: Python<'py>, asynchronous: bool, future: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = earshot::Result<Output>> + Send + 'static,
{
    if asynchronous {
        pyo3_async_runtimes::generic::future_into_py::<ForkSafeTokio, _, Output>(py, async move {
            future.await.map_err(to_py_err)
        })
    } else {
        let runtime = runtime();
        let result = py.detach(|| runtime.block_on(future));
        result.map_err(to_py_err)?.into_pyobject(py)
    }
}

fn json_arg(value: &Bound<'_, PyAny>, path: &str) -> PyResult<Value> {
    to_json(value, path).map_err(|violation| invalid(vec![violation]))
}

fn seconds(field: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        invalid(vec![FieldViolation::new(field, "must be a non-negative number of seconds")])
    })
}

/// A connection to one earshot server, rebuilt in a forked child.
#[pyclass(frozen, module = "earshot._native")]
struct Client {
    builder: earshot::ClientBuilder,
    project_id: Option<String>,
    current: Mutex<Option<(u32, earshot::Client)>>,
}

impl Client {
    fn client(&self) -> PyResult<earshot::Client> {
        let pid = std::process::id();
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((owner, client)) = current.as_ref()
            && *owner == pid
        {
            return Ok(client.clone());
        }
        let runtime = runtime();
        let _entered = runtime.enter();
        let client = self.builder.clone().connect_lazy().map_err(to_py_err)?;
        *current = Some((pid, client.clone()));
        Ok(client)
    }

    fn project(&self, project_id: Option<String>) -> Option<String> {
        project_id.filter(|id| !id.is_empty()).or_else(|| self.project_id.clone())
    }

    /// The search filter of `find` (its limit aside); the client's project when it names none
    /// and `default_project`.
    fn datapoint_query(&self, find: FindQuery, default_project: bool) -> PyResult<DatapointQuery> {
        let mut request = DatapointQuery::new();
        let project_id =
            if default_project { self.project(find.project_id) } else { find.project_id };
        if let Some(project_id) = project_id.filter(|id| !id.is_empty()) {
            request = request.project_id(project_id);
        }
        if let Some(token) = find.context_token {
            request = request.context_token(token);
        }
        if let Some(call_id) = find.call_id {
            request = request.call_id(call_id);
        }
        if let Some(integration_id) = find.integration_id {
            request = request.integration_id(integration_id);
        }
        if find.issues_only == Some(true) {
            request = request.issues_only();
        }
        if let Some(name) = find.failed_check {
            request = request.failed_check(name);
        }
        if let Some(successful) = find.successful {
            request = request.successful(successful);
        }
        if let Some(sentiment) = find.sentiment {
            request = request.sentiment(sentiment);
        }
        if let Some(outcome) = find.outcome {
            request = request.outcome(outcome);
        }
        if let Some(monitor_id) = find.monitor_id {
            request = request.monitor_id(monitor_id);
        }
        match find.order.as_deref() {
            None | Some("newest") => {}
            Some("relevance") => request = request.order_by_relevance(),
            Some(_) => {
                return Err(invalid(vec![FieldViolation::new(
                    "order",
                    "must be newest or relevance",
                )]));
            }
        }
        if let Some(provider) = find.provider {
            request = request.provider(provider);
        }
        if let Some(source) = find.source {
            request = request.source(name_arg(
                "source",
                &source,
                convert::source_from_name,
                "webhook, sdk or api",
            )?);
        }
        request = request
            .tags_all(find.tags.unwrap_or_default())
            .tags_any(find.tags_any.unwrap_or_default());
        for (key, value) in find.metadata.unwrap_or_default() {
            request = request.metadata_equals(key, metadata_text(value));
        }
        for (field, value) in [("from_date", find.from_date), ("to_date", find.to_date)] {
            let Some(value) = value else { continue };
            let time = earshot::parse_time(&value).ok_or_else(|| {
                invalid(vec![FieldViolation::new(field, "must be a datetime or ISO 8601 text")])
            })?;
            request = if field == "from_date" {
                request.start_time(time)
            } else {
                request.end_time(time)
            };
        }
        if let Some(text) = find.search_value.filter(|text| !text.is_empty()) {
            request = request.text_contains(text);
        }
        Ok(request)
    }
}

/// A monitor's definition from what Python passes (the search's filter names).
fn monitor_definition(
    name: String,
    check_ids: Vec<String>,
    filter: &Bound<'_, PyDict>,
    description: Option<String>,
) -> PyResult<earshot::MonitorDefinition> {
    let filter: MonitorFilterJson = parse("filter", json_arg(filter.as_any(), "filter")?)?;
    let mut definition = earshot::MonitorDefinition::new(name)
        .description(description.unwrap_or_default())
        .tags_all(filter.tags.unwrap_or_default())
        .tags_any(filter.tags_any.unwrap_or_default());
    for check_id in check_ids {
        definition = definition.check(check_id);
    }
    if let Some(project_id) = filter.project_id {
        definition = definition.project_id(project_id);
    }
    if let Some(provider) = filter.provider {
        definition = definition.provider(provider);
    }
    if let Some(text) = filter.search_value {
        definition = definition.text_contains(text);
    }
    if let Some(integration_id) = filter.integration_id {
        definition = definition.integration_id(integration_id);
    }
    for (key, value) in filter.metadata.unwrap_or_default() {
        definition = definition.metadata_equals(key, metadata_text(value));
    }
    if let Some(successful) = filter.successful {
        definition = definition.successful(successful);
    }
    if let Some(sentiment) = filter.sentiment {
        definition = definition.sentiment(sentiment);
    }
    if let Some(outcome) = filter.outcome {
        definition = definition.outcome(outcome);
    }
    Ok(definition)
}

/// A time given as ISO 8601 text (the Python layer turns a `datetime` into it).
fn time_arg(field: &str, value: Option<String>) -> PyResult<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .map(|text| {
            earshot::parse_time(&text).ok_or_else(|| {
                invalid(vec![FieldViolation::new(field, "must be a datetime or ISO 8601 text")])
            })
        })
        .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FindQuery {
    project_id: Option<String>,
    context_token: Option<String>,
    call_id: Option<String>,
    provider: Option<String>,
    source: Option<String>,
    tags: Option<Vec<String>>,
    tags_any: Option<Vec<String>>,
    metadata: Option<HashMap<String, Value>>,
    from_date: Option<String>,
    to_date: Option<String>,
    search_value: Option<String>,
    integration_id: Option<String>,
    order: Option<String>,
    issues_only: Option<bool>,
    failed_check: Option<String>,
    monitor_id: Option<String>,
    successful: Option<bool>,
    sentiment: Option<String>,
    outcome: Option<String>,
    limit: Option<usize>,
}

/// A monitor's filter as Python passes it (the search's names).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MonitorFilterJson {
    project_id: Option<String>,
    provider: Option<String>,
    tags: Option<Vec<String>>,
    tags_any: Option<Vec<String>>,
    metadata: Option<HashMap<String, Value>>,
    search_value: Option<String>,
    integration_id: Option<String>,
    successful: Option<bool>,
    sentiment: Option<String>,
    outcome: Option<String>,
}

/// A result attached from outside, as Python passes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExternalResultJson {
    check_id: String,
    value: Option<Value>,
    is_issue: bool,
    explanation: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsJson {
    ip_allowlist: Option<Vec<String>>,
    rate_limit_per_minute: Option<u32>,
    default_first_turn: Option<String>,
    twilio: Option<TwilioJson>,
    hmac: Option<HmacJson>,
    header_token: Option<HeaderTokenJson>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TwilioJson {
    account_sid: Option<String>,
    assistant_channel: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HmacJson {
    signature_header: Option<String>,
    algorithm: Option<String>,
    encoding: Option<String>,
    signature_prefix: Option<String>,
    timestamp_header: Option<String>,
    timestamp_tolerance_seconds: Option<u32>,
    secret_is_base64: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderTokenJson {
    header_name: Option<String>,
    bearer_prefix: Option<bool>,
}

/// A metadata value as the search compares it: text as it is, anything else as its JSON.
fn metadata_text(value: Value) -> String {
    match value {
        Value::String(text) => text,
        other => other.to_string(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(field: &str, value: Value) -> PyResult<T> {
    serde_json::from_value(value)
        .map_err(|error| invalid(vec![FieldViolation::new(field, error.to_string())]))
}

/// An event endpoint's filter as Python gives it: `{"provider", "tags", "metadata", "monitor_id"}`.
fn event_filter(value: Value) -> PyResult<pb::EventFilter> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct FilterJson {
        #[serde(default)]
        provider: String,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        metadata: HashMap<String, String>,
        #[serde(default)]
        monitor_id: String,
    }
    let filter: FilterJson = parse("filter", value)?;
    Ok(pb::EventFilter {
        provider: filter.provider,
        tags: filter.tags,
        metadata: filter.metadata,
        monitor_id: filter.monitor_id,
    })
}

/// What `EventEndpoints.update` changes: the keyword arguments given.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointChangesJson {
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    filter: Option<Value>,
    include_transcript: Option<bool>,
    rate_limit_per_second: Option<u32>,
    headers: Option<HashMap<String, String>>,
    enabled: Option<bool>,
    alert_cooldown_seconds: Option<u32>,
}

fn options_from_json(value: Value) -> PyResult<pb::IntegrationOptions> {
    let options: OptionsJson = parse("options", value)?;
    let default_first_turn = match options.default_first_turn.as_deref() {
        None | Some("") => pb::Role::Unspecified,
        Some("user") => pb::Role::User,
        Some("assistant") => pb::Role::Assistant,
        Some(other) => {
            return Err(invalid(vec![FieldViolation::new(
                "options.default_first_turn",
                format!("must be user or assistant, not {other:?}"),
            )]));
        }
    };
    let hmac = match options.hmac {
        Some(hmac) => Some(pb::HmacOptions {
            signature_header: hmac.signature_header.unwrap_or_default(),
            algorithm: match hmac.algorithm.as_deref() {
                Some(name) => pb::HmacAlgorithm::from_str_name(&format!(
                    "HMAC_ALGORITHM_{}",
                    name.to_ascii_uppercase()
                ))
                .ok_or_else(|| {
                    invalid(vec![FieldViolation::new(
                        "options.hmac.algorithm",
                        "must be sha1, sha256 or sha512",
                    )])
                })? as i32,
                None => 0,
            },
            encoding: match hmac.encoding.as_deref() {
                Some(name) => pb::SignatureEncoding::from_str_name(&format!(
                    "SIGNATURE_ENCODING_{}",
                    name.to_ascii_uppercase()
                ))
                .ok_or_else(|| {
                    invalid(vec![FieldViolation::new(
                        "options.hmac.encoding",
                        "must be hex or base64",
                    )])
                })? as i32,
                None => 0,
            },
            signature_prefix: hmac.signature_prefix.unwrap_or_default(),
            timestamp_header: hmac.timestamp_header.unwrap_or_default(),
            timestamp_tolerance_seconds: hmac.timestamp_tolerance_seconds.unwrap_or_default(),
            secret_is_base64: hmac.secret_is_base64.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(pb::IntegrationOptions {
        ip_allowlist: options.ip_allowlist.unwrap_or_default(),
        rate_limit_per_minute: options.rate_limit_per_minute,
        default_first_turn: default_first_turn as i32,
        twilio: options.twilio.map(|twilio| pb::TwilioOptions {
            account_sid: twilio.account_sid.unwrap_or_default(),
            assistant_channel: twilio.assistant_channel.unwrap_or_default(),
        }),
        hmac,
        header_token: options.header_token.map(|token| pb::HeaderTokenOptions {
            header_name: token.header_name.unwrap_or_default(),
            bearer_prefix: token.bearer_prefix.unwrap_or_default(),
        }),
    })
}

fn name_arg<T>(
    field: &str,
    name: &str,
    lookup: fn(&str) -> Option<T>,
    expected: &str,
) -> PyResult<T> {
    lookup(name).ok_or_else(|| {
        invalid(vec![FieldViolation::new(field, format!("unknown {name:?}; use {expected}"))])
    })
}

const PROVIDERS: &str = "twilio, retell, vapi, elevenlabs, livekit, bland, voicekit or webhook";

// Arguments are owned: pyo3 extracts `&str` only on abi3 for Python 3.10 and later.
#[allow(clippy::needless_pass_by_value)]
#[pymethods]
impl Client {
    #[new]
    #[pyo3(signature = (base_url, api_key=None, project_id=None, timeout_s=30.0, connect_timeout_s=10.0))]
    fn new(
        base_url: String,
        api_key: Option<String>,
        project_id: Option<String>,
        timeout_s: f64,
        connect_timeout_s: f64,
    ) -> PyResult<Self> {
        let mut builder = earshot::Client::builder(base_url)
            .timeout(seconds("timeout", timeout_s)?)
            .connect_timeout(seconds("connect_timeout", connect_timeout_s)?)
            .sdk_name(concat!("python/", env!("CARGO_PKG_VERSION")));
        if let Some(key) = api_key {
            builder = builder.api_key(key);
        }
        let project_id = project_id.filter(|id| !id.is_empty());
        if let Some(project_id) = &project_id {
            builder = builder.project_id(project_id.clone());
        }
        let client = Self { builder, project_id, current: Mutex::new(None) };
        // Surfaces a malformed URL or key now rather than on the first call.
        client.client()?;
        Ok(client)
    }

    #[pyo3(signature = (conversations, project_id, mut_id, asynchronous))]
    fn ingest_conversations<'py>(
        &self,
        py: Python<'py>,
        conversations: &Bound<'py, PyList>,
        project_id: Option<String>,
        mut_id: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut values = Vec::with_capacity(conversations.len());
        let mut violations = Vec::new();
        for (index, conversation) in conversations.iter().enumerate() {
            match to_json(&conversation, &format!("conversations[{index}]")) {
                Ok(value) => values.push(value),
                Err(violation) => violations.push(violation),
            }
        }
        if !violations.is_empty() {
            return Err(invalid(violations));
        }
        let mut batch = IngestBatch::from_json(values).map_err(to_py_err)?;
        if let Some(project_id) = self.project(project_id) {
            batch = batch.project_id(project_id);
        }
        if let Some(mut_id) = mut_id.filter(|id| !id.is_empty()) {
            batch = batch.mut_id(mut_id);
        }
        let client = self.client()?;
        run(py, asynchronous, async move {
            let response = client.ingest_conversations(batch).await?;
            Ok(Output::Json(convert::ingest_response(response)))
        })
    }

    #[pyo3(signature = (path, project_id, asynchronous))]
    fn upload_audio<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        project_id: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        let project_id = self.project(project_id);
        run(py, asynchronous, async move {
            let response = client.upload_audio_to(project_id, path).await?;
            Ok(Output::Json(convert::upload(&response)))
        })
    }

    #[pyo3(signature = (ingest_id, asynchronous))]
    fn get_ingest_status<'py>(
        &self,
        py: Python<'py>,
        ingest_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::ingest_status(client.ingest_status(&ingest_id).await?)))
        })
    }

    #[pyo3(signature = (context_token, timeout_s, asynchronous))]
    fn wait_for_datapoint<'py>(
        &self,
        py: Python<'py>,
        context_token: String,
        timeout_s: f64,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = seconds("timeout", timeout_s)?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let datapoint = client.wait_for_datapoint(&context_token, timeout).await?;
            Ok(Output::Json(convert::datapoint(datapoint)))
        })
    }

    #[pyo3(signature = (query, asynchronous))]
    fn find_datapoints<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyDict>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let find: FindQuery = parse("query", json_arg(query.as_any(), "")?)?;
        let limit = find.limit.unwrap_or(100);
        let request = self.datapoint_query(find, true)?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let mut found = Vec::new();
            let mut page_token = String::new();
            while found.len() < limit {
                let page_size = i32::try_from((limit - found.len()).min(500)).unwrap_or(500);
                let page = client
                    .search_datapoints(request.clone().page_size(page_size).page_token(page_token))
                    .await?;
                found.extend(page.datapoints.into_iter().map(convert::datapoint));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            found.truncate(limit);
            Ok(Output::Json(Value::Array(found)))
        })
    }

    /// Writes every datapoint matching `query` as JSON Lines to `path` (created or replaced),
    /// a page at a time; returns how many were written.
    #[pyo3(signature = (query, path, include_audio_links, asynchronous))]
    fn export_datapoints<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyDict>,
        path: PathBuf,
        include_audio_links: bool,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        use futures_util::TryStreamExt;
        use tokio::io::AsyncWriteExt;
        let find: FindQuery = parse("query", json_arg(query.as_any(), "")?)?;
        let request = self.datapoint_query(find, true)?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let file_error =
                |error: std::io::Error| earshot::Error::File { path: path.clone(), source: error };
            let file = tokio::fs::File::create(&path).await.map_err(file_error)?;
            let mut writer = tokio::io::BufWriter::new(file);
            let mut items = client.export_datapoints(request, include_audio_links).await?;
            let mut written: u64 = 0;
            while let Some(item) = items.try_next().await? {
                let mut line = item.datapoint.map(convert::datapoint).unwrap_or(Value::Null);
                if !item.audio_url.is_empty() {
                    line["audio_url"] = Value::from(item.audio_url);
                }
                let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
                bytes.push(b'\n');
                writer.write_all(&bytes).await.map_err(file_error)?;
                written += 1;
            }
            writer.flush().await.map_err(file_error)?;
            Ok(Output::Json(Value::from(written)))
        })
    }

    /// Deletes the calls of `datapoint_ids`, or every call matching `query`.
    #[pyo3(signature = (datapoint_ids, query, asynchronous))]
    fn delete_datapoints<'py>(
        &self,
        py: Python<'py>,
        datapoint_ids: Vec<String>,
        query: &Bound<'py, PyDict>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let find: FindQuery = parse("query", json_arg(query.as_any(), "")?)?;
        // The client's project is added by the Rust client only to a filter naming something.
        let request = self.datapoint_query(find, false)?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let deletion = if datapoint_ids.is_empty() {
                client.delete_matching(request).await?
            } else {
                client.delete_datapoints(datapoint_ids).await?
            };
            Ok(Output::Json(convert::deletion(deletion)))
        })
    }

    #[pyo3(signature = (limit, asynchronous))]
    fn list_deletions<'py>(
        &self,
        py: Python<'py>,
        limit: usize,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let mut found = Vec::new();
            let mut page_token = String::new();
            while found.len() < limit {
                let page_size = i32::try_from((limit - found.len()).min(500)).unwrap_or(500);
                let page = client.list_deletions(page_size, &page_token).await?;
                found.extend(page.deletions.into_iter().map(convert::deletion));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            found.truncate(limit);
            Ok(Output::Json(Value::Array(found)))
        })
    }

    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (project_id, datapoint_days, audio_days, delivery_body_days, delivery_days, asynchronous))]
    fn set_project_retention<'py>(
        &self,
        py: Python<'py>,
        project_id: Option<String>,
        datapoint_days: Option<u32>,
        audio_days: Option<u32>,
        delivery_body_days: Option<u32>,
        delivery_days: Option<u32>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let project_id = self.project(project_id).ok_or_else(|| {
            invalid(vec![FieldViolation::new("project_id", "required (no default project)")])
        })?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let retention = pb::ProjectRetention {
                datapoint_days,
                audio_days,
                delivery_body_days,
                delivery_days,
            };
            let project = client.set_project_retention(&project_id, retention).await?;
            Ok(Output::Json(convert::project(&project)))
        })
    }

    #[pyo3(signature = (name, measure, comparator, threshold, phrase, description, asynchronous))]
    #[allow(clippy::too_many_arguments)]
    fn create_check<'py>(
        &self,
        py: Python<'py>,
        name: String,
        measure: String,
        comparator: String,
        threshold: Option<String>,
        phrase: Option<String>,
        description: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let mut rule =
                earshot::CheckRule::new(measure, comparator, threshold.unwrap_or_default());
            if let Some(phrase) = phrase {
                rule = rule.phrase(phrase);
            }
            let check =
                client.create_check(&name, description.as_deref().unwrap_or(""), rule).await?;
            Ok(Output::Json(convert::check(&check)))
        })
    }

    #[pyo3(signature = (asynchronous))]
    fn list_checks<'py>(&self, py: Python<'py>, asynchronous: bool) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let checks = client.list_checks().await?;
            Ok(Output::Json(Value::Array(checks.iter().map(convert::check).collect())))
        })
    }

    #[pyo3(signature = (check_id, asynchronous))]
    fn delete_check<'py>(
        &self,
        py: Python<'py>,
        check_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            client.delete_check(&check_id).await?;
            Ok(Output::Json(Value::Null))
        })
    }

    #[pyo3(signature = (name, check_ids, filter, description, asynchronous))]
    fn create_monitor<'py>(
        &self,
        py: Python<'py>,
        name: String,
        check_ids: Vec<String>,
        filter: &Bound<'py, PyDict>,
        description: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let definition = monitor_definition(name, check_ids, filter, description)?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let monitor = client.create_monitor(definition).await?;
            Ok(Output::Json(convert::monitor(&monitor)))
        })
    }

    #[pyo3(signature = (monitor_id, name, check_ids, filter, description, asynchronous))]
    #[allow(clippy::too_many_arguments)] // create_monitor's, and the monitor's id
    fn update_monitor<'py>(
        &self,
        py: Python<'py>,
        monitor_id: String,
        name: String,
        check_ids: Vec<String>,
        filter: &Bound<'py, PyDict>,
        description: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let definition = monitor_definition(name, check_ids, filter, description)?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let monitor = client.update_monitor(&monitor_id, definition).await?;
            Ok(Output::Json(convert::monitor(&monitor)))
        })
    }

    #[pyo3(signature = (monitor_id, asynchronous))]
    fn get_monitor<'py>(
        &self,
        py: Python<'py>,
        monitor_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::monitor(&client.get_monitor(&monitor_id).await?)))
        })
    }

    #[pyo3(signature = (check_id, asynchronous))]
    fn get_check<'py>(
        &self,
        py: Python<'py>,
        check_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::check(&client.get_check(&check_id).await?)))
        })
    }

    #[pyo3(signature = (check_id, measure, comparator, threshold, phrase, description, asynchronous))]
    #[allow(clippy::too_many_arguments)] // the rule's parts, as create_check takes them
    fn update_check<'py>(
        &self,
        py: Python<'py>,
        check_id: String,
        measure: Option<String>,
        comparator: Option<String>,
        threshold: Option<String>,
        phrase: Option<String>,
        description: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        // A rule is replaced whole: its measure and comparator given together.
        let rule = match (measure, comparator) {
            (Some(measure), Some(comparator)) => {
                let rule =
                    earshot::CheckRule::new(measure, comparator, threshold.unwrap_or_default());
                Some(match phrase {
                    Some(phrase) => rule.phrase(phrase),
                    None => rule,
                })
            }
            (None, None) => None,
            (measure, _) => {
                let missing = if measure.is_none() { "measure" } else { "comparator" };
                return Err(invalid(vec![FieldViolation::new(
                    missing,
                    "a new rule needs both measure and comparator",
                )]));
            }
        };
        let client = self.client()?;
        run(py, asynchronous, async move {
            let check = client.update_check(&check_id, description.as_deref(), rule).await?;
            Ok(Output::Json(convert::check(&check)))
        })
    }

    #[pyo3(signature = (asynchronous))]
    fn list_monitors<'py>(
        &self,
        py: Python<'py>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let monitors = client.list_monitors().await?;
            Ok(Output::Json(Value::Array(monitors.iter().map(convert::monitor).collect())))
        })
    }

    #[pyo3(signature = (monitor_id, asynchronous))]
    fn delete_monitor<'py>(
        &self,
        py: Python<'py>,
        monitor_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            client.delete_monitor(&monitor_id).await?;
            Ok(Output::Json(Value::Null))
        })
    }

    #[pyo3(signature = (datapoint_id, results, asynchronous))]
    fn attach_check_results<'py>(
        &self,
        py: Python<'py>,
        datapoint_id: String,
        results: &Bound<'py, PyAny>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let given: Vec<ExternalResultJson> = parse("results", json_arg(results, "results")?)?;
        let mut external = Vec::with_capacity(given.len());
        for (index, result) in given.into_iter().enumerate() {
            let mut item = earshot::ExternalResult::new(result.check_id, result.is_issue);
            item = match result.value {
                None | Some(Value::Null) => item,
                Some(Value::Bool(flag)) => item.bool_value(flag),
                Some(Value::Number(number)) => {
                    item.number_value(number.as_f64().unwrap_or(f64::NAN))
                }
                Some(Value::String(text)) => item.text_value(text),
                Some(_) => {
                    return Err(invalid(vec![FieldViolation::new(
                        format!("results[{index}].value"),
                        "must be a number, a boolean or text",
                    )]));
                }
            };
            if let Some(explanation) = result.explanation {
                item = item.explanation(explanation);
            }
            external.push(item);
        }
        let client = self.client()?;
        run(py, asynchronous, async move {
            let datapoint = client.attach_check_results(&datapoint_id, external).await?;
            Ok(Output::Json(convert::datapoint(datapoint)))
        })
    }

    #[pyo3(signature = (datapoint_id, check_ids, reopen, asynchronous))]
    fn resolve_issues<'py>(
        &self,
        py: Python<'py>,
        datapoint_id: String,
        check_ids: Vec<String>,
        reopen: bool,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let ids: Vec<&str> = check_ids.iter().map(String::as_str).collect();
            let datapoint = client.resolve_issues(&datapoint_id, &ids, reopen).await?;
            Ok(Output::Json(convert::datapoint(datapoint)))
        })
    }

    #[pyo3(signature = (monitor_id, from_date, to_date, asynchronous))]
    fn backfill_monitor<'py>(
        &self,
        py: Python<'py>,
        monitor_id: String,
        from_date: Option<String>,
        to_date: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (from, to) = (time_arg("from_date", from_date)?, time_arg("to_date", to_date)?);
        let client = self.client()?;
        run(py, asynchronous, async move {
            let backfill = client.backfill_monitor(&monitor_id, from, to).await?;
            Ok(Output::Json(convert::backfill(&backfill)))
        })
    }

    #[pyo3(signature = (backfill_id, asynchronous))]
    fn get_backfill<'py>(
        &self,
        py: Python<'py>,
        backfill_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::backfill(&client.get_backfill(&backfill_id).await?)))
        })
    }

    #[pyo3(signature = (backfill_id, timeout_s, asynchronous))]
    fn wait_for_backfill<'py>(
        &self,
        py: Python<'py>,
        backfill_id: String,
        timeout_s: f64,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let timeout = seconds("timeout", timeout_s)?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let backfill = client.wait_for_backfill(&backfill_id, timeout).await?;
            Ok(Output::Json(convert::backfill(&backfill)))
        })
    }

    #[pyo3(signature = (monitor_id, asynchronous))]
    fn list_backfills<'py>(
        &self,
        py: Python<'py>,
        monitor_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let backfills = client.list_backfills(&monitor_id).await?;
            Ok(Output::Json(Value::Array(backfills.iter().map(convert::backfill).collect())))
        })
    }

    #[pyo3(signature = (monitor_id, precision, from_date, to_date, asynchronous))]
    fn monitor_summary<'py>(
        &self,
        py: Python<'py>,
        monitor_id: String,
        precision: String,
        from_date: Option<String>,
        to_date: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let granularity = match precision.as_str() {
            "hour" => earshot::SummaryGranularity::Hour,
            "day" => earshot::SummaryGranularity::Day,
            _ => {
                return Err(invalid(vec![FieldViolation::new(
                    "precision",
                    "must be \"hour\" or \"day\"",
                )]));
            }
        };
        let (from, to) = (time_arg("from_date", from_date)?, time_arg("to_date", to_date)?);
        let client = self.client()?;
        run(py, asynchronous, async move {
            let summary = client.monitor_summary(&monitor_id, granularity, from, to).await?;
            Ok(Output::Json(convert::monitor_summary(&summary)))
        })
    }

    #[pyo3(signature = (datapoint_id, asynchronous))]
    fn get_datapoint<'py>(
        &self,
        py: Python<'py>,
        datapoint_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::datapoint(client.get_datapoint(&datapoint_id).await?)))
        })
    }

    #[pyo3(signature = (datapoint_id, path, asynchronous))]
    fn download_audio<'py>(
        &self,
        py: Python<'py>,
        datapoint_id: String,
        path: Option<PathBuf>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            match path {
                Some(path) => {
                    let info = client.download_audio_to_file(&datapoint_id, path).await?;
                    Ok(Output::Json(serde_json::json!({
                        "audio_id": info.audio_id,
                        "sha256": info.sha256,
                        "content_type": info.content_type,
                        "size_bytes": info.size_bytes,
                        "duration_ms": info.duration_ms,
                        "channels": info.channels,
                        "sample_rate_hz": info.sample_rate_hz,
                    })))
                }
                None => {
                    Ok(Output::Bytes(client.download_audio(&datapoint_id).await?.bytes.to_vec()))
                }
            }
        })
    }

    #[pyo3(signature = (provider, secrets, display_name, auth_type, options, project_id, asynchronous))]
    #[allow(clippy::too_many_arguments)]
    fn create_integration<'py>(
        &self,
        py: Python<'py>,
        provider: String,
        secrets: HashMap<String, String>,
        display_name: Option<String>,
        auth_type: Option<String>,
        options: Option<Bound<'py, PyDict>>,
        project_id: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut new = NewIntegration::new(name_arg(
            "provider",
            &provider,
            convert::provider_from_name,
            PROVIDERS,
        )?);
        for (name, value) in secrets {
            new = new.secret(name, value);
        }
        if let Some(display_name) = display_name {
            new = new.display_name(display_name);
        }
        if let Some(auth_type) = auth_type {
            new = new.auth_type(name_arg(
                "auth_type",
                &auth_type,
                convert::auth_type_from_name,
                "twilio_signature, retell_signature, vapi_secret, header_token, hmac, elevenlabs_signature, livekit_jwt, bland_signature, standard_webhooks, url_token or ip_allowlist",
            )?);
        }
        if let Some(options) = options {
            new = new.options(options_from_json(json_arg(options.as_any(), "options")?)?);
        }
        if let Some(project_id) = self.project(project_id) {
            new = new.project_id(project_id);
        }
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::integration(client.integrations().create(new).await?)))
        })
    }

    #[pyo3(signature = (project_id, provider, asynchronous))]
    fn list_integrations<'py>(
        &self,
        py: Python<'py>,
        project_id: Option<String>,
        provider: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let provider = provider
            .map(|name| name_arg("provider", &name, convert::provider_from_name, PROVIDERS))
            .transpose()?;
        let project_id = self.project(project_id);
        let client = self.client()?;
        run(py, asynchronous, async move {
            let mut all = Vec::new();
            let mut page_token = None;
            loop {
                let page =
                    client.integrations().list(project_id.clone(), provider, page_token).await?;
                all.extend(page.integrations.into_iter().map(convert::integration));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = Some(page.next_page_token);
            }
            Ok(Output::Json(Value::Array(all)))
        })
    }

    #[pyo3(signature = (integration_id, asynchronous))]
    fn get_integration<'py>(
        &self,
        py: Python<'py>,
        integration_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::integration(
                client.integrations().get(&integration_id).await?,
            )))
        })
    }

    #[pyo3(signature = (integration_id, display_name, options, asynchronous))]
    fn update_integration<'py>(
        &self,
        py: Python<'py>,
        integration_id: String,
        display_name: Option<String>,
        options: Option<Bound<'py, PyDict>>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = options
            .map(|options| json_arg(options.as_any(), "options").and_then(options_from_json))
            .transpose()?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let updated =
                client.integrations().update(&integration_id, display_name, options).await?;
            Ok(Output::Json(convert::integration(updated)))
        })
    }

    #[pyo3(signature = (integration_id, secrets, grace_period_s, asynchronous))]
    fn rotate_integration<'py>(
        &self,
        py: Python<'py>,
        integration_id: String,
        secrets: HashMap<String, String>,
        grace_period_s: Option<f64>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let grace = grace_period_s.map(|value| seconds("grace_period", value)).transpose()?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let rotated = client.integrations().rotate(&integration_id, secrets, grace).await?;
            Ok(Output::Json(convert::integration(rotated)))
        })
    }

    #[pyo3(signature = (integration_id, status, asynchronous))]
    fn set_integration_status<'py>(
        &self,
        py: Python<'py>,
        integration_id: String,
        status: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let status = match status.as_str() {
            "active" | "enabled" => pb::IntegrationStatus::Active,
            "disabled" => pb::IntegrationStatus::Disabled,
            other => {
                return Err(invalid(vec![FieldViolation::new(
                    "status",
                    format!("unknown {other:?}; use active or disabled"),
                )]));
            }
        };
        let client = self.client()?;
        run(py, asynchronous, async move {
            let updated = client.integrations().set_status(&integration_id, status).await?;
            Ok(Output::Json(convert::integration(updated)))
        })
    }

    #[pyo3(signature = (integration_id, asynchronous))]
    fn delete_integration<'py>(
        &self,
        py: Python<'py>,
        integration_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            client.integrations().delete(&integration_id).await?;
            Ok(Output::Json(Value::Null))
        })
    }

    #[pyo3(signature = (integration_id, verdict, limit, asynchronous))]
    fn list_deliveries<'py>(
        &self,
        py: Python<'py>,
        integration_id: String,
        verdict: Option<String>,
        limit: usize,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let verdict = verdict
            .map(|name| {
                name_arg(
                    "verdict",
                    &name,
                    convert::verdict_from_name,
                    "accepted, duplicate, ignored or rejected",
                )
            })
            .transpose()?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let mut all = Vec::new();
            let mut page_token = None;
            while all.len() < limit {
                let page =
                    client.integrations().deliveries(&integration_id, verdict, page_token).await?;
                all.extend(page.deliveries.into_iter().map(convert::delivery));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = Some(page.next_page_token);
            }
            all.truncate(limit);
            Ok(Output::Json(Value::Array(all)))
        })
    }

    #[pyo3(signature = (url, event_types, filter, description, include_transcript, rate_limit_per_second, headers, kind, alert_cooldown_seconds, asynchronous))]
    #[allow(clippy::too_many_arguments)] // an endpoint's settings, as the Python call names them
    fn create_event_endpoint<'py>(
        &self,
        py: Python<'py>,
        url: String,
        event_types: Vec<String>,
        filter: Option<Bound<'py, PyDict>>,
        description: Option<String>,
        include_transcript: bool,
        rate_limit_per_second: u32,
        headers: HashMap<String, String>,
        kind: Option<String>,
        alert_cooldown_seconds: Option<u32>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut new = NewEventEndpoint::new(url).rate_limit_per_second(rate_limit_per_second);
        for event_type in event_types {
            new = new.event_type(event_type);
        }
        if let Some(filter) = filter {
            let filter = event_filter(json_arg(filter.as_any(), "filter")?)?;
            if !filter.provider.is_empty() {
                new = new.provider(filter.provider);
            }
            for tag in filter.tags {
                new = new.tag(tag);
            }
            for (key, value) in filter.metadata {
                new = new.metadata(key, value);
            }
            if !filter.monitor_id.is_empty() {
                new = new.monitor(filter.monitor_id);
            }
        }
        if let Some(description) = description {
            new = new.description(description);
        }
        if include_transcript {
            new = new.include_transcript();
        }
        for (name, value) in headers {
            new = new.header(name, value);
        }
        match kind.as_deref() {
            None | Some("webhook") => {}
            Some("slack") => new = new.slack(),
            Some(other) => {
                return Err(invalid(vec![FieldViolation::new(
                    "kind",
                    format!("must be webhook or slack, not {other:?}"),
                )]));
            }
        }
        if let Some(seconds) = alert_cooldown_seconds {
            new = new.alert_cooldown(Duration::from_secs(seconds.into()));
        }
        let client = self.client()?;
        run(py, asynchronous, async move {
            let (endpoint, secret) = client.event_endpoints().create(new).await?;
            Ok(Output::Json(serde_json::json!({
                "endpoint": convert::event_endpoint(&endpoint),
                "secret": secret,
            })))
        })
    }

    #[pyo3(signature = (asynchronous))]
    fn list_event_endpoints<'py>(
        &self,
        py: Python<'py>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let endpoints = client.event_endpoints().list().await?;
            Ok(Output::Json(Value::Array(endpoints.iter().map(convert::event_endpoint).collect())))
        })
    }

    #[pyo3(signature = (endpoint_id, asynchronous))]
    fn get_event_endpoint<'py>(
        &self,
        py: Python<'py>,
        endpoint_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let endpoint = client.event_endpoints().get(&endpoint_id).await?;
            Ok(Output::Json(convert::event_endpoint(&endpoint)))
        })
    }

    #[pyo3(signature = (endpoint_id, changes, asynchronous))]
    fn update_event_endpoint<'py>(
        &self,
        py: Python<'py>,
        endpoint_id: String,
        changes: Bound<'py, PyDict>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let changes: EndpointChangesJson =
            parse("changes", json_arg(changes.as_any(), "changes")?)?;
        let mut change = EventEndpointChange::default();
        if let Some(url) = changes.url {
            change = change.url(url);
        }
        if let Some(description) = changes.description {
            change = change.description(description);
        }
        if let Some(event_types) = changes.event_types {
            change = change.event_types(event_types);
        }
        if let Some(filter) = changes.filter {
            change = change.filter(event_filter(filter)?);
        }
        if let Some(include) = changes.include_transcript {
            change = change.include_transcript(include);
        }
        if let Some(limit) = changes.rate_limit_per_second {
            change = change.rate_limit_per_second(limit);
        }
        if let Some(headers) = changes.headers {
            change = change.headers(headers);
        }
        if let Some(enabled) = changes.enabled {
            change = change.enabled(enabled);
        }
        if let Some(seconds) = changes.alert_cooldown_seconds {
            change = change.alert_cooldown(Duration::from_secs(seconds.into()));
        }
        let client = self.client()?;
        run(py, asynchronous, async move {
            let endpoint = client.event_endpoints().update(&endpoint_id, change).await?;
            Ok(Output::Json(convert::event_endpoint(&endpoint)))
        })
    }

    #[pyo3(signature = (endpoint_id, asynchronous))]
    fn delete_event_endpoint<'py>(
        &self,
        py: Python<'py>,
        endpoint_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            client.event_endpoints().delete(&endpoint_id).await?;
            Ok(Output::Json(Value::Null))
        })
    }

    #[pyo3(signature = (endpoint_id, grace_period_s, asynchronous))]
    fn rotate_event_endpoint_secret<'py>(
        &self,
        py: Python<'py>,
        endpoint_id: String,
        grace_period_s: Option<f64>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let grace = grace_period_s.map(|value| seconds("grace_period", value)).transpose()?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let (endpoint, secret) =
                client.event_endpoints().rotate_secret(&endpoint_id, grace).await?;
            Ok(Output::Json(serde_json::json!({
                "endpoint": convert::event_endpoint(&endpoint),
                "secret": secret,
            })))
        })
    }

    #[pyo3(signature = (endpoint_id, asynchronous))]
    fn send_test_event<'py>(
        &self,
        py: Python<'py>,
        endpoint_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let event_id = client.event_endpoints().send_test_event(&endpoint_id).await?;
            Ok(Output::Json(Value::String(event_id)))
        })
    }

    #[pyo3(signature = (endpoint_id, event_id, failed_from, failed_to, asynchronous))]
    fn replay_events<'py>(
        &self,
        py: Python<'py>,
        endpoint_id: String,
        event_id: Option<String>,
        failed_from: Option<String>,
        failed_to: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let from = time_arg("failed_from", failed_from)?;
        let to = time_arg("failed_to", failed_to)?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let endpoints = client.event_endpoints();
            let replayed = match (event_id, from) {
                (Some(event_id), _) => endpoints.replay_event(&endpoint_id, &event_id).await?,
                (None, from) => {
                    let from = from.map_or(std::time::SystemTime::UNIX_EPOCH, Into::into);
                    endpoints.replay_failed(&endpoint_id, from, to.map(Into::into)).await?
                }
            };
            Ok(Output::Json(serde_json::json!(replayed)))
        })
    }

    #[pyo3(signature = (endpoint_id, event_id, outcome, limit, asynchronous))]
    fn list_event_attempts<'py>(
        &self,
        py: Python<'py>,
        endpoint_id: String,
        event_id: Option<String>,
        outcome: Option<String>,
        limit: usize,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let outcome = match outcome.as_deref() {
            None => None,
            Some("succeeded") => Some(AttemptOutcomeFilter::Succeeded),
            Some("failed") => Some(AttemptOutcomeFilter::Failed),
            Some(other) => {
                return Err(invalid(vec![FieldViolation::new(
                    "outcome",
                    format!("must be succeeded or failed, not {other:?}"),
                )]));
            }
        };
        let client = self.client()?;
        run(py, asynchronous, async move {
            let endpoints = client.event_endpoints();
            let mut all = Vec::new();
            let mut page_token = None;
            while all.len() < limit {
                let page = endpoints
                    .attempts(&endpoint_id, event_id.as_deref(), outcome, page_token)
                    .await?;
                all.extend(page.attempts.iter().map(convert::event_attempt));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = Some(page.next_page_token);
            }
            all.truncate(limit);
            Ok(Output::Json(Value::Array(all)))
        })
    }

    #[pyo3(signature = (integration_id, delivery_id, asynchronous))]
    fn replay_delivery<'py>(
        &self,
        py: Python<'py>,
        integration_id: String,
        delivery_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let delivery = client.integrations().replay(&integration_id, &delivery_id).await?;
            Ok(Output::Json(convert::delivery(delivery)))
        })
    }

    #[pyo3(signature = (asynchronous))]
    fn list_projects<'py>(
        &self,
        py: Python<'py>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let projects = client.list_projects().await?;
            Ok(Output::Json(Value::Array(projects.iter().map(convert::project).collect())))
        })
    }

    #[pyo3(signature = (name, asynchronous))]
    fn create_project<'py>(
        &self,
        py: Python<'py>,
        name: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::project(&client.create_project(&name).await?)))
        })
    }

    #[pyo3(signature = (name, scopes, project_id, asynchronous))]
    fn create_api_key<'py>(
        &self,
        py: Python<'py>,
        name: String,
        scopes: Vec<String>,
        project_id: Option<String>,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let scopes = scopes
            .iter()
            .map(|scope| {
                name_arg("scopes", scope, convert::scope_from_name, "admin, ingest or read")
            })
            .collect::<PyResult<Vec<_>>>()?;
        let client = self.client()?;
        run(py, asynchronous, async move {
            let created = client.create_api_key(&name, &scopes, project_id).await?;
            let mut key = convert::api_key(created.api_key);
            key["secret"] = Value::String(created.secret);
            Ok(Output::Json(key))
        })
    }

    #[pyo3(signature = (include_revoked, asynchronous))]
    fn list_api_keys<'py>(
        &self,
        py: Python<'py>,
        include_revoked: bool,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            let keys = client.list_api_keys(include_revoked).await?;
            Ok(Output::Json(Value::Array(keys.into_iter().map(convert::api_key).collect())))
        })
    }

    #[pyo3(signature = (api_key_id, asynchronous))]
    fn revoke_api_key<'py>(
        &self,
        py: Python<'py>,
        api_key_id: String,
        asynchronous: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client()?;
        run(py, asynchronous, async move {
            Ok(Output::Json(convert::api_key(client.revoke_api_key(&api_key_id).await?)))
        })
    }
}

/// Verifies an event earshot sent (`earshot::verify_webhook`, the server's own Standard Webhooks
/// code) and returns its body as text; `ValueError` naming why it does not verify.
#[pyfunction]
#[allow(clippy::needless_pass_by_value)] // pyo3 extracts the arguments as owned values
fn verify_webhook(
    headers: std::collections::HashMap<String, String>,
    body: &[u8],
    secrets: Vec<String>,
) -> PyResult<String> {
    let pairs = headers.iter().map(|(name, value)| (name.as_str(), value.as_str()));
    earshot::verify_webhook(pairs, body, &secrets)
        .map(|event| event.to_string())
        .map_err(|error| pyo3::exceptions::PyValueError::new_err(error.to_string()))
}

#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Client>()?;
    module.add_function(wrap_pyfunction!(verify_webhook, module)?)?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
