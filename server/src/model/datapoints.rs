//! The datapoint: one searchable record per call, and the query that finds it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::conversation::{Conversation, ProviderExtras, Source, Turn};
use super::ingest::AudioObject;
use super::metrics::{self, CallMetrics};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TranscriptSource {
    Provider,
    Client,
    Asr,
    None,
}

impl TranscriptSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TranscriptSource::Provider => "provider",
            TranscriptSource::Client => "client",
            TranscriptSource::Asr => "asr",
            TranscriptSource::None => "none",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "provider" => Some(TranscriptSource::Provider),
            "client" => Some(TranscriptSource::Client),
            "asr" => Some(TranscriptSource::Asr),
            "none" => Some(TranscriptSource::None),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Datapoint {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Uuid,
    pub provider: String,
    pub call_id: String,
    pub context_token: String,
    pub source: Source,
    pub transcript_source: TranscriptSource,
    pub speaker_labels_estimated: bool,
    pub turns: Vec<Turn>,
    pub audio_id: Option<Uuid>,
    /// The integration whose webhook delivered the call (the latest, if several did).
    pub integration_id: Option<Uuid>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub direction: Option<String>,
    pub analysis: ProviderExtras,
    pub tags: Vec<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub metrics: CallMetrics,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A datapoint with the stored audio's description, as readers get it.
#[derive(Clone, Debug, PartialEq)]
pub struct DatapointView {
    pub datapoint: Datapoint,
    pub audio: Option<AudioObject>,
    /// Its checks' results, by check name.
    pub check_results: Vec<super::checks::CheckResult>,
}

impl DatapointView {
    /// The names of its checks that are issues nobody marked resolved.
    pub fn failed_checks(&self) -> Vec<&str> {
        self.check_results
            .iter()
            .filter(|result| result.is_open_issue())
            .map(|result| result.value.name.as_str())
            .collect()
    }
}

impl Datapoint {
    /// The datapoint after `conversation` arrives: a new one (of id `fresh_id`, the id of the
    /// ingest that brings it), or `existing` enriched.
    pub fn merge(
        existing: Option<Datapoint>,
        conversation: &Conversation,
        audio_id: Option<Uuid>,
        organization_id: Uuid,
        project_id: Uuid,
        fresh_id: Uuid,
        now: DateTime<Utc>,
    ) -> Datapoint {
        let transcript_source = match (conversation.turns.is_empty(), conversation.source) {
            (true, _) => TranscriptSource::None,
            (false, Source::Webhook) => TranscriptSource::Provider,
            (false, Source::Sdk | Source::Api) => TranscriptSource::Client,
        };
        let mut datapoint = existing.unwrap_or_else(|| Datapoint {
            id: fresh_id,
            organization_id,
            project_id,
            provider: conversation.provider.clone(),
            call_id: conversation.call_id.clone(),
            context_token: conversation.context_token.clone(),
            source: conversation.source,
            transcript_source: TranscriptSource::None,
            speaker_labels_estimated: false,
            turns: Vec::new(),
            audio_id: None,
            integration_id: None,
            started_at: None,
            ended_at: None,
            duration_ms: None,
            from_number: None,
            to_number: None,
            direction: None,
            analysis: ProviderExtras::default(),
            tags: Vec::new(),
            metadata: serde_json::Map::new(),
            metrics: CallMetrics::default(),
            created_at: now,
            updated_at: now,
        });
        if !conversation.turns.is_empty() {
            datapoint.turns.clone_from(&conversation.turns);
            datapoint.transcript_source = transcript_source;
            datapoint.speaker_labels_estimated = false;
        }
        datapoint.audio_id = audio_id.or(datapoint.audio_id);
        datapoint.integration_id = conversation.integration_id.or(datapoint.integration_id);
        let keep = |new: &Option<String>, old: &mut Option<String>| {
            if new.is_some() {
                old.clone_from(new);
            }
        };
        keep(&conversation.from_number, &mut datapoint.from_number);
        keep(&conversation.to_number, &mut datapoint.to_number);
        keep(&conversation.direction, &mut datapoint.direction);
        datapoint.started_at = conversation.started_at.or(datapoint.started_at);
        datapoint.ended_at = conversation.ended_at.or(datapoint.ended_at);
        datapoint.duration_ms = conversation.duration_ms.or(datapoint.duration_ms);
        let extras = &conversation.extras;
        let analysis = &mut datapoint.analysis;
        keep(&extras.summary, &mut analysis.summary);
        keep(&extras.sentiment, &mut analysis.sentiment);
        keep(&extras.ended_reason, &mut analysis.ended_reason);
        keep(&extras.agent_id, &mut analysis.agent_id);
        keep(&extras.outcome, &mut analysis.outcome);
        if extras.raw.is_some() {
            analysis.raw.clone_from(&extras.raw);
        }
        analysis.successful = extras.successful.or(analysis.successful);
        analysis.cost_usd = extras.cost_usd.or(analysis.cost_usd);
        for tag in &conversation.tags {
            if !datapoint.tags.contains(tag) {
                datapoint.tags.push(tag.clone());
            }
        }
        for (key, value) in &conversation.metadata {
            datapoint.metadata.insert(key.clone(), value.clone());
        }
        if let Some(mut_id) = &conversation.mut_id {
            datapoint
                .metadata
                .entry("mut_id")
                .or_insert_with(|| serde_json::Value::String(mut_id.clone()));
        }
        // A transcript made from the recording keeps its coverage until other turns replace it.
        let coverage =
            if conversation.turns.is_empty() { datapoint.metrics.speech_coverage } else { None };
        datapoint.metrics = metrics::compute(&datapoint.turns);
        datapoint.metrics.speech_coverage = coverage;
        datapoint.updated_at = now;
        datapoint
    }

    /// The words of the turns as searches compare them (`search_words`), a space between
    /// words and a line between turns: what the full-text indexes read.
    pub fn transcript_search_text(&self) -> String {
        search_text(&self.turns)
    }

    /// The time the time-range filters compare: the call's start when known, else its creation.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        self.started_at.unwrap_or(self.created_at)
    }
}

