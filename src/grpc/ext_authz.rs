//! `envoy.service.auth.v3.Authorization/Check`: the only code that reads Envoy's CheckRequest or
//! writes its CheckResponse. A denial is an in-band `Ok(CheckResponse)` carrying the denied HTTP
//! response; `Err(Status)` is reserved for requests Envoy should never send.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use envoy_types::{
    ext_authz::v3::pb::{
        CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction, HeaderValue,
        HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
    },
    pb::google::rpc,
};
use prost::{
    bytes::BufMut,
    encoding::{encode_key, encode_varint, WireType},
    Message,
};
use tonic::{
    codec::{Codec, EncodeBuf, Encoder},
    codegen::{http, Body, BoxFuture, Service, StdError},
    server::{NamedService, UnaryService},
    Request, Response, Status,
};
use tonic_prost::ProstDecoder;

use crate::{
    app::Shared,
    authz::{
        metadata, respond::rpc as code, Allowance, AuthzRequest, Decision, Denial, Headers,
        Identity,
    },
    metrics::Frontend,
};

/// The ext_authz gRPC service.
pub struct ExtAuthz {
    shared: Arc<Shared>,
}

impl ExtAuthz {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// One Check: the decision, as the reply the codec writes.
    async fn check(&self, check: CheckRequest) -> Result<Reply, Status> {
        let http = check
            .attributes
            .as_ref()
            .and_then(|a| a.request.as_ref())
            .and_then(|r| r.http.as_ref())
            .ok_or_else(|| {
                Status::invalid_argument("CheckRequest has no attributes.request.http")
            })?;
        // Envoy sends `headers` (a map), or `header_map` when `encode_raw_headers` is on.
        let raw;
        let headers = if http.headers.is_empty() {
            raw = raw_headers(http.header_map.as_ref());
            &raw
        } else {
            &http.headers
        };
        let req = AuthzRequest {
            method: &http.method,
            host: &http.host,
            path: &http.path,
            headers: Headers::Map(headers),
        };
        let authorizer = self.shared.authorizer();
        Ok(match authorizer.decide(&req, Frontend::Grpc).await {
            Decision::Allow(allowance) => Reply::Allow {
                allowance,
                metadata_key: authorizer.responder().metadata_key().clone(),
            },
            Decision::Deny(d) => Reply::Message(deny(d)),
        })
    }
}

/// `envoy.service.auth.v3.Authorization` as a tower service: the generated server, except that
/// responses go through [`ReplyCodec`], which writes an allow from bytes prepared once per token.
#[derive(Clone)]
pub struct AuthorizationService {
    inner: Arc<ExtAuthz>,
    max_request_bytes: usize,
}

impl AuthorizationService {
    /// Serves `inner`, refusing Check requests larger than `max_request_bytes`.
    pub fn new(inner: ExtAuthz, max_request_bytes: usize) -> Self {
        Self {
            inner: Arc::new(inner),
            max_request_bytes,
        }
    }
}

impl NamedService for AuthorizationService {
    const NAME: &'static str = "envoy.service.auth.v3.Authorization";
}

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

impl<B> Service<http::Request<B>> for AuthorizationService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CHECK_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let check = CheckMethod(self.inner.clone());
        let max = self.max_request_bytes;
        Box::pin(async move {
            let mut grpc =
                tonic::server::Grpc::new(ReplyCodec).apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(check, req).await)
        })
    }
}

struct CheckMethod(Arc<ExtAuthz>);

impl UnaryService<CheckRequest> for CheckMethod {
    type Response = Reply;
    type Future = BoxFuture<Response<Reply>, Status>;

    fn call(&mut self, request: Request<CheckRequest>) -> Self::Future {
        let inner = self.0.clone();
        Box::pin(async move { inner.check(request.into_inner()).await.map(Response::new) })
    }
}

/// A CheckResponse to write.
pub enum Reply {
    /// Built as a message (denials, documents).
    Message(CheckResponse),
    /// An allow, written from the identity's prepared bytes plus this request's route.
    Allow {
        allowance: Allowance,
        metadata_key: Arc<str>,
    },
}

/// Decodes CheckRequests with prost; encodes [`Reply`]s.
struct ReplyCodec;

impl Codec for ReplyCodec {
    type Encode = Reply;
    type Decode = CheckRequest;
    type Encoder = ReplyEncoder;
    type Decoder = ProstDecoder<CheckRequest>;

