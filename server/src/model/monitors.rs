//! Monitors: a saved filter over stored calls and the checks every matching call gets. A
//! monitor is evaluated on each datapoint in the commit that stores it (`evaluate`), so no call
//! stored while the monitor exists is left unevaluated, even across a crash; calls stored before
//! it are evaluated by a backfill.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::checks::{self, Check, CheckValue};
use super::conversation::Source;
use super::datapoints::{
    Datapoint, DatapointQuery, TextQuery, contains_words, metadata_filter_text, verdict_text,
};

/// Which calls a monitor looks at: the filters of `SearchDatapoints` that describe a call
/// (all given ones must match), without paging or order. Stored as JSON in the monitor's row;
/// a shipped form is never changed (new fields are optional).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags_any: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags_all: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata_equals: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_contains: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub successful: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentiment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl MonitorFilter {
    /// The search that finds the calls this filter matches (for backfills and "calls of this
    /// monitor" views); `check` refuses what a search refuses.
    pub fn as_query(&self) -> DatapointQuery {
        DatapointQuery {
            project_id: self.project_id,
            provider: self.provider.clone(),
            source: self.source,
            tags_any: self.tags_any.clone(),
            tags_all: self.tags_all.clone(),
            metadata_equals: self.metadata_equals.clone(),
            from: self.from,
            to: self.to,
            text_contains: self.text_contains.clone(),
            integration_id: self.integration_id,
            successful: self.successful,
            sentiment: self.sentiment.clone(),
            outcome: self.outcome.clone(),
            ..DatapointQuery::default()
        }
    }

    /// Whether `datapoint` matches, by the same rules as a search (`storage::search_statement`):
    /// equal fields, any or all of the tags, metadata compared as the search's rows store it,
    /// `from` and `to` inclusive on `occurred_at`, and every word or quoted phrase of
    /// `text_contains` in the transcript's words.
    pub fn matches(&self, datapoint: &Datapoint) -> bool {
        self.matches_subject(&checks::Subject::new(datapoint))
    }

    fn matches_subject(&self, subject: &checks::Subject<'_>) -> bool {
        let datapoint = subject.datapoint;
        let equal = |wanted: &Option<String>, actual: &str| {
            wanted.as_deref().is_none_or(|wanted| wanted == actual)
        };
        let occurred = datapoint.occurred_at();
        self.project_id.is_none_or(|project| project == datapoint.project_id)
            && equal(&self.provider, &datapoint.provider)
            && self.source.is_none_or(|source| source == datapoint.source)
            && self.integration_id.is_none_or(|id| datapoint.integration_id == Some(id))
            && (self.tags_any.is_empty()
                || self.tags_any.iter().any(|tag| datapoint.tags.contains(tag)))
            && self.tags_all.iter().all(|tag| datapoint.tags.contains(tag))
            && self.metadata_equals.iter().all(|(key, value)| {
                datapoint
                    .metadata
                    .get(key)
                    .and_then(metadata_filter_text)
                    .is_some_and(|stored| &stored == value)
            })
            && self.from.is_none_or(|from| occurred >= from)
            && self.to.is_none_or(|to| occurred <= to)
            && self.text_contains.as_deref().is_none_or(|text| contains_terms(subject, text))
            && self.successful.is_none_or(|wanted| datapoint.analysis.successful == Some(wanted))
            && verdict_matches(&self.sentiment, datapoint.analysis.sentiment.as_deref())
            && verdict_matches(&self.outcome, datapoint.analysis.outcome.as_deref())
    }
}

/// A verdict filter as a search applies it: compared as stored (`verdict_text`); a call
/// without the verdict matches no filter on it.
fn verdict_matches(wanted: &Option<String>, actual: Option<&str>) -> bool {
    wanted.as_deref().is_none_or(|wanted| {
        actual.is_some_and(|actual| verdict_text(actual) == verdict_text(wanted))
    })
}

/// Whether every term of `text` occurs in the transcript, a phrase's words in order across
/// turns as the full-text index reads them.
fn contains_terms(subject: &checks::Subject<'_>, text: &str) -> bool {
    let lines: Vec<&str> = subject.turn_lines().filter(|line| !line.is_empty()).collect();
    let transcript = lines.join(" ");
    TextQuery::parse(text).terms.iter().all(|term| contains_words(&transcript, &term.join(" ")))
}

