//! Checks: named, versioned rules over a stored call. A check reads one measure of a datapoint
//! (a metric of its turns, a provider's verdict, a phrase in its transcript) and compares it
//! with a threshold using one of Okareo's operator names; when the comparison holds, the call
//! has an issue. The threshold states the bad case: `p95_response_latency_ms greater_than 1500`
//! flags slow calls, `provider_call_successful equal false` flags failed ones.
//!
//! Evaluation is pure and deterministic: the same datapoint and rule give the same result on
//! every machine and database, so a result computed when the call was stored and one computed
//! by a later backfill agree. A measure a call does not have (no user turn followed by an
//! assistant turn, no verdict from the provider) is "not set": `is_set`/`not_set` see it, and
//! every other comparison is not an issue, with an explanation that says why.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::conversation::{Role, Turn};
use super::datapoints::{Datapoint, contains_words, search_line, search_words};
use super::metrics::turn_spans;
use crate::error::Violations;

/// What a check reads from a datapoint. Names are stable API; units are in `unit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Mean gap, in ms, between the end of one speaker's turn and the start of the other's
    /// (an overlap counts as 0), over every change of speaker between user and assistant.
    AvgTurnTakingLatency,
    /// User and assistant turns.
    TotalTurnCount,
    /// Words of every turn per minute of talk.
    AvgWordsPerMinute,
    /// 95th percentile of the time from the end of a user turn to the start of the assistant
    /// turn after it, in ms.
    P95ResponseLatencyMs,
    /// Turns of one speaker starting before the other's turn ended.
    OverlapCount,
    /// The longest stretch of consecutive turns by one speaker, in ms.
    LongestMonologueMs,
    /// The call's duration in ms: as the provider reported it, else from its start and end
    /// times, else from its first turn's start to its last turn's end.
    DurationMs,
    /// Whether no turn has a word in it.
    EmptyTranscript,
    /// The share (0 to 1) of the call's duration in which nobody speaks.
    SilenceRatio,
    /// The assistant's share (0 to 1) of the time user and assistant speak.
    TalkRatioAssistant,
    /// The provider's own verdict on the call's success (Retell `call_successful`, Vapi
    /// `successEvaluation`, ElevenLabs `call_successful`, ...).
    ProviderCallSuccessful,
    /// The provider's sentiment label (Retell `user_sentiment`, a lead platform's
    /// `analysis_result.sentiment`, ...).
    ProviderSentiment,
    /// The provider's own label for how the call went (Vapi `successEvaluation` as text,
    /// ElevenLabs `call_successful`, a lead platform's `analysis_result.intent`, Retell's
    /// `voicemail`).
    ProviderOutcome,
    /// Whether the transcript contains the check's `phrase` (words compared without case or
    /// accents, in order, next to each other).
    TranscriptContains,
    /// For transcripts earshot made from the recording: the share (0 to 1) of the speech
    /// found that recognised words cover (below 1, speech was lost).
    SpeechCoverage,
}

/// The type of a measure's value, and so of the threshold it is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Number,
    Bool,
    Text,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Bool => "bool",
            Self::Text => "text",
        }
    }
}

