//! Command-line interface: `serve`, `demo` and `call`. Flags override the config file for the
//! common single-issuer case; every flag has an environment variable for container use.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::{
    config::{Config, ConfigError, IssuerConfig},
    telemetry::LogFormat,
};

/// Validates OAuth 2.0 JWT access tokens for Envoy ext_authz, locally, against each issuer's
/// discovered and cached JWKS.
#[derive(Debug, Parser)]
#[command(name = "jwt-authz", version, about, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing directives, e.g. `info` or `info,jwt_authz=debug`).
    #[arg(long, global = true, env = "JWT_AUTHZ_LOG", default_value = "info")]
    pub log: String,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "JWT_AUTHZ_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Runtime worker threads [default: one per CPU, or a current-thread runtime when the
    /// process has a single CPU]. 0 runs everything on the main thread, which serves the most
    /// checks per core; sidecars usually want 0 or 1.
    #[arg(long, global = true, env = "JWT_AUTHZ_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
}

const LONG_ABOUT: &str = "\
Validates OAuth 2.0 JWT access tokens (RFC 9068) for Envoy's ext_authz filter, locally.

jwt-authz finds each issuer's signing keys through OpenID Connect Discovery or RFC 8414 metadata,
caches them, follows rotation, and answers envoy.service.auth.v3.Authorization/Check without
calling the authorization server per request.

Examples:
  jwt-authz demo                                  # try it: a development issuer + the service
  jwt-authz serve --config /etc/jwt-authz/config.yaml
  jwt-authz serve --issuer https://idp.example.com/realms/main \\
                  --audience https://api.example.com
  jwt-authz explain --config config.yaml --token \"$TOKEN\"   # why is it denied?";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve ext_authz Check (gRPC) and the admin endpoints.
    Serve(ServeArgs),
    /// Start a development issuer on loopback and serve against it; prints a token to try.
    Demo(DemoArgs),
    /// Send one Check request to a running server and print the decision (exit 0 allow, 1 deny).
    Call(CallArgs),
    /// Explain, step by step, why a token is allowed or denied (exit 0 allow, 1 deny).
    ///
    /// Fetches the issuer's metadata and keys live, checks the signature and each claim, picks
    /// the route rule, and prints the exact response Envoy would send.
    Explain(ExplainArgs),
    /// Validate a configuration file and summarise it (exit 0 valid, 2 invalid).
    CheckConfig(CheckConfigArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// The token; omit (or pass `-`) to read it from standard input.
    #[arg(long)]
    pub token: Option<String>,
    /// Read the token from this file.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub request: RequestArgs,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The YAML configuration file (also accepted as `--config FILE`, as `serve` takes it).
    #[arg(value_name = "FILE", required_unless_present = "config")]
    file: Option<PathBuf>,
    #[arg(long, value_name = "FILE", conflicts_with = "file", hide = true)]
    config: Option<PathBuf>,
}

impl CheckConfigArgs {
    /// The file to check, however it was given.
    pub fn path(&self) -> &std::path::Path {
        self.file
            .as_deref()
            .or(self.config.as_deref())
            .expect("clap requires FILE or --config")
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    /// gRPC listen address [default: 0.0.0.0:9191].
    #[arg(long, env = "JWT_AUTHZ_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Admin (metrics, health) listen address [default: 0.0.0.0:9090].
    #[arg(long, env = "JWT_AUTHZ_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// The config file (or defaults) with the flags applied on top.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = self.source.load()?;
        if let Some(addr) = self.grpc_listen {
            config.listen.grpc = addr;
        }
        if let Some(addr) = self.admin_listen {
            config.listen.admin = addr;
        }
        Ok(config)
    }
}

/// Where the configuration comes from: a file, flags, or both.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// YAML configuration file (see README "Configuration"). Flags below override it.
    #[arg(long, short, env = "JWT_AUTHZ_CONFIG")]
    pub config: Option<PathBuf>,
    /// Trusted issuer identifier, exactly as in the tokens' `iss`. Repeatable.
    #[arg(long = "issuer", env = "JWT_AUTHZ_ISSUER", value_delimiter = ',')]
    pub issuers: Vec<String>,
    /// Accepted audience for the --issuer issuers (the `aud` this API expects). Repeatable.
    #[arg(long = "audience", env = "JWT_AUTHZ_AUDIENCE", value_delimiter = ',')]
    pub audiences: Vec<String>,
}

impl SourceArgs {
    /// The config file (or defaults) with the flags applied on top.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if !self.issuers.is_empty() && self.audiences.is_empty() {
            return Err(ConfigError::Invalid {
                field: "--audience".into(),
                message: "--issuer needs at least one --audience (the `aud` value tokens for this API carry)".into(),
            });
        }
        if self.issuers.is_empty() && !self.audiences.is_empty() {
            return Err(ConfigError::Invalid {
                field: "--audience".into(),
                message: "--audience applies to --issuer issuers; pass --issuer too, or set audiences in the config file".into(),
            });
        }
        for issuer in &self.issuers {
            config
                .issuers
                .push(IssuerConfig::new(issuer.clone(), self.audiences.clone()));
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:9191")]
    pub grpc_listen: SocketAddr,
    /// Admin listen address.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Development issuer listen address (loopback only).
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub issuer_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The jwt-authz gRPC address.
    #[arg(long, default_value = "http://127.0.0.1:9191")]
    pub addr: String,
    /// The bearer token to check (omit to check a request without one).
    #[arg(long, env = "JWT_AUTHZ_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub request: RequestArgs,
}

/// The request a check is about (for `call` and `explain`).
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Request method the check is about.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Request host (`:authority`) the check is about.
    #[arg(long, default_value = "localhost")]
    pub host: String,
    /// Request path, with query if any.
    #[arg(long, default_value = "/")]
    pub path: String,
}
