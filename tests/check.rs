//! Integration: the real gRPC Check server on 127.0.0.1:0 against a real HTTP issuer serving
//! discovery and a JWKS with keys minted here. One test per behaviour.

mod support;

use std::time::Duration;

use aws_lc_rs::hmac;
use serde_json::json;
use support::*;

const AUD: &str = "https://api.test";

async fn setup(alg: Alg) -> (TestIssuer, Running, Checker, jwt_authz::dev::SigningKey) {
    let key = jwt_authz::dev::SigningKey::generate(alg, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let app = Running::start(vec![issuer_config(&issuer.issuer, AUD)]).await;
    app.wait_ready().await;
    let client = app.client().await;
    (issuer, app, client, key)
}

async fn channel(addr: std::net::SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn assert_invalid_token(o: &Outcome, description: &str) {
    assert_eq!(o.http_status, 401, "{o:?}");
    assert_eq!(o.rpc_code, 16, "UNAUTHENTICATED");
    let challenge = o.www_authenticate();
    assert!(
        challenge.starts_with("Bearer realm=\"jwt-authz\""),
        "{challenge}"
    );
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        o.description().contains(description),
        "{:?} lacks {description:?}",
        o.description()
    );
}

#[tokio::test]
async fn allows_valid_token_and_sets_identity_headers() {
    for alg in [Alg::RS256, Alg::PS384, Alg::ES256, Alg::ES384, Alg::EdDSA] {
        let (issuer, _app, client, key) = setup(alg).await;
        let o = client.bearer(&key.mint(&issuer.claims(AUD, "alice"))).await;
        assert!(o.allowed(), "{alg:?}: {o:?}");
        assert_eq!(o.headers["x-jwt-sub"], "alice");
        assert_eq!(o.headers["x-jwt-iss"], issuer.issuer);
    }
}

#[tokio::test]
async fn denies_missing_token_with_bare_challenge() {
    let (_issuer, _app, client, _key) = setup(Alg::ES256).await;
    let o = client.headers(&[]).await;
    assert_eq!(o.http_status, 401);
    assert_eq!(o.www_authenticate(), "Bearer realm=\"jwt-authz\"");
}

#[tokio::test]
async fn denies_malformed_token() {
    let (_issuer, _app, client, _key) = setup(Alg::ES256).await;
    assert_invalid_token(&client.bearer("not.a.jwt").await, "malformed token");
}

#[tokio::test]
async fn denies_malformed_authorization_header_with_400() {
    let (_issuer, _app, client, _key) = setup(Alg::ES256).await;
    let o = client.headers(&[("authorization", "Bearer a b")]).await;
    assert_eq!(o.http_status, 400);
    assert!(o.www_authenticate().contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn denies_bad_signature() {
    let (issuer, _app, client, _key) = setup(Alg::ES256).await;
    let impostor = jwt_authz::dev::SigningKey::generate(Alg::ES256, Some("k1"));
    let o = client
        .bearer(&impostor.mint(&issuer.claims(AUD, "alice")))
        .await;
    assert_invalid_token(&o, "signature is invalid");
}

#[tokio::test]
async fn denies_expired_token() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let mut c = issuer.claims(AUD, "alice");
    c["exp"] = json!(now() - 120);
    assert_invalid_token(&client.bearer(&key.mint(&c)).await, "expired");
}

#[tokio::test]
async fn denies_token_not_yet_valid() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let mut c = issuer.claims(AUD, "alice");
    c["nbf"] = json!(now() + 600);
    assert_invalid_token(&client.bearer(&key.mint(&c)).await, "not valid yet");
}

#[tokio::test]
async fn denies_wrong_issuer_without_any_fetch() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let before = issuer.discovery_requests() + issuer.jwks_requests();
    let mut c = issuer.claims(AUD, "alice");
    c["iss"] = json!("https://evil.example");
    assert_invalid_token(&client.bearer(&key.mint(&c)).await, "issuer is not trusted");
    assert_eq!(issuer.discovery_requests() + issuer.jwks_requests(), before);
}

#[tokio::test]
async fn denies_wrong_audience() {
    let (issuer, _app, client, key) = setup(Alg::ES256).await;
    let c = issuer.claims("https://other.test", "alice");
    assert_invalid_token(&client.bearer(&key.mint(&c)).await, "audience");
}