impl Measure {
    pub const ALL: [Self; 15] = [
        Self::AvgTurnTakingLatency,
        Self::TotalTurnCount,
        Self::AvgWordsPerMinute,
        Self::P95ResponseLatencyMs,
        Self::OverlapCount,
        Self::LongestMonologueMs,
        Self::DurationMs,
        Self::EmptyTranscript,
        Self::SilenceRatio,
        Self::TalkRatioAssistant,
        Self::ProviderCallSuccessful,
        Self::ProviderSentiment,
        Self::ProviderOutcome,
        Self::TranscriptContains,
        Self::SpeechCoverage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AvgTurnTakingLatency => "avg_turn_taking_latency",
            Self::TotalTurnCount => "total_turn_count",
            Self::AvgWordsPerMinute => "avg_words_per_minute",
            Self::P95ResponseLatencyMs => "p95_response_latency_ms",
            Self::OverlapCount => "overlap_count",
            Self::LongestMonologueMs => "longest_monologue_ms",
            Self::DurationMs => "duration_ms",
            Self::EmptyTranscript => "empty_transcript",
            Self::SilenceRatio => "silence_ratio",
            Self::TalkRatioAssistant => "talk_ratio_assistant",
            Self::ProviderCallSuccessful => "provider_call_successful",
            Self::ProviderSentiment => "provider_sentiment",
            Self::ProviderOutcome => "provider_outcome",
            Self::TranscriptContains => "transcript_contains",
            Self::SpeechCoverage => "speech_coverage",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|measure| measure.as_str() == name)
    }

    pub fn value_type(self) -> ValueType {
        match self {
            Self::EmptyTranscript | Self::ProviderCallSuccessful | Self::TranscriptContains => {
                ValueType::Bool
            }
            Self::ProviderSentiment | Self::ProviderOutcome => ValueType::Text,
            _ => ValueType::Number,
        }
    }

    /// The unit of a number, for explanations and docs ("" for a bare count or a ratio).
    pub fn unit(self) -> &'static str {
        match self {
            Self::AvgTurnTakingLatency
            | Self::P95ResponseLatencyMs
            | Self::LongestMonologueMs
            | Self::DurationMs => "ms",
            Self::AvgWordsPerMinute => "words/min",
            _ => "",
        }
    }
}

/// How a measure is compared with the threshold (Okareo's `ComparisonOperator` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    Equal,
    NotEqual,
    Contains,
    NotContains,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
    IsSet,
    NotSet,
}

impl Comparator {
    pub const ALL: [Self; 10] = [
        Self::Equal,
        Self::NotEqual,
        Self::Contains,
        Self::NotContains,
        Self::GreaterThan,
        Self::GreaterThanOrEqual,
        Self::LessThan,
        Self::LessThanOrEqual,
        Self::IsSet,
        Self::NotSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "equal",
            Self::NotEqual => "not_equal",
            Self::Contains => "contains",
            Self::NotContains => "not_contains",
            Self::GreaterThan => "greater_than",
            Self::GreaterThanOrEqual => "greater_than_or_equal",
            Self::LessThan => "less_than",
            Self::LessThanOrEqual => "less_than_or_equal",
            Self::IsSet => "is_set",
            Self::NotSet => "not_set",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|comparator| comparator.as_str() == name)
    }

    /// Whether it compares with a threshold (all but `is_set` and `not_set`).
    pub fn needs_threshold(self) -> bool {
        !matches!(self, Self::IsSet | Self::NotSet)
    }

    /// Whether it can compare values of `value_type`: order for numbers, substrings for text,
    /// equality and presence for all.
    pub fn applies_to(self, value_type: ValueType) -> bool {
        match self {
            Self::Equal | Self::NotEqual | Self::IsSet | Self::NotSet => true,
            Self::Contains | Self::NotContains => value_type == ValueType::Text,
            Self::GreaterThan
            | Self::GreaterThanOrEqual
            | Self::LessThan
            | Self::LessThanOrEqual => value_type == ValueType::Number,
        }
    }

    /// The words of an explanation: "greater than", "not equal to", ...
    fn words(self) -> &'static str {
        match self {
            Self::Equal => "equal to",
            Self::NotEqual => "not equal to",
            Self::Contains => "containing",
            Self::NotContains => "not containing",
            Self::GreaterThan => "greater than",
            Self::GreaterThanOrEqual => "at least",
            Self::LessThan => "less than",
            Self::LessThanOrEqual => "at most",
            Self::IsSet => "set",
            Self::NotSet => "not set",
        }
    }
}

