//! Provider recipes (issue #4, item 7): for Keycloak, Entra ID, Auth0, Okta, Cognito and
//! node-oidc-provider, tokens built in that provider's exact header and claim layout, checked
//! through the gRPC surface against the recipe in docs/providers.md, read verbatim from that file
//! (the provider's host replaced by a local issuer serving the same issuer path and JWKS shape).
//! Each provider: the documented configuration accepts its tokens, and its typical mistake is
//! refused with a description that says why.

mod support;

use jwt_authz::{config::Config, dev::SigningKey};
use serde_json::{json, Value};
use support::*;

// === fixture ===

/// The YAML block after `<!-- recipe: NAME -->` in docs/providers.md.
fn recipe(name: &str) -> String {
    let doc = include_str!("../docs/providers.md");
    let marker = format!("<!-- recipe: {name} -->");
    let after = doc
        .split_once(&marker)
        .unwrap_or_else(|| panic!("docs/providers.md has no {marker}"))
        .1;
    let block = after
        .trim_start()
        .strip_prefix("```yaml\n")
        .unwrap_or_else(|| panic!("{marker} is not followed by a ```yaml block"));
    block
        .split_once("```")
        .expect("the yaml block is closed")
        .0
        .to_owned()
}

/// `text` with `from` replaced, failing if it does not occur (so a doc edit cannot silently
/// turn a test into a no-op).
#[track_caller]
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found in:\n{text}");
    text.replace(from, to)
}

/// A stand-in for the provider: a real HTTP issuer at the provider's issuer path, serving
/// discovery and a JWKS, with an RS256 signing key under the provider's style of `kid`.
struct Provider {
    issuer: TestIssuer,
    key: SigningKey,
}

impl Provider {
    async fn start(path: &str, kid: &str) -> Self {
        let key = SigningKey::generate(Alg::RS256, Some(kid));
        let issuer = TestIssuer::start_at(path, &[&key]).await;
        Self { issuer, key }
    }

    /// `http://127.0.0.1:PORT`, which stands for the provider's `https://host`.
    fn origin(&self) -> String {
        format!("http://{}", self.issuer.addr)
    }

    /// The issuer identifier (what `iss` holds).
    fn iss(&self) -> &str {
        &self.issuer.issuer
    }

    /// A JWS with exactly this header and payload, signed by the provider's key.
    fn sign(&self, header: Value, payload: Value) -> String {
        self.key
            .sign_parts(&header.to_string(), &payload.to_string())
    }
}

/// A running jwt-authz and a Check client.
struct Authz {
    client: Checker,
    _app: Running,
}

/// jwt-authz configured with `yaml` (loopback listeners added), once every issuer has keys.
async fn authz(yaml: &str) -> Authz {
    let a = authz_unready(yaml).await;
    a._app.wait_ready().await;
    a
}

/// As [`authz`], without waiting for keys (for configs whose issuer can never be reached).
async fn authz_unready(yaml: &str) -> Authz {
    let mut config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    config.listen.grpc = "127.0.0.1:0".parse().unwrap();
    config.listen.admin = "127.0.0.1:0".parse().unwrap();
    let app = Running::start_config(config).await;
    let client = app.client().await;
    Authz { client, _app: app }
}

impl Authz {
    async fn call(&self, method: &str, path: &str, token: &str) -> Outcome {
        self.client
            .request(
                method,
                path,
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await
    }
}

#[track_caller]
fn assert_allowed(o: &Outcome, what: &str) {
    assert!(o.allowed(), "{what} should be allowed: {o:#?}");
}

/// 401 `invalid_token` whose description contains `because`.
#[track_caller]
fn assert_invalid_token(o: &Outcome, because: &str, what: &str) {
    assert_eq!(o.http_status, 401, "{what} should be refused: {o:#?}");
    assert!(
        o.www_authenticate().contains("error=\"invalid_token\""),
        "{what}: {o:#?}"
    );
    assert!(
        o.description().contains(because),
        "{what}: the description should say {because:?}: {o:#?}"
    );
}

#[track_caller]
fn assert_forbidden(o: &Outcome, what: &str) {
    assert_eq!(o.http_status, 403, "{what} should be forbidden: {o:#?}");
}

fn times(ttl: i64) -> (i64, i64) {
    let now = now();
    (now, now + ttl)
}

fn jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}

// === Keycloak ===

const KC_KID: &str = "xUoVnS0dV2Q2tR9oB3yJ8mPaHk1cE7wLz4fNgTq5rYs";