/// A place in the order searches return datapoints: newest call first (`occurred_at`, to the
/// millisecond), then by id, newest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatapointCursor {
    pub occurred_at_ms: i64,
    pub id: Uuid,
}

impl DatapointCursor {
    /// Where a page that ends with `datapoint` continues.
    pub fn after(datapoint: &Datapoint) -> Self {
        Self { occurred_at_ms: datapoint.occurred_at().timestamp_millis(), id: datapoint.id }
    }

    /// The opaque page token: the time and the id, URL-safe base64.
    pub fn to_token(self) -> String {
        let mut bytes = Vec::with_capacity(24);
        bytes.extend_from_slice(&self.occurred_at_ms.to_be_bytes());
        bytes.extend_from_slice(self.id.as_bytes());
        data_encoding::BASE64URL_NOPAD.encode(&bytes)
    }

    /// The cursor of a page token; None for the first page (an empty token).
    pub fn from_token(token: &str) -> crate::error::Result<Option<Self>> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            crate::error::Error::invalid("page_token", "is not a page token returned by this list")
        };
        let bytes = token_bytes(token, invalid)?;
        let (time, id) = bytes.split_at_checked(8).ok_or_else(invalid)?;
        let occurred_at_ms = i64::from_be_bytes(time.try_into().map_err(|_| invalid())?);
        let id = Uuid::from_slice(id).map_err(|_| invalid())?;
        Ok(Some(Self { occurred_at_ms, id }))
    }
}

/// The bytes of a page token (URL-safe base64), or `invalid()`.
fn token_bytes(
    token: &str,
    invalid: impl Fn() -> crate::error::Error,
) -> crate::error::Result<Vec<u8>> {
    data_encoding::BASE64URL_NOPAD.decode(token.as_bytes()).map_err(|_| invalid())
}