/// A measured value or a threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::Bool(_) => ValueType::Bool,
            Self::Number(_) => ValueType::Number,
            Self::Text(_) => ValueType::Text,
        }
    }

    /// The number a rollup averages: numbers as they are, booleans as 1 or 0; none for text.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Self::Number(number) => Some(*number),
            Self::Bool(flag) => Some(if *flag { 1.0 } else { 0.0 }),
            Self::Text(_) => None,
        }
    }

    /// A threshold of `value_type` written as text (as the JSON and gRPC APIs carry it).
    pub fn parse(value_type: ValueType, text: &str) -> Result<Self, String> {
        let text = text.trim();
        match value_type {
            ValueType::Number => match text.parse::<f64>() {
                Ok(number) if number.is_finite() => Ok(Self::Number(number)),
                _ => Err(format!("must be a finite number, not {text:?}")),
            },
            ValueType::Bool => match text {
                "true" => Ok(Self::Bool(true)),
                "false" => Ok(Self::Bool(false)),
                _ => Err(format!("must be true or false, not {text:?}")),
            },
            ValueType::Text if text.is_empty() => Err("must not be empty".to_owned()),
            ValueType::Text if text.chars().count() > MAX_TEXT_CHARS => {
                Err(format!("must be at most {MAX_TEXT_CHARS} characters"))
            }
            ValueType::Text => Ok(Self::Text(text.to_owned())),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(flag) => write!(formatter, "{flag}"),
            // Shortest form that reads back the same; ratios and rates keep 3 decimals.
            Self::Number(number) if number.fract() == 0.0 && number.abs() < 1e15 => {
                write!(formatter, "{number:.0}")
            }
            Self::Number(number) => write!(formatter, "{}", (number * 1000.0).round() / 1000.0),
            Self::Text(text) => write!(formatter, "{text:?}"),
        }
    }
}

/// Longest phrase or text threshold, in characters.
pub const MAX_TEXT_CHARS: usize = 200;

/// A check's rule: what it measures, and when that is an issue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub measure: Measure,
    pub comparator: Comparator,
    /// None for `is_set` and `not_set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Value>,
    /// What `transcript_contains` looks for; none for other measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrase: Option<String>,
}

impl Rule {
    /// A rule from its API form, every problem named by its field under `prefix` (e.g.
    /// `checks[2].comparator`).
    pub fn parse(
        prefix: &str,
        measure: &str,
        comparator: &str,
        threshold: Option<&str>,
        phrase: Option<&str>,
        violations: &mut Violations,
    ) -> Option<Self> {
        let field = |name: &str| format!("{prefix}{name}");
        let measure_parsed = Measure::parse(measure.trim());
        if measure_parsed.is_none() {
            let known: Vec<&str> = Measure::ALL.iter().map(|measure| measure.as_str()).collect();
            violations
                .add(field("measure"), format!("unknown measure; one of {}", known.join(", ")));
        }
        let comparator_parsed = Comparator::parse(comparator.trim());
        if comparator_parsed.is_none() {
            let known: Vec<&str> = Comparator::ALL.iter().map(|c| c.as_str()).collect();
            violations.add(
                field("comparator"),
                format!("unknown comparator; one of {}", known.join(", ")),
            );
        }
        let phrase = phrase.map(str::trim).filter(|phrase| !phrase.is_empty());
        let (measure, comparator) = (measure_parsed?, comparator_parsed?);
        let value_type = measure.value_type();
        let mut valid = true;
        if !comparator.applies_to(value_type) {
            valid = false;
            violations.add(
                field("comparator"),
                format!(
                    "{} does not compare a {} measure ({})",
                    comparator.as_str(),
                    value_type.as_str(),
                    measure.as_str()
                ),
            );
        }
        let threshold = match (comparator.needs_threshold(), threshold) {
            (true, None) => {
                valid = false;
                violations.add(field("threshold"), format!("{} needs one", comparator.as_str()));
                None
            }
            (true, Some(text)) => match Value::parse(value_type, text) {
                Ok(value) => Some(value),
                Err(reason) => {
                    valid = false;
                    violations.add(field("threshold"), reason);
                    None
                }
            },
            (false, Some(text)) if !text.trim().is_empty() => {
                valid = false;
                violations
                    .add(field("threshold"), format!("{} takes no threshold", comparator.as_str()));
                None
            }
            (false, _) => None,
        };
        match (measure, phrase) {
            (Measure::TranscriptContains, None) => {
                valid = false;
                violations.add(field("phrase"), "transcript_contains needs the words to look for");
            }
            (Measure::TranscriptContains, Some(phrase))
                if search_words(phrase).next().is_none() =>
            {
                valid = false;
                violations.add(field("phrase"), "must contain a word");
            }
            (Measure::TranscriptContains, Some(phrase))
                if phrase.chars().count() > MAX_TEXT_CHARS =>
            {
                valid = false;
                violations
                    .add(field("phrase"), format!("must be at most {MAX_TEXT_CHARS} characters"));
            }
            (Measure::TranscriptContains, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                valid = false;
                violations.add(field("phrase"), "only transcript_contains takes a phrase");
            }
        }
        valid.then(|| Self { measure, comparator, threshold, phrase: phrase.map(str::to_owned) })
    }
}