/// A Keycloak realm: its JWKS holds the RS256 signing key and an RSA-OAEP encryption key.
async fn keycloak() -> Provider {
    let p = Provider::start("/realms/shop", KC_KID).await;
    let enc = SigningKey::generate(Alg::RS256, Some("enc-Zk3Q1"));
    let mut enc_jwk = enc.public_jwk();
    enc_jwk["use"] = json!("enc");
    enc_jwk["alg"] = json!("RSA-OAEP");
    let mut sig_jwk = p.key.public_jwk();
    sig_jwk["x5t"] = json!("t4Yx2bTzG0mN7qX5c1Vd8rKjLs3");
    p.issuer.set_raw_keys(vec![sig_jwk, enc_jwk]);
    p
}

fn keycloak_recipe(p: &Provider) -> String {
    edit(
        &recipe("keycloak"),
        "https://keycloak.example.com",
        &p.origin(),
    )
}

fn keycloak_header() -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": KC_KID})
}

/// A Keycloak 26 user access token (authorization code flow, client `shop-web`, with an Audience
/// mapper for `orders-api`).
fn keycloak_user_token(p: &Provider, roles: &[&str]) -> Value {
    let (now, exp) = times(300);
    let mut realm_roles = vec!["default-roles-shop", "offline_access", "uma_authorization"];
    realm_roles.extend_from_slice(roles);
    json!({
        "exp": exp,
        "iat": now,
        "auth_time": now - 20,
        "jti": format!("onrtac:{}", jti()),
        "iss": p.iss(),
        "aud": ["orders-api", "account"],
        "sub": "5d0a8f63-2b6e-4c1e-9a57-3f4b1e2d7c90",
        "typ": "Bearer",
        "azp": "shop-web",
        "sid": "c3b8e0d2-71f4-4a9e-8d15-6b2a9f0e4c37",
        "acr": "1",
        "allowed-origins": ["https://shop.example.com"],
        "realm_access": {"roles": realm_roles},
        "resource_access": {"account": {"roles": ["manage-account", "manage-account-links", "view-profile"]}},
        "scope": "openid profile email orders:write",
        "email_verified": true,
        "name": "Alice Example",
        "preferred_username": "alice",
        "given_name": "Alice",
        "family_name": "Example",
        "email": "alice@example.com"
    })
}

#[tokio::test]
async fn keycloak_recipe_accepts_user_and_service_account_tokens() {
    let p = keycloak().await;
    let a = authz(&keycloak_recipe(&p)).await;
    let admin = p.sign(
        keycloak_header(),
        keycloak_user_token(&p, &["orders-admin"]),
    );
    let user = p.sign(keycloak_header(), keycloak_user_token(&p, &[]));

    assert_allowed(&a.call("GET", "/orders", &user).await, "a user token");
    assert_allowed(
        &a.call("POST", "/orders", &user).await,
        "orders:write from `scope`",
    );
    assert_allowed(
        &a.call("GET", "/admin/users", &admin).await,
        "the orders-admin realm role",
    );
    assert_forbidden(
        &a.call("GET", "/admin/users", &user).await,
        "a user without the realm role",
    );

    // Client credentials: the service account's token has client_id and the mapper's audience.
    let (now, exp) = times(300);
    let service = p.sign(
        keycloak_header(),
        json!({
            "exp": exp, "iat": now, "jti": jti(), "iss": p.iss(),
            "aud": "orders-api",
            "sub": "0e6c2a9b-4d3f-4b8e-a1c7-9f2d5e8b3a61",
            "typ": "Bearer", "azp": "billing", "acr": "1",
            "realm_access": {"roles": ["default-roles-shop"]},
            "scope": "profile email",
            "clientHost": "10.1.2.3",
            "preferred_username": "service-account-billing",
            "clientAddress": "10.1.2.3",
            "client_id": "billing"
        }),
    );
    assert_allowed(
        &a.call("GET", "/orders", &service).await,
        "a service-account token",
    );
}

