//! Wiring only: parse the command line, set up logging and the runtime, dispatch the command.

#![forbid(unsafe_code)]

use std::{process::ExitCode, sync::Arc};

use clap::Parser;
use jwt_authz::{
    cli::{Cli, Command, ServeArgs},
    commands, reload, telemetry,
};

/// mimalloc, not the system allocator: the check path allocates small, short-lived buffers, and
/// the container's static musl binary would otherwise use musl's allocator, which is several
/// times slower under load (BENCHMARKS.md, "Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log, cli.log_format);
    let mut builder = match cli.worker_threads {
        Some(0) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        // One CPU (a sidecar with a 1-CPU limit, or pinned): a current-thread runtime serves
        // ~30% more checks than a multi-thread one there (BENCHMARKS.md).
        None if std::thread::available_parallelism().is_ok_and(|n| n.get() == 1) => {
            tokio::runtime::Builder::new_current_thread()
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Demo(args) => commands::demo(args).await,
            Command::Call(args) => commands::call(args).await,
            Command::Explain(args) => commands::explain(args).await,
            Command::CheckConfig(args) => commands::check_config(args),
        }
    })
}

async fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.load() {
        Ok(c) => c,
        Err(e) => return commands::config_error(e),
    };
    let file = args.source.config.clone();
    let args = Arc::new(args);
    let loader: reload::ConfigLoader = Arc::new(move || args.load());
    commands::run(config, Some((loader, file))).await
}
