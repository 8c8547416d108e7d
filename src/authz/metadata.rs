//! Envoy dynamic metadata for an allowed request: `CheckResponse.dynamic_metadata`, a
//! `google.protobuf.Struct` that Envoy files under `envoy.filters.http.ext_authz` for RBAC,
//! access logs and route headers. Its shape is
//! `{<metadata_key>: {route, issuer, subject, scopes, claims}}`.
//!
//! Everything but `route` depends only on the verified token, so it is encoded once per token
//! ([`fields`], kept with the token in the cache) and each allow only appends the route and
//! wraps the result ([`encode`]): protobuf map entries are repeated fields, so two encoded
//! `Struct` bodies concatenated are one `Struct` holding the entries of both.

#[cfg(test)]
use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value as PbValue};
use prost::{
    bytes::BufMut,
    encoding::{encode_key, encode_varint, encoded_len_varint, WireType},
};
use std::fmt;

use serde::{
    de::{self, SeqAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::{Map, Value};

use super::claims::Claims;

/// `Struct.fields` (map<string, Value>), field 1.
const STRUCT_FIELDS: u32 = 1;
/// A map entry's key (1) and value (2).
const ENTRY_KEY: u32 = 1;
const ENTRY_VALUE: u32 = 2;
/// `Value.string_value` (3) and `Value.struct_value` (5) of google.protobuf.Value.
const VALUE_STRING: u32 = 3;
const VALUE_STRUCT: u32 = 5;

/// Which claims go under `claims` in the metadata (`metadata_claims:` in the config file).
///
/// Envoy decodes and stores every field of the `Struct` on every allowed request, so a large
/// claim set costs Envoy CPU per request even when nothing reads it (BENCHMARKS.md, "Through
/// Envoy"); publishing only what RBAC rules, access logs and route headers read is cheaper.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MetadataClaims {
    /// The whole verified payload (the default).
    #[default]
    All,
    /// No `claims` entry; `issuer`, `subject`, `scopes` and `route` are still published.
    None,
    /// Only these top-level claims, when the token has them.
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for MetadataClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, not `#[serde(untagged)]`: errors then keep the field's path and position.
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetadataClaims;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all`, `none` or a list of claim names")
            }

            fn visit_str<E: de::Error>(self, w: &str) -> Result<MetadataClaims, E> {
                match w {
                    "all" => Ok(MetadataClaims::All),
                    "none" => Ok(MetadataClaims::None),
                    w if w.eq_ignore_ascii_case("all") || w.eq_ignore_ascii_case("none") => Err(
                        E::custom(format!("write `{}` in lower case", w.to_ascii_lowercase())),
                    ),
                    "" => Err(E::custom("expected `all`, `none` or a list of claim names")),
                    w => Err(E::custom(format!(
                        "`{w}` is not `all` or `none`; to publish one claim, write a list: [{w}]"
                    ))),
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MetadataClaims, A::Error> {
                let mut names: Vec<String> = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    if name.is_empty() {
                        return Err(de::Error::custom("a claim name in the list is empty"));
                    }
                    if name.starts_with('/') {
                        // upstream_headers.claims takes JSON pointers; this list does not.
                        return Err(de::Error::custom(format!(
                            "`{name}`: list top-level claim names (each is published whole), not JSON pointers"
                        )));
                    }
                    if names.contains(&name) {
                        return Err(de::Error::custom(format!("`{name}` is listed twice")));
                    }
                    names.push(name);
                }
                if names.is_empty() {
                    return Err(de::Error::custom(
                        "the list is empty; write `none` to publish no claims",
                    ));
                }
                Ok(MetadataClaims::Only(names))
            }
        }
        d.deserialize_any(V)
    }
}

/// The encoded `Struct` body of `{issuer, subject, scopes, claims}` for a verified token,
/// written straight from the parsed claims (no intermediate protobuf `Struct`: building one cost
/// ~7% of a check that verifies a signature, see BENCHMARKS.md "The miss path").
pub fn fields(claims: &Claims, published: &MetadataClaims) -> Box<[u8]> {
    let scopes: Vec<Value> = super::policy::scopes(&claims.all)
        .into_iter()
        .map(Value::String)
        .collect();
    let scopes = Value::Array(scopes);
    let mut buf = Vec::with_capacity(256);
    put_entry("issuer", &Json::Str(&claims.iss), &mut buf);
    if let Some(sub) = &claims.sub {
        put_entry("subject", &Json::Str(sub), &mut buf);
    }
    put_entry("scopes", &Json::Value(&scopes), &mut buf);
    match published {
        MetadataClaims::All => put_entry("claims", &Json::Object(&claims.all), &mut buf),
        MetadataClaims::None => {}
        MetadataClaims::Only(names) => {
            let some: Map<String, Value> = names
                .iter()
                .filter_map(|n| Some((n.clone(), claims.all.get(n)?.clone())))
                .collect();
            put_entry("claims", &Json::Object(&some), &mut buf);
        }
    }
    buf.into_boxed_slice()
}

// --- JSON → google.protobuf.Struct / Value, encoded directly ------------------------------------
//
// Value (struct.proto): null_value = 1 (enum), number_value = 2 (double), string_value = 3,
// bool_value = 4, struct_value = 5, list_value = 6; ListValue.values = 1. Numbers become
// doubles, as in proto3's JSON mapping. Lengths are computed before writing; claim sets are
// bounded by `max_token_bytes` and serde_json's nesting limit, so the repeated length walks of
// nested values stay small.

const VALUE_NULL: u32 = 1;
const VALUE_NUMBER: u32 = 2;
const VALUE_BOOL: u32 = 4;
const VALUE_LIST: u32 = 6;
const LIST_VALUES: u32 = 1;

/// A JSON value to encode: a borrowed `Value`, or a string / object held elsewhere.
enum Json<'a> {
    Value(&'a Value),
    Str(&'a str),
    Object(&'a Map<String, Value>),
}

/// One `Struct.fields` map entry: `key → Value(json)`, with its tag and length.
fn put_entry(key: &str, json: &Json<'_>, buf: &mut Vec<u8>) {
    let value = value_len(json);
    put_len_prefix(STRUCT_FIELDS, entry_len(key, value), buf);
    put_bytes(ENTRY_KEY, key.as_bytes(), buf);
    put_len_prefix(ENTRY_VALUE, value, buf);
    put_value(json, buf);
}

/// A map entry's body: the key, and a `Value` whose body is `value` bytes long.
fn entry_len(key: &str, value: usize) -> usize {
    field_len(key.len()) + field_len(value)
}

/// Length of a `Value` message's body.
fn value_len(json: &Json<'_>) -> usize {
    match json {
        Json::Str(s) => field_len(s.len()),
        Json::Object(m) => field_len(object_len(m)),
        Json::Value(v) => match v {
            // An enum or bool field: tag + one-byte varint.
            Value::Null | Value::Bool(_) => 2,
            // A double: tag + 8 bytes.
            Value::Number(_) => 9,
            Value::String(s) => field_len(s.len()),
            Value::Array(items) => field_len(list_len(items)),
            Value::Object(m) => field_len(object_len(m)),
        },
    }
}

/// Length of a `Struct` message's body.
fn object_len(m: &Map<String, Value>) -> usize {
    m.iter()
        .map(|(k, v)| field_len(entry_len(k, value_len(&Json::Value(v)))))
        .sum()
}

/// Length of a `ListValue` message's body.
fn list_len(items: &[Value]) -> usize {
    items
        .iter()
        .map(|v| field_len(value_len(&Json::Value(v))))
        .sum()
}

/// A `Value` message's body.
fn put_value(json: &Json<'_>, buf: &mut Vec<u8>) {
    match json {
        Json::Str(s) => put_bytes(VALUE_STRING, s.as_bytes(), buf),
        Json::Object(m) => put_object(m, buf),
        Json::Value(v) => match v {
            Value::Null => {
                encode_key(VALUE_NULL, WireType::Varint, buf);
                encode_varint(0, buf);
            }
            Value::Bool(b) => {
                encode_key(VALUE_BOOL, WireType::Varint, buf);
                encode_varint(u64::from(*b), buf);
            }
            Value::Number(n) => {
                encode_key(VALUE_NUMBER, WireType::SixtyFourBit, buf);
                buf.put_f64_le(n.as_f64().unwrap_or(0.0));
            }
            Value::String(s) => put_bytes(VALUE_STRING, s.as_bytes(), buf),
            Value::Array(items) => {
                put_len_prefix(VALUE_LIST, list_len(items), buf);
                for item in items {
                    let item = Json::Value(item);
                    put_len_prefix(LIST_VALUES, value_len(&item), buf);
                    put_value(&item, buf);
                }
            }
            Value::Object(m) => put_object(m, buf),
        },
    }
}

/// `struct_value`: the tag, the length, then one map entry per member.
fn put_object(m: &Map<String, Value>, buf: &mut Vec<u8>) {
    put_len_prefix(VALUE_STRUCT, object_len(m), buf);
    for (k, v) in m {
        put_entry(k, &Json::Value(v), buf);
    }
}

/// Length of what [`encode`] writes.
pub fn encoded_len(key: &str, fields: &[u8], route: &str) -> usize {
    let (_, _, entry) = lengths(key, fields, route);
    field_len(entry)
}

/// Writes `{key: {route} ∪ fields}` as the body of a `Struct` (the caller writes the field tag
/// and the [`encoded_len`] before it). Allocates nothing.
pub fn encode(key: &str, fields: &[u8], route: &str, buf: &mut impl BufMut) {
    let (inner, value, entry) = lengths(key, fields, route);
    // Outer Struct: one entry, key → Value{struct_value: inner}.
    put_len_prefix(STRUCT_FIELDS, entry, buf);
    put_bytes(ENTRY_KEY, key.as_bytes(), buf);
    put_len_prefix(ENTRY_VALUE, value, buf);
    put_len_prefix(VALUE_STRUCT, inner, buf);
    // Inner Struct: the token's fields, then `"route": Value{string_value: route}`.
    buf.put_slice(fields);
    put_len_prefix(STRUCT_FIELDS, route_entry_len(route), buf);
    put_bytes(ENTRY_KEY, b"route", buf);
    put_len_prefix(ENTRY_VALUE, field_len(route.len()), buf);
    put_bytes(VALUE_STRING, route.as_bytes(), buf);
}

/// (inner Struct, outer entry's Value, outer map entry) lengths.
fn lengths(key: &str, fields: &[u8], route: &str) -> (usize, usize, usize) {
    let inner = fields.len() + field_len(route_entry_len(route));
    let value = field_len(inner);
    let entry = field_len(key.len()) + field_len(value);
    (inner, value, entry)
}

/// The map entry `"route": Value{string_value: route}`, without its own tag and length.
fn route_entry_len(route: &str) -> usize {
    field_len("route".len()) + field_len(field_len(route.len()))
}

/// A length-delimited field with a one-byte tag (field numbers < 16) and `len` bytes of content.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_len_prefix(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_bytes(tag: u32, bytes: &[u8], buf: &mut impl BufMut) {
    put_len_prefix(tag, bytes.len(), buf);
    buf.put_slice(bytes);
}

/// A JSON object as a `google.protobuf.Struct` built field by field with prost's types: the
/// oracle the direct encoding above is tested against.
#[cfg(test)]
pub fn to_struct(map: Map<String, Value>) -> Struct {
    Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

#[cfg(test)]
fn to_value(v: Value) -> PbValue {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        Value::Object(m) => Kind::StructValue(to_struct(m)),
    };
    PbValue { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;

    /// Every JSON shape, encoded directly, decodes to the Struct prost builds field by field.
    #[test]
    fn direct_encoding_equals_prosts_for_every_json_shape() {
        let all = json!({
            "iss": "https://idp.example", "sub": "ü-ñ-🙂", "scope": "",
            "ints": [0, 1, -1, 127, 128, 9007199254740993u64, -9007199254740993i64],
            "floats": [1.5, -0.0, 1e300, 5e-324],
            "flags": [true, false, null],
            "empty_list": [], "empty_obj": {},
            "nested": [[[]], [{}], {"a": [{"b": {"c": [1, "two", null, {"d": false}]}}]}],
            "long": "x".repeat(300),
            "": "empty key"
        });
        let claims = Claims {
            iss: "https://idp.example".into(),
            sub: None,
            exp: 0.0,
            all: all.as_object().unwrap().clone(),
        };
        let encoded = fields(&claims, &MetadataClaims::All);
        let decoded = Struct::decode(&*encoded).expect("valid Struct");
        let want = to_struct(
            json!({"issuer": "https://idp.example", "scopes": [], "claims": all})
                .as_object()
                .unwrap()
                .clone(),
        );
        // (Not byte for byte: prost leaves out a map entry's empty key, this encoder writes it
        // as an empty string; both decode to the same map.)
        assert_eq!(decoded, want);
    }

    fn claims() -> Claims {
        let all = json!({
            "iss": "https://idp.example", "sub": "alice", "scope": "read write",
            "n": 1.5, "ok": true, "nil": null, "roles": ["a", "b"], "obj": {"k": [1, {"x": "y"}]}
        });
        Claims {
            iss: "https://idp.example".into(),
            sub: Some("alice".into()),
            exp: 0.0,
            all: all.as_object().unwrap().clone(),
        }
    }

    /// The spliced encoding decodes to exactly the Struct built the plain way.
    #[test]
    fn spliced_encoding_equals_the_plain_struct() {
        let c = claims();
        let fields = fields(&c, &MetadataClaims::All);
        for route in ["orders", "", &"r".repeat(300)] {
            let mut buf = Vec::new();
            encode("jwt_authz", &fields, route, &mut buf);
            assert_eq!(buf.len(), encoded_len("jwt_authz", &fields, route));
            let decoded = Struct::decode(buf.as_slice()).expect("valid Struct");

            let inner = json!({
                "route": route,
                "issuer": "https://idp.example",
                "subject": "alice",
                "scopes": ["read", "write"],
                "claims": Value::Object(c.all.clone()),
            });
            let want = to_struct(json!({ "jwt_authz": inner }).as_object().unwrap().clone());
            assert_eq!(decoded, want, "route {route:?}");
        }
    }

    #[test]
    fn a_long_key_and_large_claims_keep_lengths_right() {
        let mut c = claims();
        c.all
            .insert("big".into(), Value::String("x".repeat(100_000)));
        let fields = fields(&c, &MetadataClaims::All);
        let key = "k".repeat(200);
        let mut buf = Vec::new();
        encode(&key, &fields, "route", &mut buf);
        assert_eq!(buf.len(), encoded_len(&key, &fields, "route"));
        let decoded = Struct::decode(buf.as_slice()).expect("valid Struct");
        let Some(Kind::StructValue(inner)) = &decoded.fields[&key].kind else {
            panic!("not a struct: {decoded:?}");
        };
        assert_eq!(inner.fields.len(), 5);
    }

    fn decoded_inner(published: &MetadataClaims) -> Value {
        let mut buf = Vec::new();
        encode("m", &fields(&claims(), published), "r", &mut buf);
        let decoded = Struct::decode(buf.as_slice()).expect("valid Struct");
        let Some(Kind::StructValue(inner)) = &decoded.fields["m"].kind else {
            panic!("not a struct: {decoded:?}");
        };
        let mut keys: Vec<&str> = inner.fields.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let claims = inner.fields.get("claims").map(|v| match &v.kind {
            Some(Kind::StructValue(s)) => {
                let mut k: Vec<&str> = s.fields.keys().map(String::as_str).collect();
                k.sort_unstable();
                k.join(",")
            }
            other => panic!("claims is not a struct: {other:?}"),
        });
        serde_json::json!({ "keys": keys, "claims": claims })
    }

    #[test]
    fn publishes_all_none_or_only_the_named_claims() {
        use serde_json::json;
        assert_eq!(
            decoded_inner(&MetadataClaims::All),
            json!({"keys": ["claims", "issuer", "route", "scopes", "subject"],
                   "claims": "iss,n,nil,obj,ok,roles,scope,sub"})
        );
        assert_eq!(
            decoded_inner(&MetadataClaims::None),
            json!({"keys": ["issuer", "route", "scopes", "subject"], "claims": null})
        );
        assert_eq!(
            decoded_inner(&MetadataClaims::Only(vec!["roles".into(), "absent".into()])),
            json!({"keys": ["claims", "issuer", "route", "scopes", "subject"], "claims": "roles"})
        );
    }

    #[test]
    fn metadata_claims_parses_words_and_lists_and_explains_mistakes() {
        let parse =
            |y: &str| serde_norway::from_str::<MetadataClaims>(y).map_err(|e| e.to_string());
        assert_eq!(parse("all"), Ok(MetadataClaims::All));
        assert_eq!(parse("none"), Ok(MetadataClaims::None));
        assert_eq!(
            parse("[client_id, email]"),
            Ok(MetadataClaims::Only(vec![
                "client_id".into(),
                "email".into()
            ]))
        );
        let err = parse("email").unwrap_err();
        assert!(err.contains("write a list: [email]"), "{err}");
        assert!(parse("['']").unwrap_err().contains("empty"));
        assert!(parse("All")
            .unwrap_err()
            .contains("write `all` in lower case"));
        assert!(parse("''").unwrap_err().contains("expected `all`, `none`"));
        assert!(parse("[]").unwrap_err().contains("write `none`"));
        assert!(parse("[/client_id]")
            .unwrap_err()
            .contains("not JSON pointers"));
        assert!(parse("[email, email]")
            .unwrap_err()
            .contains("listed twice"));
        for wrong in ["{a: 1}", "3", "true", "~"] {
            let err = parse(wrong).unwrap_err();
            assert!(
                err.contains("`all`, `none` or a list of claim names"),
                "{wrong}: {err}"
            );
        }
    }
}
