//! Reading provider payloads: JSON lookups by dotted path whose errors name the field, and the
//! time formats providers use.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::PayloadError;

/// The body as JSON.
pub fn parse_json(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice(body)
        .map_err(|error| PayloadError::new("body", format!("is not valid JSON: {error}")))
}

/// The value at a dotted path (`call.call_id`); missing and JSON null are both `None`.
pub fn get<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |value, key| value.get(key)).filter(|value| !value.is_null())
}

/// The first of `paths` holding a value, read with `read` (`opt_str`, `opt_f64`, ...).
pub fn first<T>(
    value: &Value,
    paths: &[&str],
    read: impl Fn(&Value, &str) -> Result<Option<T>, PayloadError>,
) -> Result<Option<T>, PayloadError> {
    for path in paths {
        if let Some(found) = read(value, path)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// A string at `path`, or `None`; a present value of another type is an error.
pub fn opt_str(value: &Value, path: &str) -> Result<Option<String>, PayloadError> {
    match get(value, path) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone()).filter(|text| !text.is_empty())),
        Some(_) => Err(PayloadError::new(path, "must be a string")),
    }
}

pub fn required_str(value: &Value, path: &str) -> Result<String, PayloadError> {
    opt_str(value, path)?.ok_or_else(|| PayloadError::new(path, "is required"))
}

/// A number at `path`; numeric strings (protojson int64) count.
pub fn opt_f64(value: &Value, path: &str) -> Result<Option<f64>, PayloadError> {
    match get(value, path) {
        None => Ok(None),
        Some(Value::Number(number)) => Ok(number.as_f64()),
        Some(Value::String(text)) if !text.trim().is_empty() => {
            text.trim().parse().map(Some).map_err(|_| PayloadError::new(path, "must be a number"))
        }
        Some(Value::String(_)) => Ok(None),
        Some(_) => Err(PayloadError::new(path, "must be a number")),
    }
}

pub fn opt_i64(value: &Value, path: &str) -> Result<Option<i64>, PayloadError> {
    Ok(opt_f64(value, path)?.map(|number| number.round() as i64))
}

pub fn opt_bool(value: &Value, path: &str) -> Result<Option<bool>, PayloadError> {
    match get(value, path) {
        None => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(Value::String(text)) => match text.to_ascii_lowercase().as_str() {
            "true" | "success" | "yes" => Ok(Some(true)),
            "false" | "failure" | "no" => Ok(Some(false)),
            _ => Ok(None),
        },
        Some(_) => Err(PayloadError::new(path, "must be a boolean")),
    }
}

/// An array at `path` (empty when absent).
pub fn opt_array<'a>(value: &'a Value, path: &str) -> Result<&'a [Value], PayloadError> {
    match get(value, path) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(PayloadError::new(path, "must be an array")),
    }
}

/// An object at `path` (empty when absent).
pub fn opt_object(
    value: &Value,
    path: &str,
) -> Result<serde_json::Map<String, Value>, PayloadError> {
    match get(value, path) {
        None => Ok(serde_json::Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(PayloadError::new(path, "must be an object")),
    }
}

pub fn from_millis(path: &str, millis: i64) -> Result<DateTime<Utc>, PayloadError> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| PayloadError::new(path, "is not a valid time"))
}

pub fn from_seconds(path: &str, seconds: f64) -> Result<DateTime<Utc>, PayloadError> {
    from_millis(path, (seconds * 1000.0).round() as i64)
}

/// An RFC 3339 / ISO 8601 time at `path`.
pub fn opt_rfc3339(value: &Value, path: &str) -> Result<Option<DateTime<Utc>>, PayloadError> {
    opt_str(value, path)?
        .map(|text| {
            DateTime::parse_from_rfc3339(&text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| PayloadError::new(path, "must be an RFC 3339 time"))
        })
        .transpose()
}

/// Seconds to whole milliseconds (saturating: the conversation contract refuses what is out of
/// range, naming the field).
pub fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// The end of a call that began at `started` and lasted `duration_ms`; None when that is not a
/// representable time.
pub fn end_time(started: DateTime<Utc>, duration_ms: i64) -> Option<DateTime<Utc>> {
    chrono::Duration::try_milliseconds(duration_ms)
        .and_then(|duration| started.checked_add_signed(duration))
}