#[tokio::test]
async fn keycloak_mistakes_are_refused_naming_the_fix() {
    let p = keycloak().await;
    let a = authz(&keycloak_recipe(&p)).await;

    // No Audience mapper: `aud` is only `account`.
    let mut no_mapper = keycloak_user_token(&p, &[]);
    no_mapper["aud"] = json!("account");
    assert_invalid_token(
        &a.call("GET", "/orders", &p.sign(keycloak_header(), no_mapper))
            .await,
        "not intended for this audience",
        "a token without the audience mapper",
    );

    // A Keycloak ID token (`typ: ID` claim, at_hash, aud = the client).
    let (now, exp) = times(300);
    let id_token = p.sign(
        keycloak_header(),
        json!({
            "exp": exp, "iat": now, "auth_time": now, "jti": jti(), "iss": p.iss(),
            "aud": "shop-web", "sub": "5d0a8f63-2b6e-4c1e-9a57-3f4b1e2d7c90",
            "typ": "ID", "azp": "shop-web", "nonce": "n-0S6_WzA2Mj",
            "sid": "c3b8e0d2-71f4-4a9e-8d15-6b2a9f0e4c37",
            "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "acr": "1",
            "email_verified": true, "preferred_username": "alice"
        }),
    );
    let o = a.call("GET", "/orders", &id_token).await;
    assert_eq!(o.http_status, 401, "an ID token is refused: {o:#?}");

    // The default (RFC 9068) profile: the description names the per-issuer setting, for the
    // classic `typ: JWT` and for newer Keycloak's optional `at+jwt` (user tokens lack client_id).
    let strict = authz(&edit(&keycloak_recipe(&p), "    profile: legacy", "")).await;
    let token = p.sign(keycloak_header(), keycloak_user_token(&p, &[]));
    assert_invalid_token(
        &strict.call("GET", "/orders", &token).await,
        "typ is 'JWT', not at+jwt (RFC 9068 2.1); if this issuer issues plain JWT access tokens, set profile: legacy on it",
        "typ: JWT under the RFC 9068 profile",
    );
    let at_jwt = p.sign(
        json!({"alg": "RS256", "typ": "at+jwt", "kid": KC_KID}),
        keycloak_user_token(&p, &[]),
    );
    assert_invalid_token(
        &strict.call("GET", "/orders", &at_jwt).await,
        "lacks the client_id claim RFC 9068 requires; if this issuer does not issue RFC 9068 tokens, set profile: legacy on it",
        "at+jwt without client_id",
    );
    assert_allowed(
        &a.call("GET", "/orders", &at_jwt).await,
        "the same at+jwt token under the recipe",
    );
}

/// Keycloak 24 and older copy the authorization request's `nonce` into access tokens
/// (keycloak#26893, fixed in 25). jwt-authz refuses any token with `nonce` as an ID token, so
/// such access tokens are refused; docs/providers.md says to upgrade.
#[tokio::test]
async fn keycloak_24_access_tokens_carrying_nonce_are_refused_as_id_tokens() {
    let p = keycloak().await;
    let a = authz(&keycloak_recipe(&p)).await;
    let mut claims = keycloak_user_token(&p, &[]);
    claims["nonce"] = json!("b5c0d1f4-2a7e-4e38-9f61-0c3d8a2b7e54");
    claims["session_state"] = claims["sid"].clone();
    assert_invalid_token(
        &a.call("GET", "/orders", &p.sign(keycloak_header(), claims))
            .await,
        "an ID token is not an access token",
        "a Keycloak 24 access token with nonce",
    );
}

// === Microsoft Entra ID ===

const ENTRA_TENANT: &str = "8c2f7a41-5b1e-4f0a-9d3c-6e7b2a1f0c94";
const ENTRA_API: &str = "3f1d8b2e-7c4a-4e9b-a5d6-0b9c8e7f6a51";
const ENTRA_WEB: &str = "d4e5f6a7-1b2c-4d3e-8f9a-0b1c2d3e4f5a";
const ENTRA_DAEMON: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
const ENTRA_KID: &str = "KQ2tAcrE7lBaviGmLS4tUOY1rfw";

/// An Entra ID tenant at `path`: its JWKS entries have `x5t`, `x5c` and `issuer`, but no `alg`.
async fn entra(path: &str) -> Provider {
    let p = Provider::start(path, ENTRA_KID).await;
    let mut jwk = p.key.public_jwk();
    jwk.as_object_mut().unwrap().remove("alg");
    jwk["x5t"] = json!(ENTRA_KID);
    // Certificate chains are never used (keys come from `n`/`e`); a placeholder is enough.
    jwk["x5c"] = json!(["MIIC/TCCAeWgAwIBAgIIUd7j/OIahkYwDQYJKoZIhvcNAQEL"]);
    jwk["issuer"] = json!(format!(
        "https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"
    ));
    p.issuer.set_raw_keys(vec![jwk]);
    p
}

fn entra_v2_user(iss: &str) -> Value {
    let (now, exp) = times(3600);
    json!({
        "aud": ENTRA_API, "iss": iss, "iat": now, "nbf": now, "exp": exp,
        "aio": "AWQAm/8ZAAAAk1t8x3c2Q9e0Yf5bR7s4uV1wX6zA2cD8eF0gH3iJ5kL7mN9oP1qR3sT5uV7wX9yZ1aB3cD5eF7g==",
        "azp": ENTRA_WEB, "azpacr": "0",
        "name": "Alice Example",
        "oid": "2b7c9d1e-3f4a-4b5c-8d6e-7f8a9b0c1d2e",
        "preferred_username": "alice@contoso.example",
        "rh": "1.AXQAQXovjB5bCk-dPG57Kh8MlC6LHz9KfJtOpdYLnI5_alEAAJJ0AA.",
        "scp": "Orders.Read User.Read",
        "sid": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        "sub": "q5H8Qv3k0R2m7TzW1yX9bC4dF6gJ8lN0pR2tV4xZ6aE",
        "tid": ENTRA_TENANT,
        "uti": "Xb7Q2m1kR0e5T9yU3iO8pA",
        "ver": "2.0"
    })
}

