//! The console's pages as maud markup: every value from a call is escaped by the macro. Layout
//! and a small stylesheet inline (no external file or CDN); readable at 1280 px and at phone
//! width; state is never told by colour alone (issues carry a word and a mark).

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::CallFilters;
use crate::model::datapoints::{DatapointPage, DatapointView};

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
";

/// Seeks the player to a clicked (or Enter-pressed) turn and marks the turn being spoken.
pub const SCRIPT: &str = r#"(() => {
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
                        nav { a href="/console/calls" { "Calls" } }
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

pub fn calls(csrf: &str, filters: &CallFilters, page: &DatapointPage) -> Markup {
    layout(
        "Calls",
        Some(csrf),
        &html! {
            h1 { "Calls" }
            form class="filters" method="get" action="/console/calls" {
                label { "Provider" input name="provider" value=(filters.provider); }
                label { "Call id" input name="call_id" value=(filters.call_id); }
                label { "Tag" input name="tag" value=(filters.tag); }
                label { "Transcript words" input name="text" value=(filters.text); }
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
        ("provider", &filters.provider),
        ("call_id", &filters.call_id),
        ("tag", &filters.tag),
        ("text", &filters.text),
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

pub fn call(csrf: &str, view: &DatapointView) -> Markup {
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
                    div { (turn.content) }
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
        }))
    }
}