/// The order of a search's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchOrder {
    /// Newest call first (`DatapointCursor`).
    #[default]
    NewestFirst,
    /// Best transcript match first (BM25, `TextQuery::bm25_scores`), among the
    /// `RANKED_MATCHES` newest calls that match: for a transcript search only.
    Relevance,
}

/// The most calls a relevance-ordered search ranks: every match when there are fewer, else the
/// newest this many, so its cost stays bounded whatever the words.
pub const RANKED_MATCHES: usize = 2_000;

/// A place in relevance order: the score (higher is better), then the id, newest first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RelevanceCursor {
    pub score: f64,
    pub id: Uuid,
}

impl RelevanceCursor {
    /// Whether `(score, id)` comes after this place.
    pub fn precedes(&self, score: f64, id: Uuid) -> bool {
        score < self.score || (score == self.score && id < self.id)
    }

    /// The page token: `r`, the score's bits and the id, URL-safe base64 (25 bytes, which no
    /// time token has).
    pub fn to_token(self) -> String {
        let mut bytes = Vec::with_capacity(25);
        bytes.push(b'r');
        bytes.extend_from_slice(&self.score.to_bits().to_be_bytes());
        bytes.extend_from_slice(self.id.as_bytes());
        data_encoding::BASE64URL_NOPAD.encode(&bytes)
    }

    /// The cursor of a relevance page token; None for the first page (an empty token).
    pub fn from_token(token: &str) -> crate::error::Result<Option<Self>> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            crate::error::Error::invalid(
                "page_token",
                "is not a page token of a relevance-ordered search",
            )
        };
        let bytes = token_bytes(token, invalid)?;
        let [b'r', rest @ ..] = bytes.as_slice() else { return Err(invalid()) };
        let (score, id) = rest.split_at_checked(8).ok_or_else(invalid)?;
        let score = f64::from_bits(u64::from_be_bytes(score.try_into().map_err(|_| invalid())?));
        let id = Uuid::from_slice(id).map_err(|_| invalid())?;
        if !score.is_finite() {
            return Err(invalid());
        }
        Ok(Some(Self { score, id }))
    }
}

/// The words of `text` as searches compare them: runs of letters and digits, lowercased, with
/// accents removed ("Café" and "cafe" are one word), so a search is case- and
/// accent-insensitive on every database.
pub fn search_words(text: &str) -> impl Iterator<Item = String> + '_ {
    raw_words(text)
        .map(|word| {
            let mut folded = String::with_capacity(word.len());
            push_folded(word, &mut folded);
            folded
        })
        .filter(|word: &String| !word.is_empty())
}

/// The words of `turns` as searches compare them (`Datapoint::transcript_search_text`): each
/// turn's `search_line`, a line between turns, written into one string.
pub fn search_text(turns: &[crate::model::conversation::Turn]) -> String {
    let mut text = String::with_capacity(turns.iter().map(|turn| turn.content.len() + 1).sum());
    for (index, turn) in turns.iter().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        push_search_line(&turn.content, &mut text);
    }
    text
}

/// `search_words` of `text`, a space between each: one allocation for the whole line, where
/// the words would take one each. Words hold no spaces, so a phrase's line occurs in a text's
/// line at word boundaries exactly when its words occur there in order (`contains_words`).
pub fn search_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    push_search_line(text, &mut line);
    line
}

/// Appends `search_line(text)` to `out`.
fn push_search_line(text: &str, out: &mut String) {
    let line_start = out.len();
    for word in raw_words(text) {
        let before = out.len();
        if before > line_start {
            out.push(' ');
        }
        let start = out.len();
        push_folded(word, out);
        if out.len() == start {
            out.truncate(before);
        }
    }
}

