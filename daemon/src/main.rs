//! `ringbox`: a self-hosted blob and media storage daemon.
//!
//! Subcommands: `serve` (the server), `check` (offline consistency check of blobs
//! against metadata), `gc` (collect unreferenced blobs). See the README.

mod api;
mod cli;
mod config;
mod core;
mod http;
mod metrics;
mod server;
mod store;
mod sys;
mod util;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Anonymous as AnonymousArg, Config, DurabilityArg, ServeArgs};
use crate::core::identity::Accounts;
use crate::core::ingest::Limits as IngestLimits;
use crate::core::pool::BlockingPool;
use crate::core::{Anonymous, Audit, Core, IngestService, Policy, Settings};
use crate::http::cors::Cors;
use crate::http::router::Router;
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
        /// Also hash every file indexed in place (slow: reads every byte).
        #[arg(long)]
        hash_scanned: bool,
    },
    /// Remove blobs that no object references, offline.
    Gc {
        /// Data directory.
        #[arg(long, env = "RINGBOX_DATA", default_value = "data")]
        data: PathBuf,
    },
    /// Users: add, list, passwd, delete (through the running server, or offline).
    User {
        /// Data directory.
        #[arg(long, env = "RINGBOX_DATA", default_value = "data", global = true)]
        data: PathBuf,
        #[command(subcommand)]
        cmd: cli::UserCmd,
    },
    /// API tokens: create, list, revoke (through the running server, or offline).
    Token {
        /// Data directory.
        #[arg(long, env = "RINGBOX_DATA", default_value = "data", global = true)]
        data: PathBuf,
        #[command(subcommand)]
        cmd: cli::TokenCmd,
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
        Cmd::Check { data, hash_scanned } => match store::check_with(&data, hash_scanned) {
            Ok(report) => {
                let ok = report.problems.is_empty();
                let json = serde_json::json!({
                    "consistent": ok,
                    "objects": report.objects,
                    "blobs": report.blobs,
                    "problems": report.problems,
                    "orphans": report.orphans,
                    "tmp_leftovers": report.tmp_leftovers,
                    "scanned": {
                        "files": report.scanned.files,
                        "missing": report.scanned.missing,
                        "changed": report.scanned.changed,
                        "hashed": report.scanned.hashed,
                    },
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
        Cmd::User { data, cmd } => cli::user(&data, cmd),
        Cmd::Token { data, cmd } => cli::token(&data, cmd),
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
    // Block SIGTERM/SIGINT before any thread starts (the store's writer, the pool,
    // the workers), so every thread inherits the mask and only the main thread's
    // sigwait sees them: a signal delivered to another thread would kill the process
    // without the graceful drain.
    if let Err(e) = sys::block_termination() {
        tracing::error!("cannot block termination signals: {e}");
        return ExitCode::from(1);
    }
    let cfg = match Config::load(args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let events = Arc::new(crate::core::events::EventHub::default());
    let webhooks = Arc::new(crate::core::webhooks::Webhooks::new(
        crate::core::webhooks::WebhookSettings {
            allow_private: cfg.webhook_allow_private,
            give_up: cfg.webhook_give_up,
        },
    ));
    api::register_webhook_formats(&webhooks);
    let publish = events.clone();
    let wake_hooks = webhooks.clone();
    let store = match Store::open(StoreConfig {
        durability: match cfg.durability {
            DurabilityArg::Fsync => Durability::Fsync,
            DurabilityArg::None => Durability::None,
        },
        default_quota: cfg.user_quota,
        events_max: cfg.events_max,
        events_max_age: cfg.events_max_age,
        on_events: Some(crate::store::EventSink(Arc::new(move |batch| {
            publish.publish(batch);
            wake_hooks.notify();
        }))),
        ..StoreConfig::new(cfg.data.clone())
    }) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(data = %cfg.data.display(), "cannot open the data directory: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(path = %store.admin_token_path().display(), "admin token file (send it as `Authorization: Bearer <token>`)");
    // The composition root: the core services, then the APIs mounted over them.
    let router = match Router::build(
        api::mounts(cfg.apis.as_deref(), &cfg.mounts, &cfg.rate_limits),
        cfg.max_body,
        Cors {
            origins: cfg.cors_origins.clone(),
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let pool = match BlockingPool::new(cfg.pool_threads, 1024) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot start the blocking pool: {e}");
            return ExitCode::from(1);
        }
    };
    let mut settings = Settings {
        policy: Policy {
            anonymous: match cfg.anonymous {
                AnonymousArg::None => Anonymous::None,
                AnonymousArg::Read => Anonymous::Read,
                AnonymousArg::Write => Anonymous::Write,
            },
        },
        limits: cfg.protocol_limits(),
        max_file_size: cfg.max_file_size,
        default_quota: cfg.user_quota,
        ws_max_queued: cfg.ws_max_queued.clamp(4096, 1 << 30) as usize,
        max_json_body: cfg.max_json_body,
        thumbnails: cfg.thumbnails.clone(),
        expiry: crate::core::expiry::ExpiryRules {
            default_ttl: cfg.default_ttl,
            namespace_ttl: cfg.namespace_ttls.iter().cloned().collect(),
            unaccessed: cfg.expire_unaccessed,
            namespace_unaccessed: cfg.namespace_expire_unaccessed.iter().cloned().collect(),
            sweep_batch: cfg.sweep_batch,
            ..Default::default()
        },
        public_url: cfg.public_url.clone(),
        share_prefix: cfg
            .mounts
            .iter()
            .find(|(api, _)| api == "shares")
            .map(|(_, p)| p.trim_end_matches('/').to_string())
            .unwrap_or_default(),
        short_links: cfg.pyblob.clone(),
        ..Settings::default()
    };
    // pyBlobServer's files expire after 90 days without a download (a setting), unless
    // the operator set a not-accessed rule (`ExpiryRules::unaccessed_for` decides).
    if cfg
        .apis
        .as_deref()
        .is_none_or(|l| l.iter().any(|n| n == "pyblob"))
    {
        settings
            .expiry
            .default_unaccessed_for(api::pyblob::NAMESPACE, cfg.pyblob.idle_after);
    }
    // The audit log's and the ingest engine's threads (every file append, fsync and
    // SQLite statement of theirs runs there, never on a worker). Neither stops the start
    // when its files cannot be opened (a full disk): their calls fail until they can.
    let views = api::audit_views(cfg.apis.as_deref());
    let audit = match Audit::start(&cfg.data, store.durability(), views) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("cannot start the audit thread: {e}");
            return ExitCode::from(2);
        }
    };
    let ingest = match IngestService::start(&cfg.data, store.durability(), IngestLimits::default())
    {
        Ok(i) => i,
        Err(e) => {
            tracing::error!("cannot start the ingest thread: {e}");
            return ExitCode::from(2);
        }
    };

    let accounts = match open_accounts(&cfg) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let core = Arc::new(Core::new(
        store, settings, pool, accounts, events, webhooks, audit, ingest,
    ));
    if let Err(e) = crate::core::webhooks::start(core.clone()) {
        tracing::error!("cannot start webhook deliveries: {e}");
        return ExitCode::from(1);
    }
    // Directories indexed in place: the first scan starts now, in the background.
    let scanner = match crate::core::scan::start(core.clone(), cfg.scan.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let result = server::workers::run(cfg, core, router);
    if let Some(s) = scanner {
        s.stop();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("server failed: {e}");
            ExitCode::from(1)
        }
    }
}

fn open_accounts(cfg: &Config) -> Result<Accounts, String> {
    open_accounts_in(&cfg.data, cfg.access_token_ttl)
}

/// The signing key of access tokens (`<data>/jwt.key`, mode 0600, created at first
/// start) and the password hasher.
pub(crate) fn open_accounts_in(
    data: &std::path::Path,
    access_ttl: std::time::Duration,
) -> Result<Accounts, String> {
    use crate::core::auth::credentials::{HashParams, PasswordHasher};
    use crate::core::auth::jwt::JwtKey;
    let key = JwtKey::load_or_create(&data.join("jwt.key"))
        .map_err(|e| format!("cannot load or create the token signing key: {e}"))?;
    let hasher = PasswordHasher::new(HashParams::default())
        .map_err(|e| format!("cannot set up password hashing: {e}"))?;
    Ok(Accounts::new(key, hasher, access_ttl))
}
