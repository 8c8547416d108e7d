//! RFC 9728 OAuth 2.0 Protected Resource Metadata: the document at
//! `/.well-known/oauth-protected-resource{resource path}` that tells a client which authorization
//! servers protect this resource and which scopes it knows, and the URL that challenges point to
//! with `resource_metadata` (RFC 9728 §5.1).

use serde_json::{json, Value};

use crate::config::ProtectedResourceConfig;

/// The metadata document and where it is served.
#[derive(Debug, Clone)]
pub struct ResourceMetadata {
    /// Request path of the document (RFC 9728 §3.1 path insertion).
    pub path: String,
    /// Absolute URL of the document, for `resource_metadata="…"`.
    pub url: String,
    /// The JSON body.
    pub body: String,
}

impl ResourceMetadata {
    /// Builds the document; `issuers` and `scopes` fill in what the config leaves out.
    pub fn new(
        cfg: &ProtectedResourceConfig,
        issuers: &[&str],
        scopes: Vec<String>,
        bearer_methods: Vec<&'static str>,
    ) -> Self {
        // Validated as a URL when the config was loaded.
        let mut base = url::Url::parse(&cfg.resource)
            .unwrap_or_else(|_| url::Url::parse("https://invalid.invalid").expect("static URL"));
        let path = format!(
            "/.well-known/oauth-protected-resource{}",
            base.path().trim_end_matches('/')
        );
        base.set_path(&path);
        base.set_query(None);
        let mut doc = json!({
            "resource": cfg.resource,
            "authorization_servers": cfg
                .authorization_servers
                .clone()
                .unwrap_or_else(|| issuers.iter().map(|s| s.to_string()).collect()),
            "scopes_supported": cfg.scopes_supported.clone().unwrap_or(scopes),
            "bearer_methods_supported": bearer_methods,
        });
        if let Some(name) = &cfg.resource_name {
            doc["resource_name"] = Value::String(name.clone());
        }
        if let Some(docs) = &cfg.resource_documentation {
            doc["resource_documentation"] = Value::String(docs.to_string());
        }
        Self {
            path,
            url: base.to_string(),
            body: doc.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(resource: &str) -> ProtectedResourceConfig {
        ProtectedResourceConfig {
            resource: resource.into(),
            authorization_servers: None,
            scopes_supported: None,
            resource_name: Some("Orders API".into()),
            resource_documentation: None,
        }
    }

    #[test]
    fn path_insertion_for_a_resource_with_a_path() {
        let m = ResourceMetadata::new(
            &cfg("https://api.example.com/v1/"),
            &["https://idp"],
            vec![],
            vec!["header"],
        );
        assert_eq!(m.path, "/.well-known/oauth-protected-resource/v1");
        assert_eq!(
            m.url,
            "https://api.example.com/.well-known/oauth-protected-resource/v1"
        );
    }

    #[test]
    fn document_lists_servers_scopes_and_methods() {
        let m = ResourceMetadata::new(
            &cfg("https://api.example.com"),
            &["https://idp.example"],
            vec!["read".into()],
            vec!["header"],
        );
        let v: Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            v["resource"], "https://api.example.com",
            "exactly as configured"
        );
        assert_eq!(v["authorization_servers"], json!(["https://idp.example"]));
        assert_eq!(v["scopes_supported"], json!(["read"]));
        assert_eq!(v["bearer_methods_supported"], json!(["header"]));
        assert_eq!(v["resource_name"], "Orders API");
        assert_eq!(m.path, "/.well-known/oauth-protected-resource");
    }
}
