//! Envoy dynamic metadata for an allowed request: `CheckResponse.dynamic_metadata`, a
//! `google.protobuf.Struct` that Envoy files under `envoy.filters.http.ext_authz` for RBAC,
//! access logs and route headers. Its shape is
//! `{<metadata_key>: {route, issuer, subject, scopes, claims}}`.
//!
//! Everything but `route` depends only on the verified token, so it is encoded once per token
//! ([`fields`], kept with the token in the cache) and each allow only appends the route and
//! wraps the result ([`encode`]): protobuf map entries are repeated fields, so two encoded
//! `Struct` bodies concatenated are one `Struct` holding the entries of both.

use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value as PbValue};
use prost::{
    bytes::BufMut,
    encoding::{encode_key, encode_varint, encoded_len_varint, WireType},
    Message,
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

/// The encoded `Struct` body of `{issuer, subject, scopes, claims}` for a verified token.
pub fn fields(claims: &Claims) -> Box<[u8]> {
    let mut map = Map::new();
    map.insert("issuer".into(), Value::String(claims.iss.clone()));
    if let Some(sub) = &claims.sub {
        map.insert("subject".into(), Value::String(sub.clone()));
    }
    let scopes = super::policy::scopes(&claims.all);
    map.insert(
        "scopes".into(),
        Value::Array(scopes.into_iter().map(Value::String).collect()),
    );
    map.insert("claims".into(), Value::Object(claims.all.clone()));
    to_struct(map).encode_to_vec().into_boxed_slice()
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

/// A JSON object as a `google.protobuf.Struct` (numbers become doubles, as in proto3's JSON
/// mapping).
pub fn to_struct(map: Map<String, Value>) -> Struct {
    Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

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
    use serde_json::json;

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
        let fields = fields(&c);
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
        let fields = fields(&c);
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
}