/// A check as evaluated: its identity, version and rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub id: Uuid,
    pub name: String,
    pub version: i32,
    pub rule: Rule,
}

/// One check's result on one datapoint (Okareo's `CheckValueItem`, with the version that
/// produced it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckValue {
    pub name: String,
    /// None when the call does not have the measure.
    pub value: Option<Value>,
    pub value_type: ValueType,
    pub check_id: Uuid,
    pub check_version: i32,
    pub is_issue: bool,
    pub explanation: String,
}

/// A check as the APIs show it: the check with its organization, description and times.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckRecord {
    pub check: Check,
    pub organization_id: Uuid,
    pub description: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Where a result came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Evaluated by earshot for a monitor.
    #[default]
    Monitor,
    /// Attached through the API (a judge run elsewhere, a reviewer).
    External,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Monitor => "monitor",
            Self::External => "external",
        }
    }
}

/// A result as stored on a datapoint: its value, where it came from, and when it was marked
/// resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckResult {
    pub value: CheckValue,
    pub origin: Origin,
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl CheckResult {
    /// An issue nobody marked resolved.
    pub fn is_open_issue(&self) -> bool {
        self.value.is_issue && self.resolved_at.is_none()
    }
}

/// A datapoint under evaluation, with what several checks and filters read (the words of its
/// turns) computed once, when first needed, or given by the caller, who computed them anyway.
#[derive(Debug)]
pub struct Subject<'a> {
    pub datapoint: &'a Datapoint,
    /// `Datapoint::transcript_search_text`: each turn's words, a line per turn.
    text: std::cell::OnceCell<std::borrow::Cow<'a, str>>,
    /// Whether a turn holds each phrase looked for so far (checks of several monitors often
    /// look for the same one).
    phrases: std::cell::RefCell<Vec<(String, bool)>>,
}

impl<'a> Subject<'a> {
    pub fn new(datapoint: &'a Datapoint) -> Self {
        Self { datapoint, text: std::cell::OnceCell::new(), phrases: Default::default() }
    }

    /// `datapoint`, whose `transcript_search_text` is `text`.
    pub fn with_search_text(datapoint: &'a Datapoint, text: &'a str) -> Self {
        let text = std::cell::OnceCell::from(std::borrow::Cow::Borrowed(text));
        Self { datapoint, text, phrases: Default::default() }
    }

    /// Whether one turn holds `phrase`'s words, next to each other and in order.
    pub fn turn_contains(&self, phrase: &str) -> bool {
        if let Some((_, found)) = self.phrases.borrow().iter().find(|(seen, _)| seen == phrase) {
            return *found;
        }
        let words = search_line(phrase);
        let found = self.turn_lines().any(|line| contains_words(line, &words));
        self.phrases.borrow_mut().push((phrase.to_owned(), found));
        found
    }

    /// Each turn's words as searches compare them, a space between each (`search_line`); one
    /// line, empty, for a call with no turns.
    pub fn turn_lines(&self) -> std::str::Split<'_, char> {
        self.text
            .get_or_init(|| std::borrow::Cow::Owned(self.datapoint.transcript_search_text()))
            .split('\n')
    }
}

/// `check` on `datapoint`, explained.
pub fn evaluate(check: &Check, datapoint: &Datapoint) -> CheckValue {
    evaluate_in(&Subject::new(datapoint), check, true)
}

/// `check` on `subject`; the name and the explanation are left empty unless `described` (a
/// stored result takes both from its check version when read: `explain` gives the explanation
/// from the rule and the value).
pub fn evaluate_in(subject: &Subject<'_>, check: &Check, described: bool) -> CheckValue {
    let rule = &check.rule;
    let value = measure_in(subject, rule.measure, rule.phrase.as_deref());
    let is_issue = holds(rule.comparator, value.as_ref(), rule.threshold.as_ref());
    let (name, explanation) = if described {
        (check.name.clone(), explain(rule, value.as_ref(), is_issue))
    } else {
        (String::new(), String::new())
    };
    CheckValue {
        name,
        explanation,
        value,
        value_type: rule.measure.value_type(),
        check_id: check.id,
        check_version: check.version,
        is_issue,
    }
}