/// The role of a speaker label or role name as voice platforms write them; None for labels
/// that are not a party to the call (system, tool, function).
pub fn speaker_role(label: &str) -> Option<crate::model::conversation::Role> {
    use crate::model::conversation::Role;
    match label.trim().to_ascii_lowercase().as_str() {
        "agent" | "assistant" | "ai" | "bot" | "robot" => Some(Role::Assistant),
        "user" | "lead" | "customer" | "caller" | "human" | "client" | "contact" => {
            Some(Role::User)
        }
        _ => None,
    }
}

/// Turns of a plain-text transcript written as `Agent: ...` / `Lead: ...` lines. A line without
/// a known label continues the turn before it; text before the first label is dropped. No
/// timing is known, so every turn starts at 0 and keeps the order of the text.
pub fn labelled_turns(text: &str) -> Vec<crate::model::conversation::Turn> {
    use crate::model::conversation::Turn;
    let mut turns: Vec<Turn> = Vec::new();
    for line in text.lines() {
        let labelled = line
            .split_once(':')
            .and_then(|(label, said)| speaker_role(label).map(|role| (role, said.trim())));
        match (labelled, turns.last_mut()) {
            (Some((role, said)), _) => turns.push(Turn::said(role, said, 0, None)),
            (None, Some(last)) if !line.trim().is_empty() => {
                if !last.content.is_empty() {
                    last.content.push('\n');
                }
                last.content.push_str(line.trim());
            }
            (None, _) => {}
        }
    }
    turns.retain(|turn| !turn.content.is_empty());
    turns
}

/// A transcript given either as labelled text or as an array of
/// `{role|speaker, content|text|message, start_ms|timestamp_ms|start (seconds)}` objects.
/// Entries of other speakers (system, tool) are skipped.
pub fn flexible_turns(
    root: &Value,
    path: &str,
) -> Result<Vec<crate::model::conversation::Turn>, PayloadError> {
    use crate::model::conversation::Turn;
    let entries = match get(root, path) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(text)) => return Ok(labelled_turns(text)),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(PayloadError::new(path, "must be a string or an array of turns"));
        }
    };
    let mut turns = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let field = |name: &str| format!("{path}[{index}].{name}");
        let label = first(entry, &["role", "speaker"], opt_str)
            .map_err(|error| PayloadError::new(field("role"), error.reason))?
            .ok_or_else(|| PayloadError::new(field("role"), "is required"))?;
        let Some(role) = speaker_role(&label) else {
            continue;
        };
        let content = first(entry, &["content", "text", "message"], opt_str)
            .map_err(|error| PayloadError::new(field("content"), error.reason))?
            .ok_or_else(|| PayloadError::new(field("content"), "is required"))?;
        let start_ms = match first(entry, &["start_ms", "timestamp_ms"], opt_i64)
            .map_err(|error| PayloadError::new(field("start_ms"), error.reason))?
        {
            Some(millis) => millis.max(0),
            None => opt_f64(entry, "start")
                .map_err(|error| PayloadError::new(field("start"), error.reason))?
                .map_or(0, seconds_to_ms)
                .max(0),
        };
        if content.trim().is_empty() {
            continue;
        }
        turns.push(Turn::said(role, content, start_ms, None));
    }
    Ok(turns)
}

/// A time given as RFC 3339 text, or as Unix seconds (or milliseconds, when the number is too
/// large to be seconds).
pub fn opt_time(value: &Value, path: &str) -> Result<Option<DateTime<Utc>>, PayloadError> {
    match get(value, path) {
        Some(Value::Number(number)) => {
            let number =
                number.as_f64().ok_or_else(|| PayloadError::new(path, "must be a time"))?;
            if number > 1e11 {
                from_millis(path, number as i64)
            } else {
                from_seconds(path, number)
            }
            .map(Some)
        }
        _ => opt_rfc3339(value, path),
    }
}
