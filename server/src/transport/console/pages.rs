//! The console's pages as maud markup: every value from a call is escaped by the macro. Layout
//! and a small stylesheet inline (no external file or CDN); readable at 1280 px and at phone
//! width; state is never told by colour alone (issues carry a word and a mark).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::CallFilters;
use crate::model::datapoints::{DatapointPage, DatapointView};
use crate::model::deliveries::{DeliveryPage, WebhookDelivery};
use crate::model::events::{AttemptRecord, Endpoint};
use crate::model::ingest::IngestRecord;
use crate::model::integrations::{Integration, IntegrationStatus, Provider, WebhookAuthType};
use crate::model::monitors::{Monitor, MonitorSummary};
use crate::model::projects::Project;

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
header{display:flex;gap:1rem;align-items:center;padding:.6rem 1rem;background:#1f2937;color:#fff}
header a{color:#fff}header form{margin-left:auto}main{padding:1rem;max-width:1200px;margin:auto}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}
.filters{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:1rem}.filters label{display:flex;flex-direction:column;font-size:.85rem}
.issue{font-weight:600}.turn{padding:.4rem .6rem;border-left:4px solid #9ca3af;margin:.3rem 0;cursor:pointer}
.turn[data-role=assistant]{border-left-style:double}.turn.speaking{background:#fff7d6;outline:2px solid #b45309}
.muted{color:#555;font-size:.85rem}audio{width:100%}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
@media (max-width:700px){.wide{display:none}th,td{padding:.3rem}}
:focus-visible{outline:3px solid #2563eb;outline-offset:2px}
.columns{display:flex;flex-wrap:wrap;gap:2rem}.columns>*{flex:1 1 320px}.notice{padding:.5rem .8rem;border:2px solid #15803d;background:#f0fdf4}
form.stack label{display:block;margin:.6rem 0 .2rem}form.stack input,form.stack select,form.stack textarea{width:100%;max-width:36rem;box-sizing:border-box}
input,select,textarea,button{font:inherit}
";

/// Seeks the player to a clicked (or Enter-pressed) turn and marks the turn being spoken.
pub const SCRIPT: &str = r#"(() => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", () => {
      const field = document.getElementById(button.dataset.copy);
      field.select();
      const done = () => { button.textContent = "Copied"; };
      if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(field.value).then(done, () => { document.execCommand("copy"); done(); });
      else { document.execCommand("copy"); done(); }
    });
  }
  const player = document.querySelector("audio");
  const turns = [...document.querySelectorAll(".turn[data-start]")];
  if (!player) return;
  const seek = turn => { player.currentTime = Number(turn.dataset.start) / 1000; player.play().catch(() => {}); };
  for (const turn of turns) {
    turn.addEventListener("click", () => seek(turn));
    turn.addEventListener("keydown", event => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); seek(turn); } });
  }
  player.addEventListener("timeupdate", () => {
    const now = player.currentTime * 1000;
    for (const turn of turns) {
      const speaking = now >= Number(turn.dataset.start) && now < Number(turn.dataset.end);
      turn.classList.toggle("speaking", speaking);
      turn.setAttribute("aria-current", speaking ? "true" : "false");
    }
  });
})();"#;

fn layout(title: &str, csrf: Option<&str>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · earshot" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    strong { "earshot" }
                    @if let Some(csrf) = csrf {
                        nav {
                            a href="/console/calls" { "Calls" }
                            " · "
                            a href="/console/monitors" { "Monitors" }
                            " · "
                            a href="/console/integrations" { "Integrations" }
                            " · "
                            a href="/console/operations" { "Operations" }
                        }
                        form method="post" action="/console/sign-out" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
                script src="/console/console.js" defer {}
            }
        }
    }
}

pub fn sign_in(problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        &html! {
            h1 { "Sign in" }
            p { "Use an earshot API key with the read scope (an admin key may also manage)." }
            @if let Some(problem) = problem {
                p role="alert" class="issue" { "⚠ " (problem) }
            }
            form method="post" action="/console/sign-in" {
                label for="api_key" { "API key" }
                br;
                input id="api_key" name="api_key" type="password" autocomplete="off" required size="48";
                " "
                button type="submit" { "Sign in" }
            }
        },
    )
}

pub fn error(message: &str) -> Markup {
    layout(
        "Error",
        None,
        &html! {
            h1 { "Something went wrong" }
            p role="alert" { (message) }
            p { a href="/console/calls" { "Back to the calls" } }
        },
    )
}

fn time_text(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn duration_text(ms: Option<i64>) -> String {
    ms.map_or_else(|| "–".to_owned(), |ms| format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60))
}

