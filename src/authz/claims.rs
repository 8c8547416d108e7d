//! The verified token's content: header and claim set parsed once, with duplicate member names
//! rejected (RFC 7519 §4, RFC 7515 §4) so that no two parsers can read different values.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object whose member names are unique (duplicates are a parse error).
pub struct StrictObject(pub Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut out = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    if out.insert(key, value).is_some() {
                        return Err(de::Error::custom("duplicate member name"));
                    }
                }
                Ok(StrictObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses a JSON object, rejecting duplicate member names at the top level.
pub fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    serde_json::from_slice::<StrictObject>(bytes)
        .ok()
        .map(|o| o.0)
}

/// The verified claim set and the values jwt-authz reads from it.
#[derive(Debug, Clone)]
pub struct Claims {
    pub iss: String,
    pub sub: Option<String>,
    pub exp: f64,
    pub all: Map<String, Value>,
}

/// A NumericDate (RFC 7519 §2): a JSON number, integer or fractional; never a string.
pub fn numeric_date(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// `aud` as a string or an array of strings (RFC 7519 §4.1.3).
pub fn audiences(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_duplicate_member_names() {
        assert!(parse_object(br#"{"sub":"a","sub":"b"}"#).is_none());
        assert!(parse_object(br#"{"sub":"a","iss":"b"}"#).is_some());
    }

    #[test]
    fn numeric_date_accepts_numbers_not_strings() {
        assert_eq!(numeric_date(&json!(1700000000)), Some(1.7e9));
        assert_eq!(numeric_date(&json!(1700000000.5)), Some(1700000000.5));
        assert_eq!(numeric_date(&json!("1700000000")), None);
    }

    #[test]
    fn audience_string_or_array_of_strings() {
        assert_eq!(audiences(&json!("a")), Some(vec!["a"]));
        assert_eq!(audiences(&json!(["a", "b"])), Some(vec!["a", "b"]));
        assert_eq!(audiences(&json!(["a", 1])), None);
        assert_eq!(audiences(&json!(7)), None);
    }
}
