//! `ringbox`: a self-hosted blob and media storage daemon.
//!
//! Subcommands: `serve` (the server), `check` (offline consistency check of blobs
//! against metadata), `gc` (collect unreferenced blobs). See the README.

mod api;
mod config;
#[allow(dead_code)]
mod core;
mod http;
mod metrics;
mod server;
mod store;
mod util;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, DurabilityArg, ServeArgs};
use crate::store::{Durability, Store, StoreConfig};

#[derive(Parser, Debug)]
#[command(
    name = "ringbox",
    version,
    about = "Self-hosted blob and media storage daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once at start
enum Cmd {
    /// Run the server (defaults: 127.0.0.1:8090, data in ./data).
    Serve(ServeArgs),
    /// Check blobs against metadata, offline; exit 0 only when consistent.
    Check {
        /// Data directory.
        #[arg(long, env = "RINGBOX_DATA", default_value = "data")]
        data: PathBuf,
    },
    /// Remove blobs that no object references, offline.
    Gc {
        /// Data directory.
        #[arg(long, env = "RINGBOX_DATA", default_value = "data")]
        data: PathBuf,
    },
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RINGBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Cmd::Serve(args) => serve(&args),
        Cmd::Check { data } => match store::check(&data) {
            Ok(report) => {
                let ok = report.problems.is_empty();
                let json = serde_json::json!({
                    "consistent": ok,
                    "objects": report.objects,
                    "blobs": report.blobs,
                    "problems": report.problems,
                    "orphans": report.orphans,
                    "tmp_leftovers": report.tmp_leftovers,
                });
                report_json(&json);
                if ok {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "check failed");
                ExitCode::from(2)
            }
        },
        Cmd::Gc { data } => match store::gc(&data) {
            Ok(report) => {
                report_json(&serde_json::json!({
                    "blobs_removed": report.blobs_removed,
                    "bytes_freed": report.bytes_freed,
                }));
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "gc failed");
                ExitCode::from(2)
            }
        },
    }
}

/// Reports of the offline tools go to stdout as one JSON document.
fn report_json(v: &serde_json::Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v:#}");
}

fn serve(args: &ServeArgs) -> ExitCode {
    let cfg = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let store = match Store::open(StoreConfig {
        durability: match cfg.durability {
            DurabilityArg::Fsync => Durability::Fsync,
            DurabilityArg::None => Durability::None,
        },
        ..StoreConfig::new(cfg.data.clone())
    }) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(data = %cfg.data.display(), "cannot open the data directory: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(path = %store.admin_token_path().display(), "admin token file (send it as `Authorization: Bearer <token>`)");
    match server::workers::run(cfg, store) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::from(1)
        }
    }
}
