//! The `cbk` binary: parse arguments, run, map the result to an exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cbk::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are "errors" to clap that print to stdout and succeed.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                cbk::error::exit::USAGE
            } else {
                cbk::error::exit::OK
            });
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    // With `--progress json` every line is a JSON event, log records included.
    let json = cli.json_events();
    if json {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(filter)
            .with(cbk::exec::events::JsonLog)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let text = format!("cannot start the async runtime: {e}");
            if json {
                cbk::exec::events::emit(&cbk::exec::events::Event::Error {
                    text: &text,
                    address: None,
                    target: None,
                    fields: None,
                    exit_code: Some(cbk::error::exit::FAILED),
                });
            } else {
                eprintln!("error: {text}");
            }
            return ExitCode::from(cbk::error::exit::FAILED);
        }
    };
    match runtime.block_on(cbk::cli::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::from(cbk::error::exit::FAILED)
        }
    }
}