/// Whether `value` compared by `comparator` with `threshold` holds. Text compares without case
/// or surrounding space; a missing value holds only for `not_set`.
pub fn holds(comparator: Comparator, value: Option<&Value>, threshold: Option<&Value>) -> bool {
    let Some(value) = value else {
        return comparator == Comparator::NotSet;
    };
    match comparator {
        Comparator::IsSet => return true,
        Comparator::NotSet => return false,
        _ => {}
    }
    let Some(threshold) = threshold else {
        return false;
    };
    let text = |value: &Value| match value {
        Value::Text(text) => Some(text.trim().to_lowercase()),
        _ => None,
    };
    match comparator {
        Comparator::Equal => equal(value, threshold),
        Comparator::NotEqual => !equal(value, threshold),
        Comparator::Contains | Comparator::NotContains => match (text(value), text(threshold)) {
            (Some(value), Some(threshold)) => {
                value.contains(&threshold) == (comparator == Comparator::Contains)
            }
            _ => false,
        },
        _ => match (value, threshold) {
            (Value::Number(value), Value::Number(threshold)) => match comparator {
                Comparator::GreaterThan => value > threshold,
                Comparator::GreaterThanOrEqual => value >= threshold,
                Comparator::LessThan => value < threshold,
                _ => value <= threshold,
            },
            _ => false,
        },
    }
}

fn equal(value: &Value, threshold: &Value) -> bool {
    match (value, threshold) {
        (Value::Number(value), Value::Number(threshold)) => value == threshold,
        (Value::Bool(value), Value::Bool(threshold)) => value == threshold,
        (Value::Text(value), Value::Text(threshold)) => {
            value.trim().to_lowercase() == threshold.trim().to_lowercase()
        }
        _ => false,
    }
}

/// Why `value` under `rule` is or is not an issue, in words.
pub fn explain(rule: &Rule, value: Option<&Value>, is_issue: bool) -> String {
    let name = match &rule.phrase {
        Some(phrase) => format!("{} {phrase:?}", rule.measure.as_str()),
        None => rule.measure.as_str().to_owned(),
    };
    let unit = rule.measure.unit();
    let with_unit = |value: &Value| {
        if unit.is_empty() { value.to_string() } else { format!("{value} {unit}") }
    };
    let verdict = if is_issue { "an issue" } else { "no issue" };
    let Some(value) = value else {
        return format!("{name} is not set for this call: {verdict}");
    };
    match (&rule.threshold, rule.comparator.needs_threshold()) {
        (Some(threshold), true) => {
            let is_or_not = if is_issue { "" } else { "not " };
            format!(
                "{name} is {}, {is_or_not}{} {}: {verdict}",
                with_unit(value),
                rule.comparator.words(),
                with_unit(threshold)
            )
        }
        _ => format!("{name} is {} (set): {verdict}", with_unit(value)),
    }
}

/// The value of `measure` on `datapoint`, or None when the call does not have it.
#[allow(clippy::cast_precision_loss)]
pub fn measure(measure: Measure, phrase: Option<&str>, datapoint: &Datapoint) -> Option<Value> {
    measure_in(&Subject::new(datapoint), measure, phrase)
}