fn entra_v2_app(iss: &str) -> Value {
    let (now, exp) = times(3600);
    json!({
        "aud": ENTRA_API, "iss": iss, "iat": now, "nbf": now, "exp": exp,
        "aio": "k2BgYJj8Z3w5mY9Rd0GvA1cQAA==",
        "azp": ENTRA_DAEMON, "azpacr": "1", "idtyp": "app",
        "oid": "6e5d4c3b-2a19-4807-b6a5-948372615a4b",
        "rh": "1.AXQAQXovjB5bCk-dPG57Kh8MlC6LHz9KfJtOpdYLnI5_alEAAAB0AA.",
        "roles": ["Orders.ReadWrite.All"],
        "sub": "6e5d4c3b-2a19-4807-b6a5-948372615a4b",
        "tid": ENTRA_TENANT,
        "uti": "Lm3N4o5P6q7R8s9T0u1V2w",
        "ver": "2.0"
    })
}

fn entra_v1_user(iss: &str, aud: &str) -> Value {
    let (now, exp) = times(3600);
    json!({
        "aud": aud, "iss": iss, "iat": now, "nbf": now, "exp": exp,
        "acr": "1",
        "aio": "E2ZgYNh8ZLt0nfS2pT1Aw8UA",
        "amr": ["pwd", "mfa"],
        "appid": ENTRA_WEB, "appidacr": "0",
        "family_name": "Example", "given_name": "Alice",
        "ipaddr": "203.0.113.7",
        "name": "Alice Example",
        "oid": "2b7c9d1e-3f4a-4b5c-8d6e-7f8a9b0c1d2e",
        "rh": "0.AXQAQXovjB5bCk-dPG57Kh8MlC6LHz9KfJtOpdYLnI5_alEAAJJ0AA.",
        "scp": "Orders.Read",
        "sub": "q5H8Qv3k0R2m7TzW1yX9bC4dF6gJ8lN0pR2tV4xZ6aE",
        "tid": ENTRA_TENANT,
        "unique_name": "alice@contoso.example",
        "upn": "alice@contoso.example",
        "uti": "Yc8R3n2lS1f6U0zV4jP9qB",
        "ver": "1.0"
    })
}

fn entra_header(v1: bool) -> Value {
    if v1 {
        json!({"typ": "JWT", "alg": "RS256", "x5t": ENTRA_KID, "kid": ENTRA_KID})
    } else {
        json!({"typ": "JWT", "alg": "RS256", "kid": ENTRA_KID})
    }
}

#[tokio::test]
async fn entra_v2_recipe_routes_delegated_and_app_permissions_and_refuses_v1_tokens() {
    let p = entra(&format!("/{ENTRA_TENANT}/v2.0")).await;
    let yaml = edit(
        &recipe("entra-v2"),
        "https://login.microsoftonline.com",
        &p.origin(),
    );
    let a = authz(&yaml).await;
    let user = p.sign(entra_header(false), entra_v2_user(p.iss()));
    let app = p.sign(entra_header(false), entra_v2_app(p.iss()));

    assert_allowed(
        &a.call("GET", "/orders", &user).await,
        "a delegated token with Orders.Read in `scp`",
    );
    assert_allowed(
        &a.call("POST", "/sync", &app).await,
        "an app-only token with Orders.ReadWrite.All in `roles`",
    );
    let o = a.call("GET", "/orders", &app).await;
    assert_forbidden(
        &o,
        "an app-only token (no `scp`) on a delegated-scope route",
    );
    assert!(o
        .www_authenticate()
        .contains("error=\"insufficient_scope\""));
    assert_forbidden(
        &a.call("POST", "/sync", &user).await,
        "a user token without the app role",
    );

    // The API emits v1 tokens while jwt-authz trusts the v2 issuer.
    let v1 = p.sign(
        entra_header(true),
        entra_v1_user(
            &format!("https://sts.windows.net/{ENTRA_TENANT}/"),
            "api://orders",
        ),
    );
    assert_invalid_token(
        &a.call("GET", "/orders", &v1).await,
        "the token's issuer is not trusted",
        "a v1 token against the v2 issuer",
    );

    let strict = authz(&edit(&yaml, "    profile: legacy", "")).await;
    assert_invalid_token(
        &strict.call("GET", "/orders", &user).await,
        "set profile: legacy on it",
        "an Entra token under the RFC 9068 profile",
    );
}

