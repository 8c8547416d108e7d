//! The one-shot commands: `demo` (a development issuer plus the service), `call` (one Check
//! against a running server), `explain` (why a token is allowed or denied) and `check-config`.
//! Each returns the process exit code; `main.rs` only dispatches.

use std::{process::ExitCode, time::Duration};

use crate::{
    app::{App, StartError},
    cli::{CallArgs, CheckConfigArgs, DemoArgs, ExplainArgs},
    config::{Config, ConfigError, IssuerConfig},
    dev::DevIssuer,
    reload::ConfigLoader,
};

/// Prints a configuration error with a hint and returns exit code 2.
pub fn config_error(e: ConfigError) -> ExitCode {
    eprintln!("error: invalid configuration: {e}");
    eprintln!("hint: every key is listed in the README's \"Configuration reference\"; `jwt-authz check-config FILE` checks a file without starting");
    ExitCode::from(2)
}

/// Binds and runs the service until SIGTERM/SIGINT, with hot reload when `reload` is given.
pub async fn run(
    config: Config,
    reload: Option<(ConfigLoader, Option<std::path::PathBuf>)>,
) -> ExitCode {
    let app = match App::bind(config).await {
        Ok(app) => app,
        Err(StartError::Config(e)) => return config_error(e),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = match reload {
        Some((loader, file)) => app.with_reload(loader, file),
        None => app,
    };
    let (forward_auth, proxy) = (app.forward_auth_addr(), app.proxy_addr());
    tracing::info!(
        grpc = %app.grpc_addr(),
        admin = %app.admin_addr(),
        forward_auth = forward_auth.map_or("off".into(), |a| a.to_string()),
        proxy = proxy.map_or("off".into(), |a| a.to_string()),
        "listening"
    );
    match app.run(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn demo(args: DemoArgs) -> ExitCode {
    if !args.issuer_listen.ip().is_loopback() {
        eprintln!("error: the development issuer only listens on loopback");
        return ExitCode::from(2);
    }
    let (issuer, _task) = match DevIssuer::start(args.issuer_listen).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!(
                "error: cannot start the development issuer on {}: {e}",
                args.issuer_listen
            );
            return ExitCode::FAILURE;
        }
    };
    let audience = "https://api.example.test";
    let mut config = Config::default();
    config.listen.grpc = args.grpc_listen;
    config.listen.admin = args.admin_listen;
    config.issuers.push(IssuerConfig::new(
        issuer.issuer.clone(),
        vec![audience.into()],
    ));
    let token = issuer.token(audience, "demo-user");
    println!(
        "\njwt-authz demo\n\
         \n  development issuer  {iss}  (discovery: {iss}/.well-known/openid-configuration)\
         \n  ext_authz gRPC      {grpc}\
         \n  admin               http://{admin}/metrics  /healthz  /readyz  /debug/keys\
         \n\nA token for audience {audience}, valid for one hour:\n\n{token}\n\
         \nTry it (in another terminal):\n\
         \n  {exe} call --addr http://{grpc} --token {token}\
         \n  {exe} call --addr http://{grpc}            # no token: 401\
         \n  {exe} explain --issuer {iss} --audience {audience} --token {token}\
         \n  grpcurl -plaintext {grpc} list             # reflection, if grpcurl is installed\n\
         \nPress Ctrl-C to stop.\n",
        iss = issuer.issuer,
        exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.to_str().map(str::to_owned))
            .unwrap_or_else(|| "jwt-authz".into()),
        grpc = args.grpc_listen,
        admin = args.admin_listen,
    );
    run(config, None).await
}

pub async fn explain(args: ExplainArgs) -> ExitCode {
    let config = match args.source.load() {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) if t != "-" => t.clone(),
        (_, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        _ => {
            let mut t = String::new();
            if std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).is_err() {
                eprintln!("error: cannot read the token from standard input");
                return ExitCode::from(2);
            }
            t
        }
    };
    let request = crate::explain::RequestSpec {
        method: args.request.method,
        host: args.request.host,
        path: args.request.path,
    };
    match crate::explain::explain(&config, &token, &request).await {
        Ok((report, allowed)) => {
            print!("{report}");
            ExitCode::from(if allowed { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn check_config(args: CheckConfigArgs) -> ExitCode {
    let file = args.path();
    let config = match Config::from_file(file) {
        Ok(c) => c,
        Err(e) => return config_error(e),
    };
    match config.validate() {
        Ok(v) => {
            println!("{}: valid", file.display());
            for i in &v.issuers {
                println!(
                    "  issuer {} (audiences {:?}, profile {})",
                    i.id,
                    i.audiences,
                    i.profile.name()
                );
            }
            let sources: Vec<String> = config.token_sources.iter().map(|t| t.describe()).collect();
            println!(
                "  {} rule(s), default_action {}; token sources: {}",
                config.rules.len(),
                config.default_action.name(),
                sources.join(", ")
            );
            if let Some(f) = &config.forward_auth {
                println!("  forward-auth on {}", f.listen);
            }
            if let Some(p) = &config.proxy {
                println!("  reverse proxy on {} → {}", p.listen, p.upstream);
            }
            ExitCode::SUCCESS
        }
        Err(e) => config_error(e),
    }
}

pub async fn call(args: CallArgs) -> ExitCode {
    use envoy_types::ext_authz::v3::pb::{CheckRequest, HttpResponse};
    use envoy_types::pb::envoy::service::auth::v3::{
        attribute_context::{HttpRequest, Request},
        authorization_client::AuthorizationClient,
        AttributeContext,
    };
    let mut headers = std::collections::HashMap::new();
    if let Some(token) = &args.token {
        headers.insert("authorization".to_owned(), format!("Bearer {token}"));
    }
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: args.request.method,
                    host: args.request.host,
                    path: args.request.path,
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let connect = tokio::time::timeout(
        Duration::from_secs(5),
        AuthorizationClient::connect(args.addr.clone()),
    );
    let mut client = match connect.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            eprintln!("error: cannot connect to {}: {e}", args.addr);
            return ExitCode::from(2);
        }
        Err(_) => {
            eprintln!("error: timed out connecting to {}", args.addr);
            return ExitCode::from(2);
        }
    };
    let response = match client.check(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => {
            eprintln!("error: Check failed: {status}");
            return ExitCode::from(2);
        }
    };
    match response.http_response {
        Some(HttpResponse::OkResponse(ok)) => {
            println!("ALLOW");
            for h in ok.headers.iter().filter_map(|h| h.header.as_ref()) {
                println!("  set upstream header {}: {}", h.key, h.value);
            }
            for name in &ok.headers_to_remove {
                println!("  remove upstream header {name}");
            }
            ExitCode::SUCCESS
        }
        Some(HttpResponse::DeniedResponse(denied)) => {
            let status = denied.status.map(|s| s.code).unwrap_or(403);
            println!("DENY {status}");
            for h in denied.headers.iter().filter_map(|h| h.header.as_ref()) {
                println!("  {}: {}", h.key, h.value);
            }
            println!("  body: {}", denied.body);
            ExitCode::from(1)
        }
        _ => {
            let code = response.status.map(|s| s.code).unwrap_or(-1);
            println!("{}", if code == 0 { "ALLOW" } else { "DENY" });
            ExitCode::from(if code == 0 { 0 } else { 1 })
        }
    }
}
