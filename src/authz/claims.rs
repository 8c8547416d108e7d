//! The verified token's content: header and claim set parsed once, with duplicate member names
//! rejected at every depth (RFC 7515 §4, RFC 7519 §4, RFC 8259 §4) so that no two parsers can
//! read different values. Nothing here trusts the token; it only decodes it.

use std::{cell::Cell, fmt};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a JSON text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON, trailing data, or not an object at the top level.
    Invalid,
    /// An object (at any depth) names one member twice.
    DuplicateMember,
}

/// Parses a JSON object, rejecting duplicate member names at every depth.
///
/// RFC 7515 §4 and RFC 7519 §4 allow a parser that keeps the lexically last duplicate, but two
/// components reading "the" value of `sub` or `roles` differently is a classic bypass (RFC 8725
/// §2.6), so jwt-authz refuses the token instead. serde_json's recursion limit (128) still
/// applies, so deep nesting cannot exhaust the stack.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let duplicate = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict {
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JsonError::Invalid),
        Err(_) if duplicate.get() => Err(JsonError::DuplicateMember),
        Err(_) => Err(JsonError::Invalid),
    }
}

// === impl Strict ===

/// Builds a [`Value`] like serde_json's own visitor, but fails on a repeated member name and
/// records that it did in `duplicate` (so the caller never matches on error strings).
#[derive(Clone, Copy)]
struct Strict<'c> {
    duplicate: &'c Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json only produces finite floats; map anything else to null as it does.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            if out.insert(key, value).is_some() {
                self.duplicate.set(true);
                return Err(de::Error::custom("duplicate member name"));
            }
        }
        Ok(Value::Object(out))
    }
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
        let dup = Err(JsonError::DuplicateMember);
        assert_eq!(parse_object(br#"{"sub":"a","sub":"b"}"#), dup);
        assert!(parse_object(br#"{"sub":"a","iss":"b"}"#).is_ok());
    }

    #[test]
    fn rejects_duplicate_member_names_at_any_depth() {
        let dup = Err(JsonError::DuplicateMember);
        assert_eq!(
            parse_object(br#"{"r":{"roles":["a"],"roles":["admin"]}}"#),
            dup
        );
        assert_eq!(parse_object(br#"{"a":[1,{"x":1,"x":2}]}"#), dup);
        // An escaped spelling of the same name is the same name once decoded.
        assert_eq!(parse_object(br#"{"sub":"a","s\u0075b":"b"}"#), dup);
    }

    #[test]
    fn parses_like_serde_json_otherwise() {
        let text = br#"{"a":[1,-2,3.5,true,null,"s",{"b":{}}],"c":18446744073709551615}"#;
        let want: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(Value::Object(parse_object(text).unwrap()), want);
    }

    #[test]
    fn rejects_non_objects_trailing_data_and_deep_nesting() {
        for bad in [
            &b"[]"[..],
            b"\"x\"",
            b"{} {}",
            b"{}x",
            b"",
            b"\xef\xbb\xbf{}",
        ] {
            assert_eq!(parse_object(bad), Err(JsonError::Invalid), "{bad:?}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(parse_object(deep.as_bytes()), Err(JsonError::Invalid));
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