#[tokio::test]
async fn entra_v1_recipe_discovers_keys_and_accepts_both_audience_forms() {
    // v1 issuer `https://sts.windows.net/{tid}/`; its metadata is served by login.microsoftonline.com
    // under `/{tid}/.well-known/openid-configuration`. One local server plays both hosts.
    let p = entra(&format!("/{ENTRA_TENANT}/")).await;
    let yaml = edit(
        &edit(
            &recipe("entra-v1"),
            "https://login.microsoftonline.com",
            &p.origin(),
        ),
        "https://sts.windows.net",
        &p.origin(),
    );
    let a = authz(&yaml).await;
    assert_eq!(
        p.issuer.oidc_requests(),
        1,
        "keys found through discovery_url"
    );

    for aud in ["api://orders", ENTRA_API] {
        let token = p.sign(entra_header(true), entra_v1_user(p.iss(), aud));
        assert_allowed(
            &a.call("GET", "/orders", &token).await,
            &format!("a v1 token with aud {aud}"),
        );
    }
    let v2 = p.sign(
        entra_header(false),
        entra_v2_user(&format!(
            "https://login.microsoftonline.com/{ENTRA_TENANT}/v2.0"
        )),
    );
    assert_invalid_token(
        &a.call("GET", "/orders", &v2).await,
        "the token's issuer is not trusted",
        "a v2 token against the v1 issuer",
    );
}

// === Auth0 ===

const AUTH0_KID: &str = "Nk3xQ0ZqS1pHbW5vR2ZyM3RhQjVjRDdlRjlnSA";
const AUTH0_API: &str = "https://orders.example.com";
const AUTH0_SPA: &str = "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja";
const AUTH0_M2M: &str = "awZfdIir8YFdGZWkvCejDoUb7SjTDicx";

fn auth0_recipe(p: &Provider) -> String {
    edit(
        &recipe("auth0"),
        "https://example-shop.eu.auth0.com",
        &p.origin(),
    )
}

/// A user token under the API's default "Auth0" token profile, RBAC permissions included.
fn auth0_user(p: &Provider) -> Value {
    let (now, exp) = times(86400);
    json!({
        "iss": p.iss(),
        "sub": "auth0|6553da60a54af58e29493993",
        "aud": [AUTH0_API, format!("{}userinfo", p.iss())],
        "iat": now, "exp": exp,
        "scope": "openid profile email read:orders",
        "azp": AUTH0_SPA,
        "permissions": ["read:orders", "write:orders"]
    })
}

#[tokio::test]
async fn auth0_recipe_accepts_both_token_profiles_where_configured() {
    let p = Provider::start("/", AUTH0_KID).await;
    let a = authz(&auth0_recipe(&p)).await;
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": AUTH0_KID});
    let user = p.sign(header.clone(), auth0_user(&p));
    assert_allowed(
        &a.call("GET", "/orders", &user).await,
        "read:orders in `scope`",
    );
    assert_allowed(
        &a.call("POST", "/orders", &user).await,
        "write:orders in `permissions`",
    );

    let (now, exp) = times(86400);
    let m2m = p.sign(
        header.clone(),
        json!({
            "iss": p.iss(), "sub": format!("{AUTH0_M2M}@clients"), "aud": AUTH0_API,
            "iat": now, "exp": exp, "scope": "read:orders",
            "gty": "client-credentials", "azp": AUTH0_M2M, "permissions": ["read:orders"]
        }),
    );
    assert_allowed(
        &a.call("GET", "/orders", &m2m).await,
        "a client-credentials token",
    );
    assert_forbidden(
        &a.call("DELETE", "/orders/7", &m2m).await,
        "without write:orders",
    );

    // An API on the RFC 9068 token profile needs no `profile: legacy`; the Auth0 profile does.
    let strict = authz(&edit(&auth0_recipe(&p), "    profile: legacy", "")).await;
    let mut rfc9068 = auth0_user(&p);
    let claims = rfc9068.as_object_mut().unwrap();
    claims.remove("azp");
    claims.insert("client_id".into(), json!(AUTH0_SPA));
    claims.insert("jti".into(), json!("73WakrfVbNJBaAmhQtEeDv"));
    let rfc9068 = p.sign(
        json!({"alg": "RS256", "typ": "at+jwt", "kid": AUTH0_KID}),
        rfc9068,
    );
    assert_allowed(
        &strict.call("POST", "/orders", &rfc9068).await,
        "an RFC 9068-profile token",
    );
    assert_invalid_token(
        &strict.call("GET", "/orders", &user).await,
        "set profile: legacy on it",
        "an Auth0-profile token under the RFC 9068 profile",
    );
}

