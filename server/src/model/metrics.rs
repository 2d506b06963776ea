//! Call metrics computed from turn timings.
//!
//! A turn without an end time is taken to end when the next turn starts, or, for the last turn,
//! after its words at 150 words a minute; so overlaps are only counted between turns whose ends
//! are known.

use serde::{Deserialize, Serialize};

use super::conversation::{Role, Turn};

const ESTIMATED_MS_PER_WORD: i64 = 400;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleMetrics {
    pub role: Role,
    pub turn_count: i32,
    pub talk_time_ms: i64,
    pub word_count: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallMetrics {
    pub roles: Vec<RoleMetrics>,
    /// From the end of a user turn to the start of the next assistant turn.
    pub response_latency_p50_ms: Option<i64>,
    pub response_latency_p95_ms: Option<i64>,
    pub words_per_minute: Option<f64>,
    /// The longest stretch of consecutive turns by one speaker.
    pub longest_monologue_ms: i64,
    pub overlap_count: i32,
    pub overlap_ms: i64,
    /// For transcripts earshot made from the recording: the share of the speech voice
    /// activity found that recognised words cover (below 1, some speech was not recognised).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_coverage: Option<f64>,
}

fn word_count(content: &str) -> i64 {
    i64::try_from(content.split_whitespace().count()).unwrap_or(i64::MAX)
}

/// (start, end) of each turn, with unknown ends estimated.
pub fn turn_spans(turns: &[Turn]) -> Vec<(i64, i64)> {
    turns
        .iter()
        .enumerate()
        .map(|(index, turn)| {
            let end = turn.end_ms.unwrap_or_else(|| match turns.get(index + 1) {
                Some(next) if next.start_ms >= turn.start_ms => next.start_ms,
                _ => turn.start_ms.saturating_add(
                    word_count(&turn.content).saturating_mul(ESTIMATED_MS_PER_WORD),
                ),
            });
            (turn.start_ms, end.max(turn.start_ms))
        })
        .collect()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], percent: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

pub fn compute(turns: &[Turn]) -> CallMetrics {
    let spans = turn_spans(turns);
    let mut roles: Vec<RoleMetrics> = Vec::new();
    for (turn, (start, end)) in turns.iter().zip(&spans) {
        let index = match roles.iter().position(|metrics| metrics.role == turn.role) {
            Some(index) => index,
            None => {
                roles.push(RoleMetrics { role: turn.role, ..RoleMetrics::default() });
                roles.len() - 1
            }
        };
        let metrics = &mut roles[index];
        // Saturating throughout: times come from senders, and a metric is never negative.
        metrics.turn_count = metrics.turn_count.saturating_add(1);
        metrics.talk_time_ms = metrics.talk_time_ms.saturating_add(end.saturating_sub(*start));
        metrics.word_count = metrics.word_count.saturating_add(word_count(&turn.content));
    }

    let mut latencies: Vec<i64> = turns
        .windows(2)
        .zip(spans.windows(2))
        .filter(|(pair, _)| pair[0].role == Role::User && pair[1].role == Role::Assistant)
        .map(|(_, span)| span[1].0.saturating_sub(span[0].1).max(0))
        .collect();
    latencies.sort_unstable();

    let total_words =
        roles.iter().fold(0i64, |sum, metrics| sum.saturating_add(metrics.word_count));
    let total_talk_ms =
        roles.iter().fold(0i64, |sum, metrics| sum.saturating_add(metrics.talk_time_ms));
    #[allow(clippy::cast_precision_loss)]
    let words_per_minute =
        (total_talk_ms > 0).then(|| total_words as f64 * 60_000.0 / total_talk_ms as f64);

    let mut longest_monologue_ms = 0;
    let mut run_start = 0;
    for index in 0..turns.len() {
        if index == 0 || turns[index].role != turns[index - 1].role {
            run_start = index;
        }
        longest_monologue_ms =
            longest_monologue_ms.max(spans[index].1.saturating_sub(spans[run_start].0));
    }

    let (mut overlap_count, mut overlap_ms) = (0, 0);
    for (pair, span) in turns.windows(2).zip(spans.windows(2)) {
        let both_ends_known = pair[0].end_ms.is_some();
        if both_ends_known && pair[0].role != pair[1].role && span[1].0 < span[0].1 {
            overlap_count = i32::saturating_add(overlap_count, 1);
            overlap_ms =
                i64::saturating_add(overlap_ms, span[0].1.min(span[1].1).saturating_sub(span[1].0));
        }
    }

    CallMetrics {
        roles,
        response_latency_p50_ms: percentile(&latencies, 50),
        response_latency_p95_ms: percentile(&latencies, 95),
        words_per_minute,
        longest_monologue_ms,
        overlap_count,
        overlap_ms,
        speech_coverage: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(role: Role, content: &str, start_ms: i64, end_ms: Option<i64>) -> Turn {
        Turn {
            role,
            content: content.to_owned(),
            start_ms,
            end_ms,
            channel: None,
            confidence: None,
            unrecognized: false,
        }
    }

    #[test]
    fn extreme_times_saturate_instead_of_wrapping_negative() {
        let turns = [
            turn(Role::User, "a b c", i64::MIN, Some(i64::MAX)),
            turn(Role::Assistant, "d", i64::MAX, None),
            turn(Role::User, "e", 0, Some(i64::MAX)),
        ];
        let metrics = compute(&turns);
        assert!(metrics.roles.iter().all(|role| role.talk_time_ms >= 0), "{metrics:?}");
        assert!(metrics.longest_monologue_ms >= 0 && metrics.overlap_ms >= 0, "{metrics:?}");
        assert!(metrics.words_per_minute.is_none_or(|rate| rate >= 0.0), "{metrics:?}");
    }

    #[test]
    fn metrics_from_timed_turns() {
        let turns = [
            turn(Role::Assistant, "thanks for calling how can I help", 0, Some(2_000)),
            turn(Role::User, "what are your hours", 2_500, Some(4_000)),
            turn(Role::Assistant, "nine to five", 4_600, Some(5_600)),
            turn(Role::Assistant, "every weekday", 5_600, Some(6_600)),
            turn(Role::User, "and saturday", 6_400, Some(7_400)),
            turn(Role::Assistant, "closed", 8_400, Some(9_000)),
        ];
        let metrics = compute(&turns);
        let assistant = metrics.roles.iter().find(|role| role.role == Role::Assistant).unwrap();
        assert_eq!(
            (assistant.turn_count, assistant.talk_time_ms, assistant.word_count),
            (4, 4_600, 13)
        );
        let user = metrics.roles.iter().find(|role| role.role == Role::User).unwrap();
        assert_eq!((user.turn_count, user.talk_time_ms, user.word_count), (2, 2_500, 6));
        // Latencies: 600 (4000 -> 4600) and 1000 (7400 -> 8400).
        assert_eq!(metrics.response_latency_p50_ms, Some(600));
        assert_eq!(metrics.response_latency_p95_ms, Some(1_000));
        assert_eq!(metrics.longest_monologue_ms, 2_000);
        assert_eq!((metrics.overlap_count, metrics.overlap_ms), (1, 200));
        let wpm = metrics.words_per_minute.unwrap();
        assert!((wpm - 19.0 * 60_000.0 / 7_100.0).abs() < 1e-9, "{wpm}");
    }

    #[test]
    fn unknown_ends_are_estimated_and_empty_calls_have_no_latency() {
        let turns =
            [turn(Role::User, "hello there", 0, None), turn(Role::Assistant, "hi", 1_000, None)];
        let metrics = compute(&turns);
        assert_eq!(metrics.roles[0].talk_time_ms, 1_000);
        assert_eq!(metrics.roles[1].talk_time_ms, 400);
        assert_eq!(metrics.response_latency_p50_ms, Some(0));
        assert_eq!(metrics.overlap_count, 0);
        assert_eq!(compute(&[]), CallMetrics::default());
    }
}
