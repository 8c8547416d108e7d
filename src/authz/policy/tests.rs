use std::collections::HashMap;

use serde_json::json;

use super::*;
use crate::authz::request::Headers;

fn compile(yaml: &str) -> Result<Policy, PolicyError> {
    let rules: Vec<RuleConfig> = serde_norway::from_str(yaml).unwrap();
    Policy::compile(&rules, DefaultAction::Authenticated, &["https://idp"])
}

fn route<'p>(p: &'p Policy, method: &str, host: &str, path: &str) -> &'p str {
    let h = HashMap::new();
    let req = AuthzRequest {
        method,
        host,
        path,
        headers: Headers::Map(&h),
    };
    &p.route(&req).name
}

fn claims(v: serde_json::Value) -> Claims {
    Claims {
        iss: "https://idp".into(),
        sub: Some("s".into()),
        exp: 0.0,
        all: v.as_object().cloned().unwrap(),
    }
}

const RULES: &str = r#"
- name: health
  match: {path: {exact: /healthz}}
  action: anonymous
- name: admin
  match: {hosts: ["*.admin.example"], path: {prefix: /}}
  claims: [{pointer: /realm_access/roles, contains: admin}]
- name: orders-write
  match: {methods: [POST, PUT], path: {regex: "/orders(/[0-9]+)?"}}
  scopes: {all_of: ["orders:write"]}
- name: orders-read
  match: {path: {prefix: /orders}}
  scopes: {any_of: ["orders:read", "orders:write"]}
"#;

#[test]
fn first_match_wins_else_default() {
    let p = compile(RULES).unwrap();
    assert_eq!(route(&p, "GET", "api", "/healthz"), "health");
    assert_eq!(
        route(&p, "GET", "api", "/healthz?x=1"),
        "health",
        "query ignored"
    );
    assert_eq!(
        route(&p, "GET", "api", "/healthz/x"),
        "default",
        "exact is exact"
    );
    assert_eq!(route(&p, "GET", "eu.admin.example:8443", "/x"), "admin");
    assert_eq!(
        route(&p, "GET", "admin.example", "/x"),
        "default",
        "wildcard needs a label"
    );
    assert_eq!(route(&p, "post", "api", "/orders/12"), "orders-write");
    assert_eq!(
        route(&p, "POST", "api", "/orders/12/x"),
        "orders-read",
        "regex is anchored"
    );
    assert_eq!(route(&p, "GET", "api", "/orders/12"), "orders-read");
    assert_eq!(route(&p, "GET", "api", "/other"), "default");
}

#[test]
fn scopes_all_of_and_any_of_from_scope_or_scp() {
    let p = compile(RULES).unwrap();
    let write = p.routes.iter().find(|r| r.name == "orders-write").unwrap();
    let read = p.routes.iter().find(|r| r.name == "orders-read").unwrap();
    assert!(write
        .authorize(&claims(json!({"scope": "a orders:write"})))
        .is_ok());
    assert!(write
        .authorize(&claims(json!({"scp": ["orders:write"]})))
        .is_ok());
    assert!(write
        .authorize(&claims(json!({"scp": "x orders:write"})))
        .is_ok());
    assert_eq!(
        write.authorize(&claims(json!({"scope": "orders:read"}))),
        Err(Deny::InsufficientScope {
            required: "orders:write".into()
        })
    );
    assert!(read
        .authorize(&claims(json!({"scope": "orders:read"})))
        .is_ok());
    assert!(read
        .authorize(&claims(json!({"scope": "profile"})))
        .is_err());
}

#[test]
fn claim_conditions() {
    let cond = |c: serde_json::Value| {
        let c: ClaimCondition = serde_json::from_value(c).unwrap();
        Condition::compile(&c, "x").unwrap()
    };
    let token =
        json!({"tid": "t1", "roles": ["a", "b"], "scope": "x y", "n": 3, "o": {"k/e~y": true}});
    let m = token.as_object().unwrap();
    assert!(cond(json!({"pointer": "/tid", "equals": "t1"})).holds(m));
    assert!(!cond(json!({"pointer": "/tid", "equals": "t2"})).holds(m));
    assert!(cond(json!({"pointer": "/tid", "one_of": ["t0", "t1"]})).holds(m));
    assert!(cond(json!({"pointer": "/roles", "contains": "b"})).holds(m));
    assert!(cond(json!({"pointer": "/scope", "contains": "y"})).holds(m));
    assert!(!cond(json!({"pointer": "/scope", "contains": "x y"})).holds(m));
    assert!(cond(json!({"pointer": "/n", "equals": 3})).holds(m));
    assert!(cond(json!({"pointer": "/o/k~1e~0y", "equals": true})).holds(m));
    assert!(cond(json!({"pointer": "/missing", "exists": false})).holds(m));
}

#[test]
fn invalid_rules_are_rejected_with_their_path() {
    for (yaml, field) in [
        ("- match: {path: {regex: '('}}", "rules[0].match.path.regex"),
        ("- match: {path: {prefix: 'x'}}", "rules[0].match.path"),
        (
            "- match: {path: {prefix: '/x', exact: '/x'}}",
            "rules[0].match.path",
        ),
        ("- match: {hosts: ['a*.b']}", "rules[0].match.hosts"),
        ("- scopes: {all_of: ['a b']}", "rules[0].scopes"),
        (
            "- claims: [{pointer: 'x', exists: true}]",
            "rules[0].claims[0].pointer",
        ),
        ("- claims: [{pointer: '/x'}]", "rules[0].claims[0]"),
        (
            "- claims: [{pointer: '/x', exists: true, equals: 1}]",
            "rules[0].claims[0]",
        ),
        ("- issuers: ['https://other']", "rules[0].issuers"),
        ("- action: anonymous\n  scopes: {all_of: [a]}", "rules[0]"),
    ] {
        let e = compile(yaml).unwrap_err();
        assert_eq!(e.field, field, "{yaml}: {e}");
    }
}

#[test]
fn regex_is_linear_time() {
    // A classic catastrophic-backtracking pattern; the regex crate matches it in linear time.
    let p = compile("- name: r\n  match: {path: {regex: '/(a+)+b'}}").unwrap();
    let path = format!("/{}", "a".repeat(50_000));
    assert_eq!(route(&p, "GET", "h", &path), "default");
}