#[tokio::test]
async fn auth0_mistakes_missing_slash_and_missing_audience_are_refused() {
    let p = Provider::start("/", AUTH0_KID).await;
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": AUTH0_KID});
    let user = p.sign(header, auth0_user(&p));

    // `iss` is "https://{tenant}.auth0.com/"; the config dropped the slash. jwt-authz never gets
    // keys for that issuer (the metadata names the other spelling), so no readiness wait.
    let no_slash = authz_unready(&edit(
        &recipe("auth0"),
        "https://example-shop.eu.auth0.com/ ",
        &format!("{} ", p.origin()),
    ))
    .await;
    assert_invalid_token(
        &no_slash.call("GET", "/orders", &user).await,
        "the token's issuer is not trusted",
        "an issuer configured without its trailing slash",
    );

    // No `audience=` in the authorization request: Auth0 issues an opaque token in JWE form.
    let a = authz(&auth0_recipe(&p)).await;
    let jwe_header = b64(json!({"alg": "dir", "enc": "A256GCM", "iss": p.iss()}).to_string());
    let opaque = format!(
        "{jwe_header}..{}.{}.{}",
        b64([7u8; 12]),
        b64([9u8; 180]),
        b64([1u8; 16])
    );
    assert_invalid_token(
        &a.call("GET", "/orders", &opaque).await,
        "encrypted tokens (JWE) are not accepted",
        "Auth0's opaque token for /userinfo",
    );
}

// === Okta ===

const OKTA_KID: &str = "ZkvelLN_seik7w4pc_prCcfUf-h2hFfiwkDeCrs0iUc";
const OKTA_WEB: &str = "0oa1b2c3d4E5F6G7h8i9";
const OKTA_SERVICE: &str = "0oa9z8y7x6W5V4U3t2s1";

fn okta_header() -> Value {
    json!({"kid": OKTA_KID, "alg": "RS256"})
}

#[tokio::test]
async fn okta_recipe_reads_scp_arrays_and_names_the_missing_scope() {
    let p = Provider::start("/oauth2/default", OKTA_KID).await;
    let a = authz(&edit(
        &recipe("okta"),
        "https://example-shop.okta.com",
        &p.origin(),
    ))
    .await;
    let (now, exp) = times(3600);
    let user = p.sign(
        okta_header(),
        json!({
            "ver": 1, "jti": "AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts",
            "iss": p.iss(), "aud": "api://default", "iat": now, "exp": exp,
            "cid": OKTA_WEB, "uid": "00u1a2b3c4D5E6F7g8h9",
            "scp": ["openid", "email", "orders.read", "orders.write"],
            "auth_time": now - 60, "sub": "alice@example.com"
        }),
    );
    assert_allowed(
        &a.call("POST", "/orders", &user).await,
        "orders.write in the `scp` array",
    );

    let service = p.sign(
        okta_header(),
        json!({
            "ver": 1, "jti": "AT.q1W2e3R4t5Y6u7I8o9P0a1S2d3F4g5H6j7K8l9Z0x1C",
            "iss": p.iss(), "aud": "api://default", "iat": now, "exp": exp,
            "cid": OKTA_SERVICE, "scp": ["orders.read"], "sub": OKTA_SERVICE
        }),
    );
    assert_allowed(
        &a.call("GET", "/orders", &service).await,
        "a client-credentials token",
    );
    let o = a.call("POST", "/orders", &service).await;
    assert_forbidden(&o, "a token without orders.write");
    assert!(
        o.www_authenticate().contains("scope=\"orders.write\""),
        "the challenge names the scope: {o:#?}"
    );
}

#[tokio::test]
async fn okta_org_server_tokens_id_tokens_and_the_default_profile_are_refused() {
    let p = Provider::start("/oauth2/default", OKTA_KID).await;
    let yaml = edit(
        &recipe("okta"),
        "https://example-shop.okta.com",
        &p.origin(),
    );
    let a = authz(&yaml).await;
    let (now, exp) = times(3600);

    // The org authorization server: `iss` is the org URL itself, `aud` too.
    let org = p.sign(
        okta_header(),
        json!({
            "ver": 1, "jti": "AT.x9Y8z7W6v5U4t3S2r1Q0p9O8n7M6l5K4j3I2h1G0f9E",
            "iss": p.origin(), "aud": p.origin(), "iat": now, "exp": exp,
            "cid": OKTA_WEB, "uid": "00u1a2b3c4D5E6F7g8h9",
            "scp": ["openid", "okta.users.read.self"], "sub": "alice@example.com"
        }),
    );
    assert_invalid_token(
        &a.call("GET", "/orders", &org).await,
        "the token's issuer is not trusted",
        "an org authorization server token",
    );

    let id_token = p.sign(
        okta_header(),
        json!({
            "sub": "00u1a2b3c4D5E6F7g8h9", "name": "Alice Example", "email": "alice@example.com",
            "ver": 1, "iss": p.iss(), "aud": OKTA_WEB, "iat": now, "exp": exp,
            "jti": "ID.radCQMOQUmyvcTBmmIL0J6BaS60apUEiC7-vI7pOmkw", "amr": ["pwd"],
            "idp": "00o1a2b3c4D5E6F7g8h9", "nonce": "n-0S6_WzA2Mj",
            "preferred_username": "alice@example.com", "auth_time": now - 60,
            "at_hash": "fPlsvVszI29LU2UhDyJ9vg"
        }),
    );
    assert_eq!(
        a.call("GET", "/orders", &id_token).await.http_status,
        401,
        "an Okta ID token is refused"
    );

    let strict = authz(&edit(&yaml, "    profile: legacy", "")).await;
    let user = p.sign(
        okta_header(),
        json!({
            "ver": 1, "jti": "AT.MNAoEQ_jbKqoinrQo1D0XKjMX28U5d7ZszBceot7-Ts",
            "iss": p.iss(), "aud": "api://default", "iat": now, "exp": exp,
            "cid": OKTA_WEB, "uid": "00u1a2b3c4D5E6F7g8h9", "scp": ["orders.read"],
            "sub": "alice@example.com"
        }),
    );
    assert_invalid_token(
        &strict.call("GET", "/orders", &user).await,
        "typ is absent, not at+jwt (RFC 9068 2.1); if this issuer issues plain JWT access tokens, set profile: legacy on it",
        "an Okta token under the RFC 9068 profile",
    );
}

