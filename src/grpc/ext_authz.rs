//! `envoy.service.auth.v3.Authorization/Check`: the only code that reads Envoy's CheckRequest or
//! writes its CheckResponse. A denial is an in-band `Ok(CheckResponse)` carrying the denied HTTP
//! response; `Err(Status)` is reserved for requests Envoy should never send.

use std::{collections::HashMap, sync::Arc};

use envoy_types::{
    ext_authz::v3::pb::{
        Authorization, CheckRequest, CheckResponse, DeniedHttpResponse, HeaderAppendAction,
        HeaderValue, HeaderValueOption, HttpResponse, HttpStatus, OkHttpResponse,
    },
    pb::google::{protobuf as pbs, rpc},
};
use tonic::{Request, Response, Status};

use crate::{
    app::Shared,
    authz::{respond::rpc as code, Allowance, AuthzRequest, Decision, Denial, Headers},
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
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let check = request.into_inner();
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
        let decision = authorizer.decide(&req, Frontend::Grpc).await;
        Ok(Response::new(match decision {
            Decision::Allow(a) => allow(a),
            Decision::Deny(d) => deny(d),
        }))
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

fn allow(a: Allowance) -> CheckResponse {
    let headers = a
        .set
        .iter()
        .map(|(k, v)| header(k, v, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .collect();
    // Envoy puts CheckResponse.dynamic_metadata under the filter's namespace,
    // `envoy.filters.http.ext_authz`, for RBAC, access logs and later filters.
    let dynamic_metadata = a.metadata.map(to_struct);
    CheckResponse {
        status: Some(rpc::Status {
            code: code::OK,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
            headers,
            headers_to_remove: a.remove,
            query_parameters_to_remove: a.remove_query,
            ..Default::default()
        })),
        dynamic_metadata,
    }
}

/// JSON object → `google.protobuf.Struct`.
fn to_struct(map: serde_json::Map<String, serde_json::Value>) -> pbs::Struct {
    pbs::Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

fn to_value(v: serde_json::Value) -> pbs::Value {
    use pbs::value::Kind;
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        J::String(s) => Kind::StringValue(s),
        J::Array(items) => Kind::ListValue(pbs::ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        J::Object(m) => Kind::StructValue(to_struct(m)),
    };
    pbs::Value { kind: Some(kind) }
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