/// Whether `needle`'s words occur in `haystack`'s, next to each other and in order (both
/// `search_line`s; an empty needle occurs nowhere).
pub fn contains_words(haystack: &str, needle: &str) -> bool {
    let (bytes, needle) = (haystack.as_bytes(), needle.as_bytes());
    let Some(&first) = needle.first() else {
        return false;
    };
    // One pass; the needle is compared only at word starts that begin with its first byte.
    let mut word_start = true;
    for (at, &byte) in bytes.iter().enumerate() {
        if word_start && byte == first && bytes[at..].starts_with(needle) {
            let end = at + needle.len();
            if end == bytes.len() || bytes[end] == b' ' {
                return true;
            }
        }
        word_start = byte == b' ';
    }
    false
}

/// The runs of letters and digits (with their combining marks) of `text`, as written.
fn raw_words(text: &str) -> impl Iterator<Item = &str> {
    use unicode_normalization::char::is_combining_mark;
    text.split(|c: char| !c.is_alphanumeric() && !is_combining_mark(c))
        .filter(|word| !word.is_empty())
}

/// Appends `word` lowercased, its accents removed.
fn push_folded(word: &str, out: &mut String) {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    // ASCII (most words) has no accents to remove: lowercasing is all there is to do.
    if word.is_ascii() {
        out.extend(word.bytes().map(|byte| char::from(byte.to_ascii_lowercase())));
    } else {
        out.extend(word.nfd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase));
    }
}

/// A transcript search (`text_contains`): words, each of which must occur, and phrases in
/// double quotes, whose words must occur in that order, next to each other. Each term is a
/// phrase of one or more words (`search_words`); nothing the caller types is an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextQuery {
    pub terms: Vec<Vec<String>>,
}

impl TextQuery {
    /// The terms of `text`; an unclosed quote runs to the end.
    pub fn parse(text: &str) -> Self {
        let mut terms = Vec::new();
        for (index, part) in text.split('"').enumerate() {
            let words: Vec<String> = search_words(part).collect();
            if index % 2 == 1 {
                if !words.is_empty() {
                    terms.push(words);
                }
            } else {
                terms.extend(words.into_iter().map(|word| vec![word]));
            }
        }
        Self { terms }
    }