/// A monitor as evaluated: its filter and its checks at their current versions.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub description: String,
    pub filter: MonitorFilter,
    pub checks: Vec<Check>,
    /// Raised when its list of checks changes; a matched call records the version that
    /// evaluated it, so what that evaluation added to the summary can be taken out again.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What the monitors of a datapoint's organization found on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// One result per check of any matching monitor (a check in two monitors is evaluated once:
    /// evaluation is deterministic), by check id.
    pub results: BTreeMap<Uuid, CheckValue>,
    /// Each matching monitor, and whether any of its checks is an issue.
    pub monitors: Vec<(Uuid, bool)>,
}

/// `monitors` (those of the datapoint's organization) on `subject`'s datapoint. Results carry
/// no name or explanation (a stored result takes them from its check version when read).
pub fn evaluate(monitors: &[Monitor], subject: &checks::Subject<'_>) -> Evaluation {
    let mut evaluation =
        Evaluation { results: BTreeMap::new(), monitors: Vec::with_capacity(monitors.len()) };
    let datapoint = subject.datapoint;
    for monitor in monitors {
        if monitor.organization_id != datapoint.organization_id
            || !monitor.filter.matches_subject(subject)
        {
            continue;
        }
        let mut issue = false;
        for check in &monitor.checks {
            let result = evaluation
                .results
                .entry(check.id)
                .or_insert_with(|| checks::evaluate_in(subject, check, false));
            issue |= result.is_issue;
        }
        evaluation.monitors.push((monitor.id, issue));
    }
    evaluation
}

/// How a summary groups calls: by the UTC hour or day they took place in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub const HOUR_MS: i64 = 3_600_000;

    pub fn millis(self) -> i64 {
        match self {
            Self::Hour => Self::HOUR_MS,
            Self::Day => 24 * Self::HOUR_MS,
        }
    }

    /// The start of the bucket `at_ms` falls in.
    pub fn bucket_of(self, at_ms: i64) -> i64 {
        at_ms - at_ms.rem_euclid(self.millis())
    }
}

/// What one of a monitor's checks found in a bucket (Okareo's `average_metrics` per check).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckFigures {
    pub check_id: Uuid,
    /// The check's current name (its latest version's).
    pub name: String,
    /// Calls it evaluated.
    pub datapoints: u64,
    pub issues: u64,
    /// The mean of its numeric results (booleans as 1 or 0); none for text results.
    pub mean: Option<f64>,
}

/// What a monitor found in one bucket, or over a whole summary (Okareo's
/// `DatapointSummaryItem` and `DatapointFilterItem` figures).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SummaryFigures {
    /// The bucket's start; a summary's total starts at its first bucket.
    pub start: Option<DateTime<Utc>>,
    /// Calls the monitor matched.
    pub datapoints: u64,
    /// Calls on which any of its checks was an issue.
    pub issues: u64,
    /// Per check, in the monitor's order (checks since removed from it after them).
    pub checks: Vec<CheckFigures>,
}

impl SummaryFigures {
    /// Issues per matched call, 0 with no call.
    pub fn issue_rate(&self) -> f64 {
        if self.datapoints == 0 {
            0.0
        } else {
            #[allow(clippy::cast_precision_loss)]
            let rate = self.issues as f64 / self.datapoints as f64;
            rate
        }
    }

    /// The checks that were an issue at least once, by name.
    pub fn failed_checks(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|check| check.issues > 0)
            .map(|check| check.name.as_str())
            .collect()
    }
}

/// A monitor's summary over a time range.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorSummary {
    pub monitor_id: Uuid,
    pub granularity: Granularity,
    /// Buckets with at least one call, oldest first.
    pub buckets: Vec<SummaryFigures>,
    pub total: SummaryFigures,
}

/// Where a backfill stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackfillState {
    Running,
    Succeeded,
    Failed,
}

