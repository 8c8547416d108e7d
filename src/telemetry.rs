//! Logging setup: human-readable text on a terminal, JSON when asked. Tokens are never passed to
//! a log macro anywhere in the crate; decisions log only reasons, issuers and request ids.

use tracing_subscriber::{fmt, EnvFilter};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber. `filter` uses `tracing` directives, e.g. `info,jwt_authz=debug`.
pub fn init(filter: &str, format: LogFormat) {
    // rustls-platform-verifier logs every TLS failure at ERROR; jwt-authz already reports the
    // same failure once, with the issuer, as a fetch error.
    let directives = if filter.contains("rustls_platform_verifier") {
        filter.to_owned()
    } else {
        format!("{filter},rustls_platform_verifier=off")
    };
    let filter = match EnvFilter::try_new(&directives) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("warning: ignoring log filter {filter:?} ({e}); using \"info\"");
            EnvFilter::new("info,rustls_platform_verifier=off")
        }
    };
    use std::io::IsTerminal as _;
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
