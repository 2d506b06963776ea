//! Conversions between `google.protobuf.Struct` and JSON objects, for metadata, which both the
//! server and the SDKs carry as JSON.

/// A `google.protobuf.Struct` as a JSON object. Whole numbers come back as integers, as a JSON
/// client would have sent them.
pub fn struct_to_json(value: prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    value.fields.into_iter().map(|(key, value)| (key, value_to_json(value))).collect()
}

fn value_to_json(value: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(flag)) => serde_json::Value::Bool(flag),
        Some(Kind::NumberValue(number)) =>
        {
            #[allow(clippy::cast_possible_truncation, clippy::float_cmp)]
            if number.fract() == 0.0 && number.abs() < 9.0e15 {
                serde_json::Value::from(number as i64)
            } else {
                serde_json::Number::from_f64(number)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Some(Kind::StringValue(text)) => serde_json::Value::String(text),
        Some(Kind::StructValue(inner)) => serde_json::Value::Object(struct_to_json(inner)),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.into_iter().map(value_to_json).collect())
        }
    }
}

/// A JSON object as a `google.protobuf.Struct` (numbers become doubles, as protobuf has no other).
pub fn json_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.iter().map(|(key, value)| (key.clone(), json_to_value(value))).collect(),
    }
}

fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(flag) => Kind::BoolValue(*flag),
        serde_json::Value::Number(number) => Kind::NumberValue(number.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(text) => Kind::StringValue(text.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_survives_the_round_trip() {
        let serde_json::Value::Object(map) = serde_json::json!({
            "customer_id": "cust_123", "attempt": 2, "score": 0.5, "vip": true,
            "note": null, "items": [1, "two", {"three": 3}]
        }) else {
            unreachable!()
        };
        assert_eq!(struct_to_json(json_to_struct(&map)), map);
    }
}