#[allow(clippy::cast_precision_loss)]
fn measure_in(subject: &Subject<'_>, measure: Measure, phrase: Option<&str>) -> Option<Value> {
    let datapoint = subject.datapoint;
    let metrics = &datapoint.metrics;
    let number = |value: f64| Some(Value::Number(value));
    match measure {
        Measure::AvgTurnTakingLatency => average_turn_gap(&datapoint.turns).and_then(number),
        Measure::TotalTurnCount => number(spoken(&datapoint.turns).count() as f64),
        Measure::AvgWordsPerMinute => metrics.words_per_minute.and_then(number),
        Measure::P95ResponseLatencyMs => {
            metrics.response_latency_p95_ms.and_then(|ms| number(ms as f64))
        }
        Measure::OverlapCount => number(f64::from(metrics.overlap_count)),
        Measure::LongestMonologueMs => number(metrics.longest_monologue_ms as f64),
        Measure::DurationMs => duration_ms(datapoint).and_then(|ms| number(ms as f64)),
        Measure::EmptyTranscript => Some(Value::Bool(subject.turn_lines().all(str::is_empty))),
        Measure::SilenceRatio => {
            let duration = duration_ms(datapoint).filter(|duration| *duration > 0)?;
            let speech = speech_ms(&datapoint.turns).min(duration);
            number(1.0 - speech as f64 / duration as f64)
        }
        Measure::TalkRatioAssistant => {
            let talk = |role: Role| {
                metrics
                    .roles
                    .iter()
                    .filter(|metrics| metrics.role == role)
                    .map(|metrics| metrics.talk_time_ms)
                    .sum::<i64>()
            };
            let (assistant, user) = (talk(Role::Assistant), talk(Role::User));
            let total = assistant.saturating_add(user);
            (total > 0).then(|| Value::Number(assistant as f64 / total as f64))
        }
        Measure::ProviderCallSuccessful => datapoint.analysis.successful.map(Value::Bool),
        Measure::ProviderSentiment => text(datapoint.analysis.sentiment.as_deref()),
        Measure::ProviderOutcome => text(datapoint.analysis.outcome.as_deref()),
        Measure::TranscriptContains => Some(Value::Bool(subject.turn_contains(phrase?))),
        Measure::SpeechCoverage => metrics.speech_coverage.and_then(number),
    }
}

/// A provider's label as a value: none when absent or blank.
fn text(label: Option<&str>) -> Option<Value> {
    label
        .map(str::trim)
        .filter(|label| !label.is_empty())
        .map(|label| Value::Text(label.to_owned()))
}

/// User and assistant turns: what a call's turn counts and speaker changes are made of.
fn spoken(turns: &[Turn]) -> impl Iterator<Item = &Turn> {
    turns.iter().filter(|turn| matches!(turn.role, Role::User | Role::Assistant))
}

/// Mean gap between speaker changes (user to assistant or back), overlaps counting as 0.
#[allow(clippy::cast_precision_loss)]
fn average_turn_gap(turns: &[Turn]) -> Option<f64> {
    let spoken: Vec<Turn> = spoken(turns).cloned().collect();
    let spans = turn_spans(&spoken);
    let gaps: Vec<i64> = spoken
        .windows(2)
        .zip(spans.windows(2))
        .filter(|(pair, _)| pair[0].role != pair[1].role)
        .map(|(_, span)| span[1].0.saturating_sub(span[0].1).max(0))
        .collect();
    if gaps.is_empty() {
        return None;
    }
    let total = gaps.iter().fold(0i64, |sum, gap| sum.saturating_add(*gap));
    Some(total as f64 / gaps.len() as f64)
}

fn duration_ms(datapoint: &Datapoint) -> Option<i64> {
    if let Some(duration) = datapoint.duration_ms {
        return Some(duration.max(0));
    }
    if let (Some(started), Some(ended)) = (datapoint.started_at, datapoint.ended_at) {
        return Some((ended - started).num_milliseconds().max(0));
    }
    let spans = turn_spans(&datapoint.turns);
    let first = spans.iter().map(|span| span.0).min()?;
    let last = spans.iter().map(|span| span.1).max()?;
    Some(last.saturating_sub(first).max(0))
}

/// Time in which anybody speaks: the union of the turns' spans, measured from the call's start
/// (turn times are offsets from it).
fn speech_ms(turns: &[Turn]) -> i64 {
    let mut spans = turn_spans(turns);
    spans.sort_unstable();
    let mut total = 0i64;
    let mut current: Option<(i64, i64)> = None;
    for (start, end) in spans {
        current = match current {
            Some((from, to)) if start <= to => Some((from, to.max(end))),
            Some((from, to)) => {
                total = total.saturating_add(to.saturating_sub(from));
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((from, to)) = current {
        total = total.saturating_add(to.saturating_sub(from));
    }
    total
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