    /// SQLite FTS5's query: each term a quoted string (a phrase), all required.
    pub fn fts5_match(&self) -> String {
        self.terms
            .iter()
            .map(|words| format!("\"{}\"", words.join(" ")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// BM25 scores (k1 = 1.2, b = 0.75) of `transcripts` (each a call's folded words,
    /// `Datapoint::transcript_search`) for this query, higher is better: each term (a word, or a
    /// phrase's words in a row) counts its occurrences, saturating, less so in a longer
    /// transcript than the average of the set; a term in fewer of the set's transcripts weighs
    /// more. Computed over the set being ranked, so both databases order it the same way.
    pub fn bm25_scores(&self, transcripts: &[&str]) -> Vec<f64> {
        const K1: f64 = 1.2;
        const B: f64 = 0.75;
        let documents: Vec<Vec<&str>> =
            transcripts.iter().map(|text| text.split_whitespace().collect()).collect();
        let count = documents.len() as f64;
        let average = documents.iter().map(Vec::len).sum::<usize>() as f64 / count.max(1.0);
        let occurrences = |words: &[&str], term: &[String]| {
            if term.is_empty() || words.len() < term.len() {
                return 0;
            }
            words.windows(term.len()).filter(|window| window.iter().eq(term.iter())).count()
        };
        let frequencies: Vec<Vec<usize>> = documents
            .iter()
            .map(|words| self.terms.iter().map(|term| occurrences(words, term)).collect())
            .collect();
        let weights: Vec<f64> = (0..self.terms.len())
            .map(|term| {
                let containing =
                    frequencies.iter().filter(|document| document[term] > 0).count() as f64;
                (1.0 + (count - containing + 0.5) / (containing + 0.5)).ln()
            })
            .collect();
        documents
            .iter()
            .zip(&frequencies)
            .map(|(words, document)| {
                let norm = K1 * (1.0 - B + B * words.len() as f64 / average.max(1.0));
                document
                    .iter()
                    .zip(&weights)
                    .map(|(&frequency, weight)| {
                        let frequency = frequency as f64;
                        weight * frequency * (K1 + 1.0) / (frequency + norm)
                    })
                    .sum()
            })
            .collect()
    }

    /// PostgreSQL's `tsquery` text: each term its lexemes joined by `<->` (followed by), all
    /// required. Words hold only letters and digits, so quoting them is enough.
    pub fn tsquery(&self) -> String {
        self.terms
            .iter()
            .map(|words| {
                let lexemes: Vec<String> = words.iter().map(|word| format!("'{word}'")).collect();
                format!("({})", lexemes.join(" <-> "))
            })
            .collect::<Vec<_>>()
            .join(" & ")
    }
}

/// Filters of a datapoint search; all present ones must match.
#[derive(Clone, Debug, Default)]
pub struct DatapointQuery {
    pub project_id: Option<Uuid>,
    pub context_token: Option<String>,
    pub call_id: Option<String>,
    pub source: Option<Source>,
    pub provider: Option<String>,
    pub tags_any: Vec<String>,
    pub tags_all: Vec<String>,
    pub metadata_equals: Vec<(String, String)>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub text_contains: Option<String>,
    /// Calls delivered by this integration's webhook.
    pub integration_id: Option<Uuid>,
    /// Calls with an issue nobody marked resolved.
    pub issues_only: bool,
    /// Calls on which the check of this name is an unresolved issue.
    pub failed_check: Option<String>,
    /// Calls this monitor matched.
    pub monitor_id: Option<Uuid>,
    /// Calls the provider judged successful (or not).
    pub successful: Option<bool>,
    /// Calls with this sentiment or outcome from the provider (case and surrounding space
    /// ignored).
    pub sentiment: Option<String>,
    pub outcome: Option<String>,
    pub page_size: usize,
    /// Return the datapoints after this one in the searches' order (cursor paging).
    pub before: Option<DatapointCursor>,
    /// Skip this many (offset paging, for the JSON mirror).
    pub offset: usize,
    /// Newest call first (the default), or, with `text_contains`, most relevant first.
    pub order: SearchOrder,
    /// With `SearchOrder::Relevance`: return the datapoints after this one in that order.
    pub after_relevance: Option<RelevanceCursor>,
}

pub const DEFAULT_SEARCH_PAGE: usize = 100;

/// Tags in `tags_any` or `tags_all`, and `metadata_equals` pairs, one search may give: each is
/// a term of the query, and an unbounded number makes an unbounded statement.
pub const MAX_SEARCH_TERMS: usize = 20;

/// The longest `text_contains`, in characters.
pub const MAX_SEARCH_TEXT_CHARS: usize = 256;

impl DatapointQuery {
    /// Refuses what no stored datapoint can match or what would make an unbounded statement:
    /// too many terms, over-long or control-character text (a NUL would match everything on
    /// some databases and fail on others).
    pub fn check(&self) -> Result<(), crate::error::Error> {
        let mut violations = crate::error::Violations::new();
        let text =
            |violations: &mut crate::error::Violations, field: &str, value: &str, max: usize| {
                if value.chars().count() > max || value.chars().any(char::is_control) {
                    violations
                        .add(field, format!("at most {max} characters, no control characters"));
                }
            };
        for (field, value) in [
            ("context_token", &self.context_token),
            ("call_id", &self.call_id),
            ("provider", &self.provider),
            ("failed_check", &self.failed_check),
            ("sentiment", &self.sentiment),
            ("outcome", &self.outcome),
        ] {
            if let Some(value) = value {
                text(&mut violations, field, value, 256);
            }
        }
        if let Some(value) = &self.text_contains {
            text(&mut violations, "text_contains", value, MAX_SEARCH_TEXT_CHARS);
            // Words are counted only in text that passed (one reason is enough).
            let plain = value.chars().count() <= MAX_SEARCH_TEXT_CHARS
                && !value.chars().any(char::is_control);
            let terms = TextQuery::parse(value).terms.len();
            if plain && terms == 0 {
                violations.add("text_contains", "must contain a word (letters or digits)");
            }
            if plain && terms > MAX_SEARCH_TERMS {
                violations.add(
                    "text_contains",
                    format!("at most {MAX_SEARCH_TERMS} words and quoted phrases"),
                );
            }
        }
        if self.order == SearchOrder::Relevance
            && self.text_contains.as_deref().is_none_or(str::is_empty)
        {
            violations.add("order", "relevance orders a transcript search: give text_contains");
        }
        for (field, tags) in [("tags_any", &self.tags_any), ("tags_all", &self.tags_all)] {
            if tags.len() > MAX_SEARCH_TERMS {
                violations.add(field, format!("at most {MAX_SEARCH_TERMS} tags"));
            }
            for (index, tag) in tags.iter().enumerate() {
                text(&mut violations, &format!("{field}[{index}]"), tag, 200);
            }
        }
        if self.metadata_equals.len() > MAX_SEARCH_TERMS {
            violations.add("metadata_equals", format!("at most {MAX_SEARCH_TERMS} pairs"));
        }
        for (key, value) in &self.metadata_equals {
            text(&mut violations, &format!("metadata_equals.{key}"), key, 256);
            text(
                &mut violations,
                &format!("metadata_equals.{key}"),
                value,
                MAX_FILTERABLE_METADATA_BYTES,
            );
        }
        violations.into_result()
    }
}

pub const MAX_SEARCH_PAGE: usize = 500;

#[derive(Clone, Debug)]
pub struct DatapointPage {
    pub datapoints: Vec<DatapointView>,
    pub next_page_token: Option<String>,
}

/// The longest metadata value a `metadata key = value` filter can match, in bytes: longer ones
/// are stored with the datapoint but not indexed (an index entry must stay small on every
/// database; PostgreSQL refuses B-tree entries over about 2.7 KB).
pub const MAX_FILTERABLE_METADATA_BYTES: usize = 1024;

/// A verdict's text as stored and searched: trimmed, ASCII letters lower-cased (as SQL's
/// `lower` does on SQLite).
pub fn verdict_text(text: &str) -> String {
    text.trim().to_ascii_lowercase()
}

/// A metadata value as the text that `metadata key = value` filters compare with; None when it
/// is not filterable (objects, arrays, null, text over `MAX_FILTERABLE_METADATA_BYTES`).
pub fn metadata_filter_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) if text.len() > MAX_FILTERABLE_METADATA_BYTES => None,
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    /// BM25 over a set: more occurrences score higher, with diminishing returns; a longer
    /// transcript with as many scores lower; a phrase counts its words in a row only; a rarer
    /// term weighs more than a common one; a transcript without the terms scores 0.
    #[test]
    fn bm25_ranks_by_occurrences_length_and_rarity() {
        let query = TextQuery::parse("refund");
        let scores = query.bm25_scores(&[
            "refund",
            "refund refund",
            "refund refund refund refund",
            "refund please the agent said and then nothing more happened",
            "nothing here",
        ]);
        assert!(scores[1] > scores[0] && scores[2] > scores[1], "{scores:?}");
        assert!(scores[2] - scores[1] < scores[1] - scores[0] + 1.0, "{scores:?}");
        assert!(scores[0] > scores[3], "a longer transcript with as many: {scores:?}");
        assert!(scores[4].abs() < f64::EPSILON, "{scores:?}");

        let phrase = TextQuery::parse("\"speak to a human\"");
        let scores =
            phrase.bm25_scores(&["let me speak to a human", "a human to speak with", "speak"]);
        assert!(scores[0] > 0.0 && scores[1].abs() < f64::EPSILON, "{scores:?}");

        let two = TextQuery::parse("refund manager");
        let scores = two.bm25_scores(&["refund refund", "manager manager", "refund", "refund"]);
        assert!(scores[1] > scores[0], "the rarer word weighs more: {scores:?}");
    }

    use super::*;
    use crate::model::conversation::Role;

    #[test]
    fn search_words_fold_case_and_accents_and_drop_everything_else() {
        let words: Vec<String> =
            search_words("Café AU lait, s'il vous plaît! 100% re_fund").collect();
        assert_eq!(words, ["cafe", "au", "lait", "s", "il", "vous", "plait", "100", "re", "fund"]);
        // Decomposed accents fold the same way as composed ones.
        assert_eq!(search_words("Cafe\u{301}").collect::<Vec<_>>(), ["cafe"]);
        assert_eq!(search_words("Straße İstanbul").collect::<Vec<_>>(), ["straße", "istanbul"]);
    }

    #[test]
    fn a_search_line_is_the_words_spaced_and_phrases_match_whole_words_in_order() {
        for text in [
            "Café AU lait, s'il vous plaît! 100% re_fund",
            "Cafe\u{301} Straße İstanbul",
            "  ...leading, trailing!  ",
            "\u{301}\u{301} lone marks \u{301}",
            "",
        ] {
            assert_eq!(search_line(text), search_words(text).collect::<Vec<_>>().join(" "));
        }
        // A transcript's text is its turns' lines, a line between turns (an empty turn too).
        let contents = ["Café AU lait!", "", "  ...leading, trailing!  ", "\u{301} ok"];
        let turns: Vec<Turn> = contents
            .iter()
            .map(|content| Turn {
                role: Role::User,
                content: (*content).to_owned(),
                start_ms: 0,
                end_ms: None,
                channel: None,
                confidence: None,
                unrecognized: false,
            })
            .collect();
        let lines: Vec<String> = contents.iter().map(|content| search_line(content)).collect();
        assert_eq!(search_text(&turns), lines.join("\n"));
        assert_eq!(search_text(&turns), "cafe au lait\n\nleading trailing\nok");
        assert_eq!(search_text(&[]), "");
        let line = search_line("I want to speak to a human, please. Humane? A human!");
        assert!(contains_words(&line, "speak to a human"));
        assert!(contains_words(&line, "human"));
        assert!(contains_words(&line, "i want"));
        assert!(contains_words(&line, "a human"), "a later occurrence counts");
        assert!(!contains_words(&line, "huma"), "part of a word");
        assert!(!contains_words(&line, "uman"), "the end of a word");
        assert!(!contains_words(&line, "speak a human"), "words not next to each other");
        assert!(!contains_words(&line, ""));
        assert!(!contains_words("", "human"));
    }

    #[test]
    fn text_queries_are_words_and_quoted_phrases_with_no_operators() {
        let query = TextQuery::parse(r#"Refund "speak to a HUMAN" now* OR -x"#);
        let terms: Vec<Vec<&str>> =
            query.terms.iter().map(|words| words.iter().map(String::as_str).collect()).collect();
        assert_eq!(
            terms,
            [vec!["refund"], vec!["speak", "to", "a", "human"], vec!["now"], vec!["or"], vec!["x"],]
        );
        assert_eq!(query.fts5_match(), r#""refund" "speak to a human" "now" "or" "x""#);
        assert_eq!(
            query.tsquery(),
            "('refund') & ('speak' <-> 'to' <-> 'a' <-> 'human') & ('now') & ('or') & ('x')"
        );
        // An unclosed quote runs to the end; empty quotes add nothing.
        assert_eq!(TextQuery::parse(r#"a "" "b c"#).terms, [vec!["a"], vec!["b", "c"]]);
    }

    #[test]
    fn a_text_search_needs_a_word_and_at_most_twenty_terms() {
        for (text, expected) in [
            ("%_", Some("must contain a word")),
            ("\"\"", Some("must contain a word")),
            (&"w ".repeat(21), Some("at most 20 words")),
            ("refund", None),
        ] {
            let query =
                DatapointQuery { text_contains: Some(text.to_owned()), ..Default::default() };
            match (query.check(), expected) {
                (Ok(()), None) => {}
                (Err(error), Some(expected)) => {
                    let violation = &error.field_violations()[0];
                    assert_eq!(violation.field, "text_contains");
                    assert!(violation.description.contains(expected), "{violation:?}");
                }
                (outcome, _) => panic!("{text}: {outcome:?}"),
            }
        }
    }

    fn conversation(turns: Vec<Turn>) -> Conversation {
        Conversation {
            call_id: "call_1".into(),
            context_token: "ctx".into(),
            source: Source::Webhook,
            provider: "retell".into(),
            started_at: None,
            ended_at: None,
            duration_ms: None,
            from_number: Some("+14155550100".into()),
            to_number: None,
            direction: Some("inbound".into()),
            turns,
            audio: None,
            diarization: true,
            first_turn: Role::Assistant,
            assistant_channel: None,
            tags: vec!["a".into()],
            metadata: serde_json::json!({"k": "v1", "keep": 1}).as_object().cloned().unwrap(),
            extras: ProviderExtras::default(),
            mut_id: None,
            integration_id: None,
        }
    }

    #[test]
    fn a_later_event_enriches_without_losing_fields() {
        let now = Utc::now();
        let turns = vec![Turn {
            role: Role::User,
            content: "Hi".into(),
            start_ms: 0,
            end_ms: None,
            channel: None,
            confidence: None,
            unrecognized: false,
        }];
        let first = Datapoint::merge(
            None,
            &conversation(turns.clone()),
            None,
            Uuid::nil(),
            Uuid::nil(),
            Uuid::from_u128(7),
            now,
        );
        assert_eq!(first.id, Uuid::from_u128(7), "a new datapoint takes its ingest's id");
        assert_eq!(first.transcript_source, TranscriptSource::Provider);

        let mut analyzed = conversation(Vec::new());
        analyzed.from_number = None;
        analyzed.tags = vec!["b".into(), "a".into()];
        analyzed.metadata = serde_json::json!({"k": "v2"}).as_object().cloned().unwrap();
        analyzed.extras = ProviderExtras {
            summary: Some("Short call".into()),
            successful: Some(true),
            ..Default::default()
        };
        let audio = Uuid::now_v7();
        let merged = Datapoint::merge(
            Some(first.clone()),
            &analyzed,
            Some(audio),
            Uuid::nil(),
            Uuid::nil(),
            Uuid::from_u128(8),
            now,
        );
        assert_eq!(merged.id, first.id);
        assert_eq!(merged.turns, turns, "turns stay when the new event has none");
        assert_eq!(merged.transcript_source, TranscriptSource::Provider);
        assert_eq!(merged.from_number.as_deref(), Some("+14155550100"));
        assert_eq!(merged.analysis.summary.as_deref(), Some("Short call"));
        assert_eq!(merged.analysis.successful, Some(true));
        assert_eq!(merged.tags, ["a", "b"]);
        assert_eq!(merged.metadata["k"], "v2");
        assert_eq!(merged.metadata["keep"], 1);
        assert_eq!(merged.audio_id, Some(audio));
    }

    #[test]
    fn metadata_values_compare_as_text() {
        assert_eq!(metadata_filter_text(&serde_json::json!("x")).as_deref(), Some("x"));
        assert_eq!(metadata_filter_text(&serde_json::json!(42)).as_deref(), Some("42"));
        assert_eq!(metadata_filter_text(&serde_json::json!(true)).as_deref(), Some("true"));
        assert_eq!(metadata_filter_text(&serde_json::json!({"a": 1})), None);
    }
}
