use chrono::{TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::model::conversation::{Conversation, ProviderExtras, Source};

fn turn(role: Role, content: &str, start_ms: i64, end_ms: Option<i64>) -> Turn {
    Turn::said(role, content, start_ms, end_ms)
}

/// A stored call of `turns`, with `extras` as the provider's verdicts and `duration_ms`.
fn call(turns: Vec<Turn>, duration_ms: Option<i64>, extras: ProviderExtras) -> Datapoint {
    let conversation = Conversation {
        call_id: "call_1".into(),
        context_token: "ctx".into(),
        source: Source::Webhook,
        provider: "retell".into(),
        started_at: None,
        ended_at: None,
        duration_ms,
        from_number: None,
        to_number: None,
        direction: None,
        turns,
        audio: None,
        diarization: true,
        first_turn: Role::Assistant,
        assistant_channel: None,
        tags: vec![],
        metadata: serde_json::Map::new(),
        extras,
        mut_id: None,
        integration_id: None,
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    Datapoint::merge(None, &conversation, None, Uuid::nil(), Uuid::nil(), Uuid::now_v7(), now)
}

/// Assistant 0–2 s, user 2.5–4 s, assistant 4.6–5.6 s and 5.6–6.6 s, user 6.4–7.4 s (overlaps
/// the assistant by 200 ms), assistant 8.4–9 s; a 10 s call.
fn timed_call() -> Datapoint {
    call(
        vec![
            turn(Role::Assistant, "Thanks for calling, how can I help?", 0, Some(2_000)),
            turn(Role::User, "What are your hours?", 2_500, Some(4_000)),
            turn(Role::Assistant, "Nine to five", 4_600, Some(5_600)),
            turn(Role::Assistant, "every weekday", 5_600, Some(6_600)),
            turn(Role::User, "And Saturday? I'd like to speak to a human.", 6_400, Some(7_400)),
            turn(Role::Assistant, "Closed on Saturday.", 8_400, Some(9_000)),
        ],
        Some(10_000),
        ProviderExtras {
            successful: Some(false),
            sentiment: Some("Negative".into()),
            outcome: Some(" Fail ".into()),
            ..ProviderExtras::default()
        },
    )
}

fn number(value: Option<Value>) -> f64 {
    match value {
        Some(Value::Number(number)) => number,
        other => panic!("not a number: {other:?}"),
    }
}

fn value_of(measure: Measure, datapoint: &Datapoint) -> Option<Value> {
    super::measure(measure, None, datapoint)
}

#[test]
fn every_measure_on_a_timed_call() {
    let datapoint = timed_call();
    // Speaker changes: 2000→2500 (500), 4000→4600 (600), 6600→6400 (overlap: 0), 7400→8400
    // (1000): mean 525.
    assert_eq!(number(value_of(Measure::AvgTurnTakingLatency, &datapoint)), 525.0);
    assert_eq!(number(value_of(Measure::TotalTurnCount, &datapoint)), 6.0);
    let words = 7.0 + 4.0 + 3.0 + 2.0 + 9.0 + 3.0;
    let rate = number(value_of(Measure::AvgWordsPerMinute, &datapoint));
    assert!((rate - words * 60_000.0 / 7_100.0).abs() < 1e-9, "{rate}");
    // User→assistant latencies 600 and 1000: nearest-rank p95 is 1000.
    assert_eq!(number(value_of(Measure::P95ResponseLatencyMs, &datapoint)), 1_000.0);
    assert_eq!(number(value_of(Measure::OverlapCount, &datapoint)), 1.0);
    assert_eq!(number(value_of(Measure::LongestMonologueMs, &datapoint)), 2_000.0);
    assert_eq!(number(value_of(Measure::DurationMs, &datapoint)), 10_000.0);
    assert_eq!(value_of(Measure::EmptyTranscript, &datapoint), Some(Value::Bool(false)));
    // Speech covers 0–2, 2.5–4, 4.6–7.4, 8.4–9: 6.9 s of 10.
    let silence = number(value_of(Measure::SilenceRatio, &datapoint));
    assert!((silence - 0.31).abs() < 1e-9, "{silence}");
    // Assistant 4.6 s of 7.1 s.
    let ratio = number(value_of(Measure::TalkRatioAssistant, &datapoint));
    assert!((ratio - 4_600.0 / 7_100.0).abs() < 1e-9, "{ratio}");
    assert_eq!(value_of(Measure::ProviderCallSuccessful, &datapoint), Some(Value::Bool(false)));
    assert_eq!(
        value_of(Measure::ProviderSentiment, &datapoint),
        Some(Value::Text("Negative".into()))
    );
    assert_eq!(value_of(Measure::ProviderOutcome, &datapoint), Some(Value::Text("Fail".into())));
    let contains =
        |phrase: &str| super::measure(Measure::TranscriptContains, Some(phrase), &datapoint);
    assert_eq!(contains("speak to a HUMAN"), Some(Value::Bool(true)));
    assert_eq!(contains("Speak, to a human!"), Some(Value::Bool(true)), "punctuation ignored");
    assert_eq!(contains("speak to human"), Some(Value::Bool(false)), "words next to each other");
    assert_eq!(contains("hours saturday"), Some(Value::Bool(false)), "within one turn");
    assert_eq!(contains("  "), Some(Value::Bool(false)));
    // One subject, asked for several phrases and for one again, answers as fresh ones do.
    let subject = super::Subject::new(&datapoint);
    for phrase in ["speak to a HUMAN", "hours saturday", "speak to human", "speak to a HUMAN"] {
        assert_eq!(Some(Value::Bool(subject.turn_contains(phrase))), contains(phrase), "{phrase}");
    }
    // A subject handed the text written for the index answers as one that folds the turns.
    let text = datapoint.transcript_search_text();
    let given = super::Subject::with_search_text(&datapoint, &text);
    assert!(subject.turn_lines().eq(given.turn_lines()));
    assert_eq!(given.turn_lines().count(), datapoint.turns.len());
    for phrase in ["speak to a HUMAN", "hours saturday", "speak to human"] {
        assert_eq!(Some(Value::Bool(given.turn_contains(phrase))), contains(phrase), "{phrase}");
    }
}

#[test]
fn a_call_with_no_turns_has_only_what_needs_no_turns() {
    let datapoint = call(vec![], None, ProviderExtras::default());
    for measure in [
        Measure::AvgTurnTakingLatency,
        Measure::AvgWordsPerMinute,
        Measure::P95ResponseLatencyMs,
        Measure::DurationMs,
        Measure::SilenceRatio,
        Measure::TalkRatioAssistant,
        Measure::ProviderCallSuccessful,
        Measure::ProviderSentiment,
        Measure::ProviderOutcome,
    ] {
        assert_eq!(value_of(measure, &datapoint), None, "{measure:?}");
    }
    assert_eq!(number(value_of(Measure::TotalTurnCount, &datapoint)), 0.0);
    assert_eq!(number(value_of(Measure::OverlapCount, &datapoint)), 0.0);
    assert_eq!(number(value_of(Measure::LongestMonologueMs, &datapoint)), 0.0);
    assert_eq!(value_of(Measure::EmptyTranscript, &datapoint), Some(Value::Bool(true)));
    assert_eq!(
        super::measure(Measure::TranscriptContains, Some("human"), &datapoint),
        Some(Value::Bool(false))
    );
}

#[test]
fn one_speaker_has_no_latency_and_talks_all_the_time() {
    let datapoint = call(
        vec![
            turn(Role::Assistant, "Hello?", 0, Some(1_000)),
            turn(Role::Assistant, "Is anyone there?", 3_000, Some(4_000)),
            turn(Role::System, "caller hung up", 4_000, Some(4_000)),
        ],
        None,
        ProviderExtras::default(),
    );
    assert_eq!(value_of(Measure::AvgTurnTakingLatency, &datapoint), None);
    assert_eq!(value_of(Measure::P95ResponseLatencyMs, &datapoint), None);
    assert_eq!(number(value_of(Measure::TotalTurnCount, &datapoint)), 2.0, "system turns left out");
    assert_eq!(number(value_of(Measure::TalkRatioAssistant, &datapoint)), 1.0);
    assert_eq!(number(value_of(Measure::LongestMonologueMs, &datapoint)), 4_000.0);
    // No reported duration: first start to last end, 4 s, of which 2 s are speech.
    assert_eq!(number(value_of(Measure::DurationMs, &datapoint)), 4_000.0);
    assert_eq!(number(value_of(Measure::SilenceRatio, &datapoint)), 0.5);
}

#[test]
fn missing_timestamps_are_estimated_like_the_metrics() {
    // No end times: a turn ends when the next starts, the last after 400 ms a word.
    let datapoint = call(
        vec![
            turn(Role::User, "hello there", 0, None),
            turn(Role::Assistant, "hi how can I help", 1_000, None),
        ],
        None,
        ProviderExtras::default(),
    );
    assert_eq!(number(value_of(Measure::AvgTurnTakingLatency, &datapoint)), 0.0);
    assert_eq!(number(value_of(Measure::DurationMs, &datapoint)), 3_000.0);
    assert_eq!(number(value_of(Measure::SilenceRatio, &datapoint)), 0.0);
    assert_eq!(number(value_of(Measure::TotalTurnCount, &datapoint)), 2.0);
}

#[test]
fn overlapping_turns_count_and_do_not_make_silence_negative() {
    let datapoint = call(
        vec![
            turn(Role::Assistant, "Let me explain the whole plan to you", 0, Some(5_000)),
            turn(Role::User, "wait wait", 1_000, Some(2_000)),
            turn(Role::User, "stop", 4_000, Some(6_000)),
        ],
        Some(6_000),
        ProviderExtras::default(),
    );
    assert_eq!(number(value_of(Measure::OverlapCount, &datapoint)), 1.0);
    assert_eq!(number(value_of(Measure::SilenceRatio, &datapoint)), 0.0);
    assert_eq!(number(value_of(Measure::AvgTurnTakingLatency, &datapoint)), 0.0);
    let short =
        call(vec![turn(Role::User, "a b", 0, Some(9_000))], Some(3_000), ProviderExtras::default());
    assert_eq!(number(value_of(Measure::SilenceRatio, &short)), 0.0, "speech past the duration");
}

#[test]
fn every_comparator_on_numbers_bools_and_text() {
    let n = |value: f64| Some(Value::Number(value));
    let b = |value: bool| Some(Value::Bool(value));
    let t = |value: &str| Some(Value::Text(value.to_owned()));
    let cases: [(Comparator, Option<Value>, Option<Value>, bool); 30] = [
        (Comparator::Equal, n(3.0), n(3.0), true),
        (Comparator::Equal, n(3.0), n(4.0), false),
        (Comparator::Equal, b(false), b(false), true),
        (Comparator::Equal, t(" Negative "), t("negative"), true),
        (Comparator::Equal, t("positive"), t("negative"), false),
        (Comparator::NotEqual, n(3.0), n(4.0), true),
        (Comparator::NotEqual, b(true), b(true), false),
        (Comparator::NotEqual, t("Neutral"), t("negative"), true),
        (Comparator::Contains, t("Very Negative"), t("negative"), true),
        (Comparator::Contains, t("positive"), t("negative"), false),
        (Comparator::NotContains, t("positive"), t("neg"), true),
        (Comparator::NotContains, t("negative"), t("NEG"), false),
        (Comparator::GreaterThan, n(1_501.0), n(1_500.0), true),
        (Comparator::GreaterThan, n(1_500.0), n(1_500.0), false),
        (Comparator::GreaterThanOrEqual, n(1_500.0), n(1_500.0), true),
        (Comparator::GreaterThanOrEqual, n(1_499.0), n(1_500.0), false),
        (Comparator::LessThan, n(0.2), n(0.25), true),
        (Comparator::LessThan, n(0.25), n(0.25), false),
        (Comparator::LessThanOrEqual, n(0.25), n(0.25), true),
        (Comparator::LessThanOrEqual, n(0.26), n(0.25), false),
        (Comparator::IsSet, n(0.0), None, true),
        (Comparator::IsSet, None, None, false),
        (Comparator::NotSet, None, None, true),
        (Comparator::NotSet, b(false), None, false),
        // A call without the measure is not an issue by any comparison with a threshold.
        (Comparator::Equal, None, b(false), false),
        (Comparator::NotEqual, None, b(true), false),
        (Comparator::GreaterThan, None, n(0.0), false),
        (Comparator::LessThan, None, n(10.0), false),
        (Comparator::NotContains, None, t("x"), false),
        // Mismatched types never hold (rules refuse them before evaluation).
        (Comparator::GreaterThan, t("9"), n(1.0), false),
    ];
    for (comparator, value, threshold, expected) in cases {
        assert_eq!(
            holds(comparator, value.as_ref(), threshold.as_ref()),
            expected,
            "{comparator:?} {value:?} {threshold:?}"
        );
    }
    for comparator in Comparator::ALL {
        assert_eq!(Comparator::parse(comparator.as_str()), Some(comparator));
    }
    for measure in Measure::ALL {
        assert_eq!(Measure::parse(measure.as_str()), Some(measure));
    }
}

fn rule(
    measure: &str,
    comparator: &str,
    threshold: Option<&str>,
    phrase: Option<&str>,
) -> Result<Rule, Vec<(String, String)>> {
    let mut violations = Violations::new();
    let parsed = Rule::parse("checks[0].", measure, comparator, threshold, phrase, &mut violations);
    match violations.into_result() {
        Ok(()) => Ok(parsed.expect("a rule when nothing is violated")),
        Err(crate::error::Error::InvalidArgument(fields)) => {
            assert!(parsed.is_none());
            Err(fields.into_iter().map(|field| (field.field, field.description)).collect())
        }
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn rules_refuse_what_cannot_be_compared_and_name_the_field() {
    let fields = |result: Result<Rule, Vec<(String, String)>>| -> Vec<String> {
        result.unwrap_err().into_iter().map(|(field, _)| field).collect()
    };
    assert_eq!(fields(rule("latency", "greater_than", Some("1"), None)), ["checks[0].measure"]);
    assert_eq!(fields(rule("duration_ms", "bigger", Some("1"), None)), ["checks[0].comparator"]);
    assert_eq!(
        fields(rule("nonsense", "bigger", None, None)),
        ["checks[0].measure", "checks[0].comparator"]
    );
    let ordered_bool = rule("provider_call_successful", "greater_than", Some("true"), None);
    assert_eq!(fields(ordered_bool), ["checks[0].comparator"]);
    let contains_number = rule("duration_ms", "contains", Some("1"), None);
    assert_eq!(fields(contains_number), ["checks[0].comparator"]);
    assert_eq!(fields(rule("duration_ms", "greater_than", None, None)), ["checks[0].threshold"]);
    assert_eq!(
        fields(rule("duration_ms", "less_than", Some("soon"), None)),
        ["checks[0].threshold"]
    );
    assert_eq!(
        fields(rule("duration_ms", "less_than", Some("NaN"), None)),
        ["checks[0].threshold"]
    );
    let yes = rule("provider_call_successful", "equal", Some("yes"), None);
    assert_eq!(fields(yes), ["checks[0].threshold"]);
    assert_eq!(fields(rule("duration_ms", "is_set", Some("1"), None)), ["checks[0].threshold"]);
    assert_eq!(
        fields(rule("provider_sentiment", "equal", Some(" "), None)),
        ["checks[0].threshold"]
    );
    assert_eq!(
        fields(rule("transcript_contains", "equal", Some("true"), None)),
        ["checks[0].phrase"]
    );
    assert_eq!(
        fields(rule("transcript_contains", "equal", Some("true"), Some("?!"))),
        ["checks[0].phrase"]
    );
    assert_eq!(
        fields(rule("duration_ms", "greater_than", Some("1"), Some("human"))),
        ["checks[0].phrase"]
    );

    assert_eq!(
        rule("p95_response_latency_ms", "greater_than", Some(" 1500 "), None),
        Ok(Rule {
            measure: Measure::P95ResponseLatencyMs,
            comparator: Comparator::GreaterThan,
            threshold: Some(Value::Number(1_500.0)),
            phrase: None,
        })
    );
    assert!(rule("provider_sentiment", "not_set", None, None).is_ok());
    assert!(rule("provider_sentiment", "contains", Some("neg"), None).is_ok());
    assert!(rule("transcript_contains", "equal", Some("true"), Some("speak to a human")).is_ok());
}

#[test]
fn a_result_carries_its_check_and_explains_itself() {
    let datapoint = timed_call();
    let check =
        |name: &str, rule: Rule| Check { id: Uuid::nil(), name: name.into(), version: 3, rule };
    let slow = check(
        "slow responses",
        Rule {
            measure: Measure::P95ResponseLatencyMs,
            comparator: Comparator::GreaterThan,
            threshold: Some(Value::Number(1_500.0)),
            phrase: None,
        },
    );
    let result = evaluate(&slow, &datapoint);
    assert_eq!(result.name, "slow responses");
    assert_eq!((result.check_id, result.check_version), (Uuid::nil(), 3));
    assert_eq!(result.value, Some(Value::Number(1_000.0)));
    assert_eq!(result.value_type, ValueType::Number);
    assert!(!result.is_issue);
    assert_eq!(
        result.explanation,
        "p95_response_latency_ms is 1000 ms, not greater than 1500 ms: no issue"
    );

    let failed = check(
        "provider says failed",
        Rule {
            measure: Measure::ProviderCallSuccessful,
            comparator: Comparator::Equal,
            threshold: Some(Value::Bool(false)),
            phrase: None,
        },
    );
    let result = evaluate(&failed, &datapoint);
    assert!(result.is_issue);
    assert_eq!(result.explanation, "provider_call_successful is false, equal to false: an issue");

    let human = check(
        "asked for a human",
        Rule {
            measure: Measure::TranscriptContains,
            comparator: Comparator::Equal,
            threshold: Some(Value::Bool(true)),
            phrase: Some("speak to a human".into()),
        },
    );
    let result = evaluate(&human, &datapoint);
    assert!(result.is_issue);
    assert_eq!(
        result.explanation,
        "transcript_contains \"speak to a human\" is true, equal to true: an issue"
    );

    let silent = check(
        "quiet",
        Rule {
            measure: Measure::SilenceRatio,
            comparator: Comparator::GreaterThan,
            threshold: Some(Value::Number(0.25)),
            phrase: None,
        },
    );
    let result = evaluate(&silent, &datapoint);
    assert!(result.is_issue);
    assert_eq!(result.explanation, "silence_ratio is 0.31, greater than 0.25: an issue");

    let unmeasured = evaluate(&slow, &call(vec![], None, ProviderExtras::default()));
    assert_eq!(unmeasured.value, None);
    assert!(!unmeasured.is_issue);
    assert_eq!(
        unmeasured.explanation,
        "p95_response_latency_ms is not set for this call: no issue"
    );
}

#[test]
fn check_values_serialize_in_okareos_shape() {
    let result = CheckValue {
        name: "slow responses".into(),
        value: Some(Value::Number(1_830.0)),
        value_type: ValueType::Number,
        check_id: Uuid::nil(),
        check_version: 2,
        is_issue: true,
        explanation: "p95_response_latency_ms is 1830 ms, greater than 1500 ms: an issue".into(),
    };
    assert_eq!(
        serde_json::to_value(&result).unwrap(),
        serde_json::json!({
            "name": "slow responses",
            "value": 1830.0,
            "value_type": "number",
            "check_id": "00000000-0000-0000-0000-000000000000",
            "check_version": 2,
            "is_issue": true,
            "explanation": "p95_response_latency_ms is 1830 ms, greater than 1500 ms: an issue"
        })
    );
}