// === Amazon Cognito ===

const COGNITO_POOL: &str = "eu-west-1_AbCdEf123";
const COGNITO_WEB: &str = "4q1l2b5mkd3u6e3b0u8k0j5n1a";
const COGNITO_SERVICE: &str = "1h5k8m2p4r6t9v3x7z0b2d4f6h";
const COGNITO_ACCESS_KID: &str = "a1b2EXAMPLEc3d4e5f6g7h8i9j0kLmNoPqRsTuVwXyZ=";
const COGNITO_ID_KID: &str = "z9y8EXAMPLEx7w6v5u4t3s2r1q0pOnMlKjIhGfEdCbA=";

/// A user pool: ID and access tokens are signed by two different keys of the same JWKS.
async fn cognito() -> (Provider, SigningKey) {
    let p = Provider::start(&format!("/{COGNITO_POOL}"), COGNITO_ACCESS_KID).await;
    let id_key = SigningKey::generate(Alg::RS256, Some(COGNITO_ID_KID));
    p.issuer.set_keys(&[&id_key, &p.key]);
    (p, id_key)
}

fn cognito_recipe(p: &Provider) -> String {
    edit(
        &recipe("cognito"),
        "https://cognito-idp.eu-west-1.amazonaws.com",
        &p.origin(),
    )
}

fn cognito_header(kid: &str) -> Value {
    json!({"kid": kid, "alg": "RS256"})
}

fn cognito_user_access(p: &Provider) -> Value {
    let (now, exp) = times(3600);
    json!({
        "sub": "94a8f4e8-2031-70d2-3b9c-5e6f7a8b9c0d",
        "cognito:groups": ["orders-admins"],
        "iss": p.iss(),
        "version": 2,
        "client_id": COGNITO_WEB,
        "origin_jti": "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",
        "event_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
        "token_use": "access",
        "scope": "openid email orders-api/read",
        "auth_time": now - 5, "exp": exp, "iat": now,
        "jti": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        "username": "alice"
    })
}

#[tokio::test]
async fn cognito_recipe_reads_the_audience_from_client_id() {
    let (p, _) = cognito().await;
    let a = authz(&cognito_recipe(&p)).await;
    let user = p.sign(cognito_header(COGNITO_ACCESS_KID), cognito_user_access(&p));
    assert_allowed(
        &a.call("GET", "/orders", &user).await,
        "a user access token",
    );
    assert_allowed(
        &a.call("GET", "/admin/reports", &user).await,
        "the orders-admins group",
    );
    assert_forbidden(
        &a.call("POST", "/orders", &user).await,
        "without orders-api/write",
    );

    let (now, exp) = times(3600);
    let service = p.sign(
        cognito_header(COGNITO_ACCESS_KID),
        json!({
            "sub": COGNITO_SERVICE, "token_use": "access", "scope": "orders-api/write",
            "auth_time": now, "iss": p.iss(), "exp": exp, "iat": now, "version": 2,
            "jti": "5e4d3c2b-1a09-4f8e-9d7c-6b5a4f3e2d1c", "client_id": COGNITO_SERVICE
        }),
    );
    assert_allowed(
        &a.call("POST", "/orders", &service).await,
        "a client-credentials token with orders-api/write",
    );
    assert_forbidden(
        &a.call("GET", "/admin/reports", &service).await,
        "a service outside the group",
    );
}