impl BackfillState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// A monitor evaluated over calls stored before it (or before its last change), newest first,
/// in batches, each committed with the cursor it reached: after a crash it resumes there.
#[derive(Clone, Debug, PartialEq)]
pub struct Backfill {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub monitor_id: Uuid,
    pub state: BackfillState,
    /// Calls that took place in `[from, to)`; all when none.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The last call done, in the searches' order.
    pub cursor: Option<super::datapoints::DatapointCursor>,
    /// The organization's calls in the range when it started (its progress is `processed` of
    /// these; calls stored during it are evaluated as they arrive).
    pub total: u64,
    pub processed: u64,
    /// Calls the monitor's filter matched, and those with an issue.
    pub matched: u64,
    pub issues: u64,
    pub error: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Backfill {
    /// A backfill of `monitor_id` over the organization's calls in `[from, to)`, `total` of
    /// them, running from `now` with nothing done yet.
    pub fn start(
        organization_id: Uuid,
        monitor_id: Uuid,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        total: u64,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            organization_id,
            monitor_id,
            state: BackfillState::Running,
            from,
            to,
            cursor: None,
            total,
            processed: 0,
            matched: 0,
            issues: 0,
            error: String::new(),
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::model::checks::{Comparator, Measure, Rule, Value};
    use crate::model::conversation::{Conversation, ProviderExtras, Role, Turn};

    fn datapoint() -> Datapoint {
        let conversation = Conversation {
            call_id: "call_1".into(),
            context_token: "ctx".into(),
            source: Source::Webhook,
            provider: "retell".into(),
            started_at: Some(Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()),
            ended_at: None,
            duration_ms: Some(9_000),
            from_number: None,
            to_number: None,
            direction: None,
            turns: vec![
                Turn::said(Role::Assistant, "Hello, this is Ava from Acme.", 0, Some(2_000)),
                Turn::said(Role::User, "I want to speak to a human, please.", 4_000, Some(6_000)),
                Turn::said(Role::Assistant, "Transferring you now.", 8_000, Some(9_000)),
            ],
            audio: None,
            diarization: true,
            first_turn: Role::Assistant,
            assistant_channel: None,
            tags: vec!["billing".into(), "vip".into()],
            metadata: serde_json::json!({"queue": "billing", "attempt": 2})
                .as_object()
                .cloned()
                .unwrap(),
            extras: ProviderExtras {
                successful: Some(false),
                sentiment: Some(" Negative".into()),
                ..ProviderExtras::default()
            },
            mut_id: None,
            integration_id: None,
        };
        let organization = Uuid::from_u128(1);
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 5, 0).unwrap();
        Datapoint::merge(
            None,
            &conversation,
            None,
            organization,
            Uuid::from_u128(2),
            Uuid::now_v7(),
            now,
        )
    }

    #[test]
    fn a_filter_matches_as_the_search_does() {
        let datapoint = datapoint();
        let matches = |filter: MonitorFilter| filter.matches(&datapoint);
        assert!(matches(MonitorFilter::default()));
        assert!(matches(MonitorFilter { provider: Some("retell".into()), ..Default::default() }));
        assert!(!matches(MonitorFilter { provider: Some("vapi".into()), ..Default::default() }));
        assert!(matches(MonitorFilter {
            project_id: Some(Uuid::from_u128(2)),
            ..Default::default()
        }));
        assert!(!matches(MonitorFilter {
            project_id: Some(Uuid::from_u128(3)),
            ..Default::default()
        }));
        assert!(matches(MonitorFilter { source: Some(Source::Webhook), ..Default::default() }));
        assert!(!matches(MonitorFilter { source: Some(Source::Sdk), ..Default::default() }));
        let tags = |any: &[&str], all: &[&str]| MonitorFilter {
            tags_any: any.iter().map(|tag| (*tag).to_owned()).collect(),
            tags_all: all.iter().map(|tag| (*tag).to_owned()).collect(),
            ..Default::default()
        };
        assert!(matches(tags(&["sales", "vip"], &[])));
        assert!(!matches(tags(&["sales"], &[])));
        assert!(matches(tags(&[], &["vip", "billing"])));
        assert!(!matches(tags(&[], &["vip", "sales"])));
        let pair = |key: &str, value: &str| MonitorFilter {
            metadata_equals: vec![(key.into(), value.into())],
            ..Default::default()
        };
        assert!(matches(pair("queue", "billing")));
        assert!(matches(pair("attempt", "2")), "numbers compare as the search stores them");
        assert!(!matches(pair("queue", "sales")));
        assert!(!matches(pair("missing", "x")));
        let at = |hour: u32| Some(Utc.with_ymd_and_hms(2026, 11, 30, hour, 0, 0).unwrap());
        assert!(matches(MonitorFilter { from: at(12), to: at(12), ..Default::default() }));
        assert!(!matches(MonitorFilter { from: at(13), ..Default::default() }));
        assert!(!matches(MonitorFilter { to: at(11), ..Default::default() }));
        let text =
            |text: &str| MonitorFilter { text_contains: Some(text.into()), ..Default::default() };
        assert!(matches(text("HUMAN acme")));
        assert!(matches(text("\"speak to a human\"")));
        assert!(!matches(text("\"speak to human\"")));
        assert!(!matches(text("refund")));
        assert!(!matches(MonitorFilter {
            integration_id: Some(Uuid::from_u128(9)),
            ..Default::default()
        }));
        // Verdicts as the search compares them (case and surrounding space ignored); a call
        // without one (this one has no outcome) matches no filter on it.
        assert!(matches(MonitorFilter { successful: Some(false), ..Default::default() }));
        assert!(!matches(MonitorFilter { successful: Some(true), ..Default::default() }));
        let verdict = |sentiment: &str| MonitorFilter {
            sentiment: Some(sentiment.into()),
            ..Default::default()
        };
        assert!(matches(verdict("negative ")));
        assert!(!matches(verdict("positive")));
        assert!(!matches(MonitorFilter { outcome: Some("resolved".into()), ..Default::default() }));
    }

    #[test]
    fn matching_monitors_evaluate_each_check_once() {
        let datapoint = datapoint();
        let check = |id: u128, measure: Measure, comparator: Comparator, threshold: Value| Check {
            id: Uuid::from_u128(id),
            name: format!("check {id}"),
            version: 1,
            rule: Rule { measure, comparator, threshold: Some(threshold), phrase: None },
        };
        let failed =
            check(10, Measure::ProviderCallSuccessful, Comparator::Equal, Value::Bool(false));
        let long = check(11, Measure::DurationMs, Comparator::GreaterThan, Value::Number(60_000.0));
        let monitor = |id: u128, filter: MonitorFilter, checks: Vec<Check>| Monitor {
            id: Uuid::from_u128(id),
            organization_id: Uuid::from_u128(1),
            name: format!("monitor {id}"),
            description: String::new(),
            filter,
            checks,
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let retell = MonitorFilter { provider: Some("retell".into()), ..Default::default() };
        let vapi = MonitorFilter { provider: Some("vapi".into()), ..Default::default() };
        let monitors = [
            monitor(1, retell.clone(), vec![failed.clone(), long.clone()]),
            monitor(2, MonitorFilter::default(), vec![long]),
            monitor(3, vapi, vec![failed.clone()]),
            Monitor { organization_id: Uuid::from_u128(7), ..monitor(4, retell, vec![failed]) },
        ];
        let evaluation = evaluate(&monitors, &checks::Subject::new(&datapoint));
        assert_eq!(evaluation.monitors, [(Uuid::from_u128(1), true), (Uuid::from_u128(2), false)]);
        assert_eq!(evaluation.results.len(), 2);
        assert!(evaluation.results[&Uuid::from_u128(10)].is_issue);
        assert!(!evaluation.results[&Uuid::from_u128(11)].is_issue);
        assert_eq!(evaluation.results[&Uuid::from_u128(10)].name, "", "named when read");
        assert_eq!(evaluate(&[], &checks::Subject::new(&datapoint)), Evaluation::default());
    }

    #[test]
    fn a_stored_filter_reads_back_and_as_a_query_keeps_every_field() {
        let filter = MonitorFilter {
            provider: Some("retell".into()),
            tags_all: vec!["vip".into()],
            metadata_equals: vec![("queue".into(), "billing".into())],
            text_contains: Some("human".into()),
            ..Default::default()
        };
        let json = serde_json::to_string(&filter).unwrap();
        // A filter stored before verdicts reads back without them; one with them keeps them.
        let judged = MonitorFilter {
            successful: Some(true),
            outcome: Some("Resolved".into()),
            ..filter.clone()
        };
        let judged_json = serde_json::to_string(&judged).unwrap();
        assert!(
            judged_json.ends_with(r#""successful":true,"outcome":"Resolved"}"#),
            "{judged_json}"
        );
        assert_eq!(serde_json::from_str::<MonitorFilter>(&judged_json).unwrap(), judged);
        let query = judged.as_query();
        assert_eq!((query.successful, query.outcome.as_deref()), (Some(true), Some("Resolved")));
        assert_eq!(
            json,
            r#"{"provider":"retell","tags_all":["vip"],"metadata_equals":[["queue","billing"]],"text_contains":"human"}"#
        );
        assert_eq!(serde_json::from_str::<MonitorFilter>(&json).unwrap(), filter);
        let query = filter.as_query();
        assert_eq!(query.provider.as_deref(), Some("retell"));
        assert_eq!(query.tags_all, ["vip"]);
        assert_eq!(query.text_contains.as_deref(), Some("human"));
        assert!(query.check().is_ok());
    }
}