    fn encoder(&mut self) -> ReplyEncoder {
        ReplyEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

struct ReplyEncoder;

impl Encoder for ReplyEncoder {
    type Item = Reply;
    type Error = Status;

    fn encode(&mut self, item: Reply, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        match item {
            Reply::Message(m) => m.encode(buf),
            Reply::Allow {
                allowance,
                metadata_key,
            } => {
                encode_allow(&allowance, &metadata_key, buf);
                Ok(())
            }
        }
        .map_err(|e| Status::internal(format!("encoding the CheckResponse: {e}")))
    }
}

/// CheckResponse field 4, `dynamic_metadata`.
const DYNAMIC_METADATA: u32 = 4;

/// Writes the CheckResponse of an allow: `status` and `ok_response` (fields 1 and 3) from the
/// identity's bytes, made on first use, then `dynamic_metadata` (field 4) with this request's
/// route spliced in. Fields of a message may come in any order, so this is the encoding of
/// [`allow`]'s message (tests/policy.rs and the unit tests below decode and compare it).
pub fn encode_allow(a: &Allowance, metadata_key: &str, buf: &mut impl BufMut) {
    if a.remove_query.is_empty() {
        let head = a
            .identity
            .wire
            .get_or_init(|| head(&a.identity, &[]).encode_to_vec().into_boxed_slice());
        buf.put_slice(head);
    } else {
        // A token from the query: this request's parameter is part of ok_response.
        head(&a.identity, &a.remove_query)
            .encode(buf)
            .expect("the encode buffer grows as needed");
    }
    if let Some(fields) = &a.identity.metadata {
        encode_key(DYNAMIC_METADATA, WireType::LengthDelimited, buf);
        encode_varint(
            metadata::encoded_len(metadata_key, fields, &a.route) as u64,
            buf,
        );
        metadata::encode(metadata_key, fields, &a.route, buf);
    }
}

/// The CheckResponse of an allow without its dynamic metadata.
fn head(identity: &Identity, remove_query: &[String]) -> CheckResponse {
    let headers = identity
        .set
        .iter()
        .map(|(k, v)| header(k, v, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    CheckResponse {
        status: Some(rpc::Status {
            code: code::OK,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove: identity.remove.clone(),
            query_parameters_to_remove: remove_query.to_vec(),
            ..Default::default()
        })),
        dynamic_metadata: None,
    }
}

/// Joins repeated raw headers the way Envoy joins them in `headers` (comma-separated).
fn raw_headers(
    map: Option<&envoy_types::pb::envoy::config::core::v3::HeaderMap>,
) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    for h in map.map(|m| m.headers.as_slice()).unwrap_or_default() {
        let value = if h.raw_value.is_empty() {
            h.value.clone()
        } else {
            String::from_utf8_lossy(&h.raw_value).into_owned()
        };
        out.entry(h.key.to_ascii_lowercase())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    out
}

fn header(key: &str, value: &str, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value: value.to_owned(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

fn deny(d: Denial) -> CheckResponse {
    let headers = d
        .headers
        .iter()
        .map(|(k, v)| header(k, v, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    CheckResponse {
        status: Some(rpc::Status {
            code: d.rpc_code,
            message: String::new(),
            details: Vec::new(),
        }),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(d.http_status),
            }),
            headers,
            body: d.body,
        })),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        authz::{claims::Claims, Responder},
        config::UpstreamHeaders,
    };
    use serde_json::json;

    fn allowance(route: &str, remove_query: Vec<String>) -> (Allowance, Claims) {
        let claims = Claims {
            iss: "https://idp.example".into(),
            sub: Some("alice".into()),
            exp: 0.0,
            all: json!({"iss": "https://idp.example", "sub": "alice", "scope": "read", "n": 3})
                .as_object()
                .unwrap()
                .clone(),
        };
        let responder = Responder::new(
            "api".into(),
            UpstreamHeaders::default(),
            "jwt_authz".into(),
            None,
        );
        let a = Allowance {
            identity: Arc::new(responder.identity(&claims)),
            route: route.into(),
            remove_query,
        };
        (a, claims)
    }

    /// What `encode_allow` must be equal to: the message built field by field.
    fn plain(a: &Allowance, claims: &Claims) -> CheckResponse {
        let mut want = head(&a.identity, &a.remove_query);
        let inner = json!({
            "route": a.route, "issuer": claims.iss, "subject": claims.sub,
            "scopes": ["read"], "claims": claims.all,
        });
        want.dynamic_metadata = Some(metadata::to_struct(
            json!({ "jwt_authz": inner }).as_object().unwrap().clone(),
        ));
        want
    }

    #[test]
    fn an_allow_written_from_prepared_bytes_decodes_to_the_plain_message() {
        for remove_query in [vec![], vec!["access_token".to_owned()]] {
            let (a, claims) = allowance("orders", remove_query);
            let mut first = Vec::new();
            encode_allow(&a, "jwt_authz", &mut first);
            // The second allow of the same token uses the bytes the first one prepared.
            let b = Allowance {
                route: "other".into(),
                ..a.clone()
            };
            let mut second = Vec::new();
            encode_allow(&b, "jwt_authz", &mut second);

            assert_eq!(
                CheckResponse::decode(first.as_slice()).unwrap(),
                plain(&a, &claims)
            );
            assert_eq!(
                CheckResponse::decode(second.as_slice()).unwrap(),
                plain(&b, &claims)
            );
            let ok = match CheckResponse::decode(first.as_slice())
                .unwrap()
                .http_response
            {
                Some(HttpResponse::OkResponse(ok)) => ok,
                other => panic!("not an ok_response: {other:?}"),
            };
            assert_eq!(ok.headers_to_remove, Vec::<String>::new());
            assert_eq!(
                ok.headers
                    .iter()
                    .map(|h| h.header.as_ref().unwrap().key.as_str())
                    .collect::<Vec<_>>(),
                ["x-jwt-sub", "x-jwt-iss"]
            );
        }
    }
}