pub fn calls(
    csrf: &str,
    filters: &CallFilters,
    projects: &[Project],
    page: &DatapointPage,
) -> Markup {
    layout(
        "Calls",
        Some(csrf),
        &html! {
            h1 { "Calls" }
            form class="filters" method="get" action="/console/calls" {
                label { "Project"
                    select name="project" {
                        option value="" { "All" }
                        @for project in projects {
                            option value=(project.id) selected[filters.project == project.id.to_string()] { (project.name) }
                        }
                    }
                }
                label { "Provider" input name="provider" value=(filters.provider); }
                label { "Source"
                    select name="source" {
                        @for (value, label) in [("", "Any"), ("webhook", "Webhook"), ("sdk", "SDK"), ("api", "API")] {
                            option value=(value) selected[filters.source == value] { (label) }
                        }
                    }
                }
                label { "Call id" input name="call_id" value=(filters.call_id); }
                label { "Tag" input name="tag" value=(filters.tag); }
                label { "Metadata (key=value)" input name="metadata" value=(filters.metadata); }
                label { "Transcript words" input name="text" value=(filters.text); }
                label { "From (UTC day)" input type="date" name="from" value=(filters.from); }
                label { "To (UTC day)" input type="date" name="to" value=(filters.to); }
                label { "Issues only" input type="checkbox" name="issues_only" value="1" checked[filters.issues_only.is_some()]; }
                button type="submit" { "Filter" }
            }
            @if page.datapoints.is_empty() {
                p { "No calls match." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Time" }
                        th scope="col" { "Provider" }
                        th scope="col" { "Call" }
                        th scope="col" class="wide" { "Duration" }
                        th scope="col" class="wide" { "Turns" }
                        th scope="col" { "Failed checks" }
                        th scope="col" class="wide" { "Tags" }
                    } }
                    tbody {
                        @for view in &page.datapoints {
                            @let datapoint = &view.datapoint;
                            @let failed = view.failed_checks();
                            tr {
                                td { (time_text(datapoint.occurred_at())) }
                                td { (datapoint.provider) }
                                td { a href={ "/console/calls/" (datapoint.id) } { (datapoint.call_id) } }
                                td class="wide" { (duration_text(datapoint.duration_ms)) }
                                td class="wide" { (datapoint.turns.len()) }
                                td {
                                    @if failed.is_empty() { span class="muted" { "none" } }
                                    @else { span class="issue" { "⚠ " (failed.join(", ")) } }
                                }
                                td class="wide" { (datapoint.tags.join(", ")) }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next_page_token {
                p { a rel="next" href={ "/console/calls?" (next_query(filters, next)) } { "Older calls →" } }
            }
        },
    )
}

/// The list's query string for the page after `token`, keeping the filters.
fn next_query(filters: &CallFilters, token: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in [
        ("project", &filters.project),
        ("provider", &filters.provider),
        ("source", &filters.source),
        ("call_id", &filters.call_id),
        ("tag", &filters.tag),
        ("metadata", &filters.metadata),
        ("text", &filters.text),
        ("from", &filters.from),
        ("to", &filters.to),
    ] {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    if filters.issues_only.is_some() {
        query.append_pair("issues_only", "1");
    }
    query.append_pair("page", token);
    query.finish()
}

fn pairs(value: &serde_json::Value) -> Vec<(String, String)> {
    value
        .as_object()
        .map(|object| {
            object
                .iter()
                .filter(|(_, value)| !value.is_null())
                .map(|(key, value)| {
                    let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                    (key.clone(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn call(
    csrf: &str,
    view: &DatapointView,
    ingests: &[IngestRecord],
    deliveries: &[WebhookDelivery],
) -> Markup {
    let datapoint = &view.datapoint;
    let metrics = serde_json::to_value(&datapoint.metrics).unwrap_or_default();
    let analysis = serde_json::to_value(&datapoint.analysis).unwrap_or_default();
    let metadata = serde_json::Value::Object(datapoint.metadata.clone());
    html! {
        (layout(&format!("Call {}", datapoint.call_id), Some(csrf), &html! {
            p { a href="/console/calls" { "← Calls" } }
            h1 { "Call " (datapoint.call_id) }
            p class="muted" {
                (datapoint.provider) " · " (time_text(datapoint.occurred_at())) " · "
                (duration_text(datapoint.duration_ms)) " · datapoint " (datapoint.id)
            }
            @if view.audio.is_some() {
                audio controls preload="metadata" src={ "/console/calls/" (datapoint.id) "/audio" } {
                    "Your browser cannot play this recording."
                }
                p class="muted" { "Select a turn to play from it." }
            }
            p {
                a href={ "/console/calls/" (datapoint.id) "/json" } download { "Download the call (JSON)" }
                @if view.audio.is_some() {
                    " · "
                    a href={ "/console/calls/" (datapoint.id) "/audio" } download { "Download the recording" }
                }
            }
            h2 { "Transcript" }
            @if datapoint.turns.is_empty() { p { "No turns." } }
            @for turn in &datapoint.turns {
                @let end = turn.end_ms.unwrap_or(turn.start_ms);
                div class="turn" tabindex="0" role="button" data-role=(turn.role.as_str())
                    data-start=(turn.start_ms) data-end=(end) {
                    strong { (turn.role.as_str()) }
                    " "
                    span class="muted" {
                        (duration_text(Some(turn.start_ms)))
                        @if let Some(channel) = turn.channel { " · channel " (channel) }
                    }
                    @if turn.unrecognized {
                        div class="muted" { "⚠ speech here was not recognised" }
                    } @else {
                        div { (turn.content) }
                    }
                }
            }
            h2 { "Checks" }
            @if view.check_results.is_empty() { p { "No checks ran on this call." } }
            @else {
                table {
                    thead { tr { th { "Check" } th { "Value" } th { "Result" } th class="wide" { "Why" } } }
                    tbody {
                        @for result in &view.check_results {
                            tr {
                                td { (result.value.name) }
                                td { (result.value.value.as_ref().map_or_else(|| "–".to_owned(), |value| serde_json::to_value(value).map(|value| value.to_string()).unwrap_or_default())) }
                                td {
                                    @if result.is_open_issue() { span class="issue" { "⚠ issue" } }
                                    @else if result.value.is_issue { "resolved" }
                                    @else { "pass" }
                                }
                                td class="wide" { (result.value.explanation) }
                            }
                        }
                    }
                }
            }
            h2 { "Metrics" }
            dl { @for (key, value) in pairs(&metrics) { dt { (key) } dd { (value) } } }
            h2 { "Provider analysis" }
            dl { @for (key, value) in pairs(&analysis) { dt { (key) } dd { (value) } } }
            h2 { "Tags and metadata" }
            p { @if datapoint.tags.is_empty() { "No tags." } @else { (datapoint.tags.join(", ")) } }
            dl { @for (key, value) in pairs(&metadata) { dt { (key) } dd { (value) } } }
            h2 { "How it arrived" }
            @if ingests.is_empty() { p { "No ingest of this call is kept." } }
            @else {
                table {
                    thead { tr {
                        th scope="col" { "Received" }
                        th scope="col" { "Source" }
                        th scope="col" { "State" }
                        th scope="col" class="wide" { "Attempts" }
                        th scope="col" { "Problem" }
                    } }
                    tbody {
                        @for ingest in ingests {
                            tr {
                                td { (time_text(ingest.created_at)) }
                                td { (ingest.source.as_str()) }
                                td { (ingest.state.as_str()) }
                                td class="wide" { (ingest.attempts) }
                                td { @if ingest.last_error.is_empty() { span class="muted" { "none" } } @else { (ingest.last_error) } }
                            }
                        }
                    }
                }
            }
            h3 { "Webhook deliveries" }
            @if deliveries.is_empty() { p { "None: the call did not come by webhook, or its deliveries were pruned." } }
            @else {
                table {
                    thead { tr {
                        th scope="col" { "Received" }
                        th scope="col" { "Verdict" }
                        th scope="col" class="wide" { "Event" }
                        th scope="col" { "Integration" }
                    } }
                    tbody {
                        @for delivery in deliveries {
                            tr {
                                td { (time_text(delivery.received_at)) }
                                td { (delivery.verdict.as_str()) " (" (delivery.http_status) ")" }
                                td class="wide" { (delivery.event_type) }
                                td { a href={ "/console/integrations/" (delivery.integration_id) } { "its log" } }
                            }
                        }
                    }
                }
            }
        }))
    }
}

fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

/// A monitor's issue rate per day as a small SVG line (days without calls are gaps on the
/// time axis), with the figures in its title for screen readers and on hover.
fn chart(summary: &MonitorSummary, days: i64) -> Markup {
    const WIDTH: f64 = 280.0;
    const HEIGHT: f64 = 60.0;
    #[allow(clippy::cast_precision_loss)]
    let span = (days.max(1) * 86_400_000) as f64;
    let end = summary
        .buckets
        .last()
        .and_then(|bucket| bucket.start)
        .map_or(0, |start| start.timestamp_millis() + 86_400_000);
    #[allow(clippy::cast_precision_loss)]
    let points: Vec<(f64, f64, String)> = summary
        .buckets
        .iter()
        .filter_map(|bucket| {
            let start = bucket.start?;
            let x = WIDTH - (end - start.timestamp_millis()) as f64 / span * WIDTH;
            let y = HEIGHT - bucket.issue_rate() * (HEIGHT - 4.0) - 2.0;
            let label = format!(
                "{}: {} of {} calls with issues",
                start.format("%Y-%m-%d"),
                bucket.issues,
                bucket.datapoints
            );
            Some((x.max(0.0), y, label))
        })
        .collect();
    let line: Vec<String> = points.iter().map(|(x, y, _)| format!("{x:.1},{y:.1}")).collect();
    let description = format!(
        "Issue rate per day over {days} days: {}",
        points.iter().map(|(_, _, label)| label.as_str()).collect::<Vec<_>>().join("; ")
    );
    html! {
        svg width=(WIDTH) height=(HEIGHT) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
            aria-label=(description) class="chart" {
            title { (description) }
            line x1="0" y1=(HEIGHT - 2.0) x2=(WIDTH) y2=(HEIGHT - 2.0) stroke="#999" {}
            @if line.len() > 1 {
                polyline points=(line.join(" ")) fill="none" stroke="#b45309" stroke-width="2" {}
            }
            @for (x, y, label) in &points {
                circle cx=(format!("{x:.1}")) cy=(format!("{y:.1}")) r="3" fill="#b45309" {
                    title { (label) }
                }
            }
        }
    }
}

pub fn monitors(csrf: &str, rows: &[(Monitor, MonitorSummary)]) -> Markup {
    layout(
        "Monitors",
        Some(csrf),
        &html! {
            h1 { "Monitors" }
            p class="muted" { "The last " (super::CHART_DAYS) " days." }
            @if rows.is_empty() { p { "No monitors yet: create one with MonitorService or an SDK." } }
            @else {
                table {
                    thead { tr {
                        th scope="col" { "Monitor" }
                        th scope="col" class="wide" { "Checks" }
                        th scope="col" { "Calls" }
                        th scope="col" { "With issues" }
                        th scope="col" { "Issue rate per day" }
                    } }
                    tbody {
                        @for (monitor, summary) in rows {
                            tr {
                                td { a href={ "/console/monitors/" (monitor.id) } { (monitor.name) } }
                                td class="wide" { (monitor.checks.len()) }
                                td { (summary.total.datapoints) }
                                td { (summary.total.issues) " (" (percent(summary.total.issue_rate())) ")" }
                                td { (chart(summary, super::CHART_DAYS)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn monitor(
    csrf: &str,
    monitor: &Monitor,
    summary: &MonitorSummary,
    calls: &DatapointPage,
) -> Markup {
    layout(
        &format!("Monitor {}", monitor.name),
        Some(csrf),
        &html! {
            p { a href="/console/monitors" { "← Monitors" } }
            h1 { "Monitor " (monitor.name) }
            @if !monitor.description.is_empty() { p { (monitor.description) } }
            p {
                (summary.total.datapoints) " calls in the last " (super::CHART_DAYS) " days, "
                (summary.total.issues) " with issues (" (percent(summary.total.issue_rate())) ")."
            }
            (chart(summary, super::CHART_DAYS))
            h2 { "Checks" }
            table {
                thead { tr {
                    th scope="col" { "Check" }
                    th scope="col" { "Rule" }
                    th scope="col" { "Issues" }
                    th scope="col" class="wide" { "Mean" }
                } }
                tbody {
                    @for check in &monitor.checks {
                        @let figures = summary.total.checks.iter().find(|figures| figures.check_id == check.id);
                        tr {
                            td { (check.name) " (v" (check.version) ")" }
                            td {
                                (check.rule.measure.as_str()) " " (check.rule.comparator.as_str().replace('_', " "))
                                @if let Some(threshold) = &check.rule.threshold {
                                    " " (serde_json::to_value(threshold).map(|value| value.to_string()).unwrap_or_default())
                                }
                                @if let Some(phrase) = &check.rule.phrase { " \"" (phrase) "\"" }
                            }
                            td { (figures.map_or(0, |figures| figures.issues)) " of " (figures.map_or(0, |figures| figures.datapoints)) }
                            td class="wide" { (figures.and_then(|figures| figures.mean).map_or_else(|| "–".to_owned(), |mean| format!("{mean:.2}"))) }
                        }
                    }
                }
            }
            h2 { "Calls with open issues" }
            @if calls.datapoints.is_empty() { p { "None." } }
            @else {
                table {
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Call" } th scope="col" { "Failed checks" } } }
                    tbody {
                        @for view in &calls.datapoints {
                            tr {
                                td { (time_text(view.datapoint.occurred_at())) }
                                td { a href={ "/console/calls/" (view.datapoint.id) } { (view.datapoint.call_id) } }
                                td class="issue" { "⚠ " (view.failed_checks().join(", ")) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// The share of an integration's requests refused by its rate limit, as text.
fn refused_share(integration: &Integration) -> String {
    if integration.request_count <= 0 {
        return "–".to_owned();
    }
    #[allow(clippy::cast_precision_loss)]
    let share = integration.rate_limited_count as f64 / integration.request_count as f64;
    percent(share)
}

pub fn integrations(csrf: &str, rows: &[(String, Integration)]) -> Markup {
    layout(
        "Integrations",
        Some(csrf),
        &html! {
            h1 { "Integrations" }
            p { a href="/console/integrations/new" { "New integration" } }
            @if rows.is_empty() { p { "No integrations yet." } }
            @else {
                table {
                    thead { tr {
                        th scope="col" { "Integration" }
                        th scope="col" { "Provider" }
                        th scope="col" class="wide" { "Project" }
                        th scope="col" { "Status" }
                        th scope="col" { "Requests" }
                        th scope="col" class="wide" { "Rate-limited" }
                        th scope="col" class="wide" { "Last used" }
                    } }
                    tbody {
                        @for (project, integration) in rows {
                            tr {
                                td { a href={ "/console/integrations/" (integration.id) } {
                                    @if integration.display_name.is_empty() { (integration.public_id) } @else { (integration.display_name) }
                                } }
                                td { (integration.provider.as_str()) }
                                td class="wide" { (project) }
                                td { (status_text(integration.status)) }
                                td { (integration.request_count) }
                                td class="wide" { (refused_share(integration)) }
                                td class="wide" { (integration.last_used_at.map_or_else(|| "never".to_owned(), time_text)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn status_text(status: IntegrationStatus) -> &'static str {
    match status {
        IntegrationStatus::Active => "● active",
        IntegrationStatus::Disabled => "○ disabled",
    }
}

/// Notices an integration's page shows after a form: created, secrets rotated, a delivery
/// replayed (the replay's id).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Notice {
    created: Option<String>,
    rotated: Option<String>,
    replayed: Option<String>,
}

pub fn integration(
    csrf: &str,
    integration: &Integration,
    webhook_url: &str,
    deliveries: &DeliveryPage,
    admin: bool,
    notice: &Notice,
) -> Markup {
    let name = if integration.display_name.is_empty() {
        integration.public_id.clone()
    } else {
        integration.display_name.clone()
    };
    let base = format!("/console/integrations/{}", integration.id);
    layout(
        &format!("Integration {name}"),
        Some(csrf),
        &html! {
            p { a href="/console/integrations" { "← Integrations" } }
            h1 { (name) }
            @if notice.created.is_some() {
                p class="notice" role="status" { "✓ Created. Paste the webhook URL below into " (integration.provider.as_str()) "." }
            }
            @if notice.rotated.is_some() {
                p class="notice" role="status" { "✓ Secrets rotated; the previous ones stay valid for their grace period." }
            }
            @if let Some(replayed) = &notice.replayed {
                p class="notice" role="status" { "✓ Replayed: see delivery " code { (replayed) } " at the top of the log." }
            }
            p { (integration.provider.as_str()) " · " (integration.auth_type.as_str()) " · " (status_text(integration.status)) " · " (integration.request_count) " requests" }
            h2 { "Webhook URL" }
            p { label for="webhook-url" { "Paste this into the provider's webhook settings:" } }
            p {
                input id="webhook-url" readonly size="80" value=(webhook_url);
                " "
                button type="button" data-copy="webhook-url" { "Copy" }
            }
            h2 { "Secrets" }
            ul {
                @for secret in &integration.secrets {
                    li {
                        (secret.name) " ending " code { (secret.last4) }
                        @if let Some(expires) = secret.expires_at { " · valid until " (time_text(expires)) } @else { " · current" }
                    }
                }
            }
            @if admin {
                details {
                    summary { "Rotate secrets" }
                    form class="stack" method="post" action={ (base) "/secrets" } {
                        input type="hidden" name="csrf" value=(csrf);
                        @for secret_name in integration.auth_type.secret_names() {
                            label for={ "rotate-" (secret_name) } { "New " (secret_name) }
                            input id={ "rotate-" (secret_name) } name={ "secret." (secret_name) } type="password" autocomplete="off" required;
                        }
                        label for="grace_hours" { "Hours the current secrets stay valid" }
                        input id="grace_hours" name="grace_hours" type="number" min="0" max="168" value="24";
                        p { button type="submit" { "Rotate" } }
                    }
                }
                form method="post" action={ (base) "/status" } {
                    input type="hidden" name="csrf" value=(csrf);
                    @if integration.status == IntegrationStatus::Active {
                        input type="hidden" name="status" value="disabled";
                        button type="submit" { "Disable (its webhooks will be answered 404)" }
                    } @else {
                        input type="hidden" name="status" value="active";
                        button type="submit" { "Enable" }
                    }
                }
                details {
                    summary { "Delete" }
                    form method="post" action={ (base) "/delete" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label { input type="checkbox" name="confirm" value="1" required; " Delete this integration: its webhook URL stops working, stored calls stay." }
                        " "
                        button type="submit" { "Delete" }
                    }
                }
            }
            h2 { "Latest deliveries" }
            @if deliveries.deliveries.is_empty() { p { "No requests yet." } }
            @else {
                table {
                    thead { tr {
                        th scope="col" { "Received" }
                        th scope="col" { "Verdict" }
                        th scope="col" class="wide" { "Call" }
                        th scope="col" { "Reason" }
                        @if admin { th scope="col" { "Replay" } }
                    } }
                    tbody {
                        @for delivery in &deliveries.deliveries {
                            tr id={ "delivery-" (delivery.id) } {
                                td { (time_text(delivery.received_at)) }
                                td { (delivery.verdict.as_str()) " (" (delivery.http_status) ")" }
                                td class="wide" { (delivery.call_id) }
                                td { @if delivery.error.is_empty() { span class="muted" { "–" } } @else { code { (delivery.error) } ": " (delivery.error_message) } }
                                @if admin {
                                    td {
                                        @if delivery.replayable {
                                            form method="post" action={ (base) "/deliveries/" (delivery.id) "/replay" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                button type="submit" aria-label={ "Replay delivery " (delivery.id) } { "Replay" }
                                            }
                                        } @else {
                                            span class="muted" { "not kept" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// What a new integration's form held when it was refused, and why.
#[derive(Debug, Default)]
pub struct Entered {
    pub project: String,
    pub display_name: String,
    pub options: String,
    pub problem: Option<String>,
}

/// How to connect each provider, beside the form (docs/API.md has the details).
fn setup_steps(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Twilio => &[
            "Copy the account's Auth Token (Twilio Console, Account info): 32 hex characters.",
            "Create the integration here, then copy its webhook URL.",
            "On each call set the recording status callback (TwiML <Record> or <Dial record>, or the Calls API's RecordingStatusCallback) to the webhook URL, method POST, with the completed event. Record dual-channel.",
            "Add ?first_turn=user to the URL when the caller speaks first.",
        ],
        Provider::Retell => &[
            "In Retell, copy an API key that has the webhook badge.",
            "Create the integration here, then copy its webhook URL.",
            "In the Retell dashboard set the agent's (or account's) webhook URL to it. call_ended and call_analyzed are stored.",
        ],
        Provider::Vapi => &[
            "Choose how Vapi authenticates: its secret (X-Vapi-Secret), a header token, or an HMAC credential.",
            "Create the integration here with that secret, then copy its webhook URL.",
            "Set the assistant's or phone number's Server URL to it with the matching credential, and include end-of-call-report in the server messages.",
        ],
        Provider::Elevenlabs => &[
            "In ElevenLabs (Agents platform settings) create a post-call webhook and copy its HMAC secret.",
            "Create the integration here, then set the webhook's URL to its webhook URL.",
            "Enable transcription webhooks, and audio webhooks for the recording.",
        ],
        Provider::Livekit => &[
            "Copy the LiveKit project's API key and API secret.",
            "Create the integration here, then copy its webhook URL.",
            "Add the URL in LiveKit Cloud's project settings (or webhook.urls in livekit.yaml), signed with that key. Egress and room_finished events are stored.",
        ],
        Provider::Bland => &[
            "In Bland, enable webhook signing and copy the signing secret.",
            "Create the integration here, then copy its webhook URL.",
            "Set the webhook parameter of the call (or the agent) to it.",
        ],
        Provider::Voicekit => &[
            "Choose a URL token (16 or more URL-safe characters) or an IP allowlist (options: {\"ip_allowlist\": [\"203.0.113.0/24\"]}).",
            "Create the integration here; paste its webhook URL into the platform, with ?token=<token> for a URL token.",
            "call_finalized is stored; call_ended adds the duration.",
        ],
        Provider::Webhook => &[
            "Standard Webhooks senders: paste their whsec_ signing secret. HMAC senders: the secret, and options naming their signature header.",
            "Create the integration here, then paste its webhook URL into the sender.",
            "Bodies in the ingest shape, lead voice events and call.completed events are stored.",
        ],
    }
}

/// An example of the options an auth type may need, for the form's hint.
fn options_example(provider: Provider, auth_type: WebhookAuthType) -> &'static str {
    match (provider, auth_type) {
        (_, WebhookAuthType::Hmac) => {
            r#"{"hmac": {"signature_header": "x-voiceoi-signature", "algorithm": "sha256", "encoding": "hex"}}"#
        }
        (_, WebhookAuthType::HeaderToken) => {
            r#"{"header_token": {"header_name": "authorization", "bearer_prefix": true}}"#
        }
        (_, WebhookAuthType::IpAllowlist) => r#"{"ip_allowlist": ["203.0.113.0/24"]}"#,
        (Provider::Twilio, _) => {
            r#"{"twilio": {"account_sid": "AC…"}, "default_first_turn": "user"}"#
        }
        _ => r#"{"rate_limit_per_minute": 1000}"#,
    }
}

pub fn new_integration(
    csrf: &str,
    provider: Provider,
    auth_type: WebhookAuthType,
    projects: &[Project],
    entered: &Entered,
) -> Markup {
    layout(
        "New integration",
        Some(csrf),
        &html! {
            p { a href="/console/integrations" { "← Integrations" } }
            h1 { "New " (provider.as_str()) " integration" }
            nav aria-label="Provider" {
                "Provider: "
                @for (index, other) in Provider::ALL.iter().enumerate() {
                    @if index > 0 { " · " }
                    @if *other == provider { strong aria-current="page" { (other.as_str()) } }
                    @else { a href={ "/console/integrations/new?provider=" (other.as_str()) } { (other.as_str()) } }
                }
            }
            @if provider.auth_types().len() > 1 {
                p {
                    "Authentication: "
                    @for (index, other) in provider.auth_types().iter().enumerate() {
                        @if index > 0 { " · " }
                        @if *other == auth_type { strong aria-current="true" { (other.as_str()) } }
                        @else { a href={ "/console/integrations/new?provider=" (provider.as_str()) "&auth_type=" (other.as_str()) } { (other.as_str()) } }
                    }
                }
            }
            @if let Some(problem) = &entered.problem {
                p role="alert" class="issue" { "⚠ " (problem) }
            }
            div class="columns" {
                form class="stack" method="post" action="/console/integrations" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="provider" value=(provider.as_str());
                    input type="hidden" name="auth_type" value=(auth_type.as_str());
                    label for="project" { "Project" }
                    select id="project" name="project" required {
                        @for project in projects {
                            option value=(project.id) selected[entered.project == project.id.to_string()] { (project.name) }
                        }
                    }
                    label for="display_name" { "Name (optional)" }
                    input id="display_name" name="display_name" value=(entered.display_name);
                    @for secret_name in auth_type.secret_names() {
                        label for={ "secret-" (secret_name) } { (secret_name) }
                        input id={ "secret-" (secret_name) } name={ "secret." (secret_name) } type="password" autocomplete="off" required;
                    }
                    label for="options" { "Options (JSON, optional)" }
                    textarea id="options" name="options" rows="3" placeholder=(options_example(provider, auth_type)) { (entered.options) }
                    p { button type="submit" { "Create" } }
                }
                section aria-labelledby="steps" {
                    h2 id="steps" { "Setting up " (provider.as_str()) }
                    ol { @for step in setup_steps(provider) { li { (step) } } }
                    p class="muted" { "Secrets are sealed at rest and never shown again; only their last characters are." }
                }
            }
        },
    )
}

/// A capped count as text: past the cap, "<cap>+".
fn count_text(count: u64) -> String {
    if count > super::QUEUE_COUNT_CAP {
        format!("{}+", super::QUEUE_COUNT_CAP)
    } else {
        count.to_string()
    }
}

pub fn operations(
    csrf: &str,
    depth: &[(Project, Vec<(crate::model::ingest::IngestState, u64)>)],
    stuck: &[IngestRecord],
    endpoints: &[Endpoint],
    can_retry: bool,
) -> Markup {
    layout(
        "Operations",
        Some(csrf),
        &html! {
            h1 { "Operations" }
            h2 { "Queue" }
            p class="muted" { "Calls stored and not yet searchable, per project and state." }
            table {
                thead { tr {
                    th scope="col" { "Project" }
                    @if let Some((_, counts)) = depth.first() {
                        @for (state, _) in counts { th scope="col" { (state.as_str().replace('_', " ")) } }
                    }
                } }
                tbody {
                    @for (project, counts) in depth {
                        tr {
                            td { (project.name) }
                            @for (_, count) in counts { td { (count_text(*count)) } }
                        }
                    }
                }
            }
            h2 { "Calls whose processing failed" }
            @if stuck.is_empty() { p { "None: every call was processed." } }
            @else {
                table {
                    thead { tr {
                        th scope="col" { "Call" }
                        th scope="col" { "State" }
                        th scope="col" class="wide" { "Attempts" }
                        th scope="col" { "Why" }
                        @if can_retry { th scope="col" { "Retry" } }
                    } }
                    tbody {
                        @for record in stuck {
                            tr {
                                td { (record.call_id) " " span class="muted" { "(" (record.provider) ")" } }
                                td { (record.state.as_str()) }
                                td class="wide" { (record.attempts) }
                                td { (record.last_error) }
                                @if can_retry {
                                    td {
                                        form method="post" action={ "/console/ingests/" (record.id) "/retry" } {
                                            input type="hidden" name="csrf" value=(csrf);
                                            button type="submit" { "Retry" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Event endpoints" }
            @if endpoints.is_empty() { p { "No event endpoints." } }
            @else {
                table {
                    thead { tr {
                        th scope="col" { "Endpoint" }
                        th scope="col" { "State" }
                        th scope="col" { "Sent" }
                        th scope="col" { "Failed" }
                        th scope="col" class="wide" { "Last success" }
                        th scope="col" class="wide" { "Last failure" }
                    } }
                    tbody {
                        @for endpoint in endpoints {
                            tr {
                                td { a href={ "/console/endpoints/" (endpoint.id) } { (endpoint.url) } @if !endpoint.description.is_empty() { " " span class="muted" { "(" (endpoint.description) ")" } } }
                                td {
                                    @if endpoint.enabled { "● enabled" }
                                    @else { "○ disabled (" (endpoint.disabled_reason) ")" }
                                }
                                td { (endpoint.sent) }
                                td { (endpoint.failed) }
                                td class="wide" { (endpoint.last_success_at.map_or_else(|| "never".to_owned(), time_text)) }
                                td class="wide" { (endpoint.last_failure_at.map_or_else(|| "never".to_owned(), time_text)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Whether `attempt` is the newest listed of its event (where its replay is offered).
fn newest_of_event(attempts: &[AttemptRecord], attempt: &AttemptRecord) -> bool {
    attempts.iter().find(|other| other.event_id == attempt.event_id).map(|newest| newest.id)
        == Some(attempt.id)
}

pub fn endpoint(
    csrf: &str,
    endpoint: &Endpoint,
    attempts: &[AttemptRecord],
    admin: bool,
) -> Markup {
    layout(
        "Event endpoint",
        Some(csrf),
        &html! {
            p { a href="/console/operations" { "← Operations" } }
            h1 { "Event endpoint" }
            p { code { (endpoint.url) } }
            p {
                @if endpoint.enabled { "● enabled" } @else { "○ disabled (" (endpoint.disabled_reason) ")" }
                " · " (endpoint.sent) " sent · " (endpoint.failed) " failed · "
                @if endpoint.event_types.is_empty() { "every event type" } @else { (endpoint.event_types.join(", ")) }
            }
            h2 { "Latest attempts" }
            @if attempts.is_empty() { p { "No attempts yet." } }
            @else {
                table {
                    thead { tr {
                        th scope="col" { "When" }
                        th scope="col" { "Event" }
                        th scope="col" { "Answer" }
                        th scope="col" class="wide" { "Latency" }
                        th scope="col" { "Error or response" }
                        @if admin { th scope="col" { "Replay" } }
                    } }
                    tbody {
                        @for attempt in attempts {
                            @let delivered = attempt.http_status.is_some_and(|status| (200..300).contains(&status));
                            tr {
                                td { (time_text(attempt.attempted_at)) }
                                td { (attempt.event_type) br; span class="muted" { (attempt.event_id) } }
                                @let answer = attempt.http_status.map_or_else(|| "no answer".to_owned(), |status| status.to_string());
                                td {
                                    @if delivered { "✓ " (answer) } @else { span class="issue" { "✗ " (answer) } }
                                }
                                td class="wide" { (attempt.latency_ms) " ms" }
                                td { @if attempt.error.is_empty() { (attempt.response_excerpt) } @else { (attempt.error) } }
                                @if admin {
                                    td {
                                        @if !delivered && endpoint.enabled && newest_of_event(attempts, attempt) {
                                            form method="post" action={ "/console/endpoints/" (endpoint.id) "/events/" (attempt.event_id) "/replay" } {
                                                input type="hidden" name="csrf" value=(csrf);
                                                button type="submit" { "Replay" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