#[tokio::test]
async fn denies_unknown_kid_after_exactly_one_refetch() {
    let (issuer, _app, client, _key) = setup(Alg::ES256).await;
    let jwks_before = issuer.jwks_requests();
    let stranger = jwt_authz::dev::SigningKey::generate(Alg::ES256, Some("k-unknown"));
    let o = client
        .bearer(&stranger.mint(&issuer.claims(AUD, "alice")))
        .await;
    assert_invalid_token(&o, "signing key is not known");
    assert_eq!(issuer.jwks_requests(), jwks_before + 1);
}

#[tokio::test]
async fn denies_alg_none() {
    let (issuer, _app, client, _key) = setup(Alg::RS256).await;
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"at+jwt"}"#),
        b64(issuer.claims(AUD, "alice").to_string())
    );
    assert_invalid_token(&client.bearer(&token).await, "algorithm is not accepted");
    let token = format!("{token}c2ln");
    assert_invalid_token(&client.bearer(&token).await, "algorithm is not accepted");
}

#[tokio::test]
async fn denies_hs256_signed_with_the_rsa_public_key() {
    let (issuer, _app, client, key) = setup(Alg::RS256).await;
    let jwk = key.public_jwk();
    let n = jwk["n"].as_str().unwrap().to_owned();
    for secret in [n.as_bytes().to_vec(), jwk.to_string().into_bytes()] {
        let input = format!(
            "{}.{}",
            b64(r#"{"alg":"HS256","kid":"k1"}"#),
            b64(issuer.claims(AUD, "alice").to_string())
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", b64(tag.as_ref()));
        assert_invalid_token(&client.bearer(&token).await, "algorithm is not accepted");
    }
}

#[tokio::test]
async fn discovery_falls_back_to_rfc8414_with_path_insertion() {
    let key = jwt_authz::dev::SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start_at("/tenant/one", &[&key]).await;
    issuer.script(|s| s.mode = MetadataMode::Rfc8414);
    let app = Running::start(vec![issuer_config(&issuer.issuer, AUD)]).await;
    app.wait_ready().await;
    assert_eq!(issuer.oidc_requests(), 1, "OIDC location tried first");
    assert_eq!(
        issuer.rfc8414_requests(),
        1,
        "then /.well-known/oauth-authorization-server/tenant/one"
    );
    let o = app
        .client()
        .await
        .bearer(&key.mint(&issuer.claims(AUD, "alice")))
        .await;
    assert!(o.allowed(), "{o:?}");
}

#[tokio::test]
async fn metadata_with_different_issuer_is_rejected_and_tokens_get_503() {
    let key = jwt_authz::dev::SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    // One character off: a trailing slash.
    issuer.script(|s| s.metadata_issuer = Some(format!("{}/", issuer.issuer)));
    let app = Running::start(vec![issuer_config(&issuer.issuer, AUD)]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ready = reqwest::get(format!("http://{}/readyz", app.admin))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("must match exactly"));
    assert_eq!(
        issuer.jwks_requests(),
        0,
        "keys are never fetched from rejected metadata"
    );
    let o = app
        .client()
        .await
        .bearer(&key.mint(&issuer.claims(AUD, "alice")))
        .await;
    assert_eq!(o.http_status, 503, "{o:?}");
    assert_eq!(o.rpc_code, 14, "UNAVAILABLE");
}

#[tokio::test]
async fn rotation_new_kid_is_fetched_once_then_allowed() {
    let (issuer, _app, client, k1) = setup(Alg::RS256).await;
    let k2 = jwt_authz::dev::SigningKey::generate(Alg::RS256, Some("k2"));
    issuer.set_keys(&[&k1, &k2]);
    let before = issuer.jwks_requests();
    let o = client.bearer(&k2.mint(&issuer.claims(AUD, "bob"))).await;
    assert!(o.allowed(), "{o:?}");
    assert_eq!(issuer.jwks_requests(), before + 1, "exactly one refetch");
    let o = client.bearer(&k2.mint(&issuer.claims(AUD, "bob"))).await;
    assert!(o.allowed());
    assert_eq!(issuer.jwks_requests(), before + 1, "then served from cache");
}

#[tokio::test]
async fn fifty_concurrent_unknown_kid_requests_share_one_fetch() {
    let (issuer, _app, client, k1) = setup(Alg::ES256).await;
    let k2 = jwt_authz::dev::SigningKey::generate(Alg::ES256, Some("k2"));
    issuer.set_keys(&[&k1, &k2]);
    issuer.script(|s| s.jwks_delay = Duration::from_millis(300));
    let before = issuer.jwks_requests();
    let token = k2.mint(&issuer.claims(AUD, "carol"));
    let checks = (0..50).map(|_| {
        let client = client.clone();
        let token = token.clone();
        tokio::spawn(async move { client.bearer(&token).await })
    });
    for o in futures_util::future::join_all(checks).await {
        assert!(o.unwrap().allowed());
    }
    assert_eq!(issuer.jwks_requests(), before + 1);
}

#[tokio::test]
async fn check_without_http_attributes_is_invalid_argument() {
    let (_issuer, _app, client, _key) = setup(Alg::ES256).await;
    let err = client
        .raw(envoy_types::ext_authz::v3::pb::CheckRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn health_is_not_serving_until_keys_load() {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let key = jwt_authz::dev::SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    issuer.script(|s| s.jwks_status = 500);
    let app = Running::start(vec![issuer_config(&issuer.issuer, AUD)]).await;
    let mut health = HealthClient::new(channel(app.grpc).await);
    let status = |h: &mut HealthClient<_>| {
        let mut h = h.clone();
        async move {
            h.check(HealthCheckRequest {
                service: "envoy.service.auth.v3.Authorization".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&mut health).await, ServingStatus::NotServing as i32);
    issuer.script(|s| s.jwks_status = 200);
    app.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&mut health).await, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn reflection_lists_ext_authz_and_health() {
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let (_issuer, app, _client, _key) = setup(Alg::ES256).await;
    let mut client = ServerReflectionClient::new(channel(app.grpc).await);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(futures_util::stream::iter([req]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"envoy.service.auth.v3.Authorization".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn metrics_count_decisions_by_reason() {
    let (issuer, app, client, key) = setup(Alg::ES256).await;
    client.bearer(&key.mint(&issuer.claims(AUD, "a"))).await;
    client.headers(&[]).await;
    let m = app.metrics().await;
    assert!(
        m.contains(r#"jwt_authz_checks_total{decision="allow",frontend="grpc",reason="ok"} 1"#),
        "{m}"
    );
    assert!(m.contains(
        r#"jwt_authz_checks_total{decision="deny",frontend="grpc",reason="missing_token"} 1"#
    ));
    let iss = &issuer.issuer;
    assert!(
        m.contains(&format!(
            r#"jwt_authz_jwks_refreshes_total{{issuer="{iss}",outcome="ok"}} 1"#
        )),
        "{m}"
    );
    assert!(m.contains(&format!(r#"jwt_authz_jwks_keys{{issuer="{iss}"}} 1"#)));
    assert!(m.contains(r#"jwt_authz_key_lookups_total{result="hit"} 1"#));
}

#[tokio::test]
async fn serves_check_on_a_unix_domain_socket() {
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    let key = jwt_authz::dev::SigningKey::generate(Alg::ES256, Some("k1"));
    let issuer = TestIssuer::start(&[&key]).await;
    let path = std::env::temp_dir().join(format!("jwt-authz-{}.sock", rand::random::<u64>()));
    let mut config = jwt_authz::config::Config::default();
    config.listen.grpc = "127.0.0.1:0".parse().unwrap();
    config.listen.admin = "127.0.0.1:0".parse().unwrap();
    config.listen.grpc_uds = Some(path.clone());
    config.issuers = vec![issuer_config(&issuer.issuer, AUD)];
    let app = Running::start_config(config).await;
    app.wait_ready().await;
    let p = path.clone();
    let channel = tonic::transport::Endpoint::from_static("http://uds.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let p = p.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(p).await?,
                ))
            }
        }))
        .await
        .expect("connect over the unix socket");
    let mut client = AuthorizationClient::new(channel);
    let token = key.mint(&issuer.claims(AUD, "uds-user"));
    let req = check_request(
        "GET",
        "api.test",
        "/",
        &[("authorization", &format!("Bearer {token}"))],
    );
    let resp = client.check(req).await.unwrap().into_inner();
    assert_eq!(
        resp.status.map(|s| s.code),
        Some(0),
        "allowed over the socket"
    );
    app.stop().await;
    assert!(!path.exists(), "socket file removed at shutdown");
}