#[tokio::test]
async fn cognito_id_tokens_and_the_default_profile_are_refused() {
    let (p, id_key) = cognito().await;
    let a = authz(&cognito_recipe(&p)).await;

    // An ID token from InitiateAuth: aud = the app client, token_use id, no nonce, no at_hash.
    let (now, exp) = times(3600);
    let id_token = id_key.sign_parts(
        &cognito_header(COGNITO_ID_KID).to_string(),
        &json!({
            "sub": "94a8f4e8-2031-70d2-3b9c-5e6f7a8b9c0d",
            "cognito:groups": ["orders-admins"],
            "email_verified": true,
            "iss": p.iss(),
            "cognito:username": "alice",
            "origin_jti": "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b",
            "aud": COGNITO_WEB,
            "event_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d",
            "token_use": "id",
            "auth_time": now - 5, "exp": exp, "iat": now,
            "jti": "6b5a4f3e-2d1c-4b0a-9f8e-7d6c5b4a3f2e",
            "email": "alice@example.com"
        })
        .to_string(),
    );
    assert_invalid_token(
        &a.call("GET", "/orders", &id_token).await,
        "the token's token_use claim does not have the value this issuer's required_claims demand",
        "a Cognito ID token (token_use: id)",
    );
    // Even with a permissive audience setting, required_claims keeps ID tokens out.
    let loose = authz(&edit(
        &cognito_recipe(&p),
        "audience_claims: [client_id]",
        "audience_claims: [client_id, aud]",
    ))
    .await;
    assert_invalid_token(
        &loose.call("GET", "/orders", &id_token).await,
        "required_claims",
        "a Cognito ID token with aud accepted as an audience claim",
    );

    let strict = authz(&edit(&cognito_recipe(&p), "    profile: legacy", "")).await;
    let user = p.sign(cognito_header(COGNITO_ACCESS_KID), cognito_user_access(&p));
    assert_invalid_token(
        &strict.call("GET", "/orders", &user).await,
        "typ is absent, not at+jwt (RFC 9068 2.1); if this issuer issues plain JWT access tokens, set profile: legacy on it",
        "a Cognito access token under the RFC 9068 profile",
    );
}

// === node-oidc-provider ===

const OP_KID: &str = "r1LkbBo3925Rb2ZFFrKyU3MVex9T2817Kx0vbi6i_Kc";

/// A client_credentials token exactly as oidc-provider mints it for a JWT resource server.
fn op_token(p: &Provider, aud: &str, scope: &str) -> String {
    let (now, exp) = times(300);
    p.sign(
        json!({"alg": "RS256", "typ": "at+jwt", "kid": OP_KID}),
        json!({
            "jti": "gnYXxF-bEYzWNCOBqaWQU5SxFe__Ye1Durfm2ZQQZBz",
            "sub": "orders-client", "iat": now, "exp": exp, "scope": scope,
            "client_id": "orders-client", "iss": p.iss(), "aud": aud
        }),
    )
}

#[tokio::test]
async fn node_oidc_provider_tokens_pass_the_default_profile() {
    let p = Provider::start("", OP_KID).await;
    let a = authz(&edit(
        &recipe("node-oidc-provider"),
        "https://op.example.com",
        &p.origin(),
    ))
    .await;
    let write = op_token(&p, "https://orders.example.com", "read write");
    let read = op_token(&p, "https://orders.example.com", "read");
    assert_allowed(&a.call("POST", "/orders", &write).await, "a write token");
    assert_allowed(&a.call("GET", "/orders", &read).await, "a read token");
    let o = a.call("POST", "/orders", &read).await;
    assert_forbidden(&o, "a read-only token on the write rule");
    assert!(o.www_authenticate().contains("scope=\"write\""), "{o:#?}");
}

#[tokio::test]
async fn node_oidc_provider_opaque_foreign_and_id_tokens_are_refused() {
    let p = Provider::start("", OP_KID).await;
    let a = authz(&edit(
        &recipe("node-oidc-provider"),
        "https://op.example.com",
        &p.origin(),
    ))
    .await;
    // No `resource=` in the token request: an opaque token.
    assert_invalid_token(
        &a.call(
            "GET",
            "/orders",
            "wK8oU3r5gC0hZQ1e7yNbJ2sVx4TqL9mDfA6pIuEaR0c",
        )
        .await,
        "not a JWS compact serialization",
        "an opaque access token",
    );
    assert_invalid_token(
        &a.call(
            "GET",
            "/orders",
            &op_token(&p, "https://other.example.com", "read"),
        )
        .await,
        "not intended for this audience",
        "a token for another resource",
    );
    // oidc-provider ID tokens have no `typ` header; aud is the client.
    let (now, exp) = times(300);
    let id_token = p.sign(
        json!({"alg": "RS256", "kid": OP_KID}),
        json!({
            "sub": "alice", "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
            "aud": "https://orders.example.com", "exp": exp, "iat": now,
            "iss": p.iss(), "auth_time": now
        }),
    );
    assert_invalid_token(
        &a.call("GET", "/orders", &id_token).await,
        "an ID token is not an access token",
        "an ID token, even one whose aud matches",
    );
}
