//! `ringbox user ...` and `ringbox token ...`: account administration from the shell,
//! working whether the server runs or not.
//!
//! - While a server runs on the data directory (it writes its address to
//!   `<data>/server.addr` and holds the directory's lock), the command calls its HTTP
//!   API with the admin token from `<data>/admin.token`, so the change takes effect on
//!   every worker at once (revocations included).
//! - Otherwise it opens the store itself and calls the same core services (the rules
//!   are the same: they live in the core), with the built-in admin as the caller.
//!
//! Output is one JSON document on stdout; errors go to stderr with exit code 1 (refused)
//! or 2 (could not run).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::{json, Value};

use crate::core::access::Caller;
use crate::core::pool::BlockingPool;
use crate::core::users::{NewUser, UserUpdate};
use crate::core::{CoreError, Local};
use crate::store::{Principal, Role, Store, StoreConfig, ADMIN_USER};

/// `ringbox user ...`
#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user; prints it with its first API token.
    Add {
        username: String,
        /// `user` (default) or `admin`.
        #[arg(long, default_value = "user")]
        role: String,
        /// Read the password from the first line of standard input (else it is
        /// asked for, or taken from RINGBOX_PASSWORD).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Set a user's password.
    Passwd {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user: every credential stops working; their objects are deleted.
    Delete { username: String },
}

/// `ringbox token ...`
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create an API token (for the admin, or `--user`); prints the secret once.
    Create {
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value = "")]
        label: String,
        /// e.g. 30d, 12h, or seconds.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List API tokens (no secrets).
    List {
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an API token by its id.
    Revoke {
        id: String,
        #[arg(long)]
        user: Option<String>,
    },
}

/// What to do, in terms both paths (HTTP and offline) understand.
enum Op {
    UserAdd {
        username: String,
        role: Role,
        password: String,
    },
    UserList,
    Passwd {
        username: String,
        password: String,
    },
    UserDelete {
        username: String,
    },
    TokenCreate {
        user: Option<String>,
        label: String,
        expires_in: Option<String>,
    },
    TokenList {
        user: Option<String>,
    },
    TokenRevoke {
        id: String,
        user: Option<String>,
    },
}

fn read_password(from_stdin: bool) -> Result<String, String> {
    if let Ok(p) = std::env::var("RINGBOX_PASSWORD") {
        return Ok(p);
    }
    if !from_stdin {
        let mut err = std::io::stderr();
        let _ = write!(err, "password: ");
        let _ = err.flush();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn print(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v:#}");
}

/// Run a `user` subcommand.
pub fn user(data: &Path, cmd: UserCmd) -> ExitCode {
    let op = match cmd {
        UserCmd::Add {
            username,
            role,
            password_stdin,
        } => {
            let role = match role.as_str() {
                "admin" => Role::Admin,
                "user" => Role::User,
                other => return fail(2, format!("--role must be user or admin, not {other}")),
            };
            match read_password(password_stdin) {
                Ok(password) => Op::UserAdd {
                    username,
                    role,
                    password,
                },
                Err(e) => return fail(2, e),
            }
        }
        UserCmd::List => Op::UserList,
        UserCmd::Passwd {
            username,
            password_stdin,
        } => match read_password(password_stdin) {
            Ok(password) => Op::Passwd { username, password },
            Err(e) => return fail(2, e),
        },
        UserCmd::Delete { username } => Op::UserDelete { username },
    };
    run(data, op)
}

/// Run a `token` subcommand.
pub fn token(data: &Path, cmd: TokenCmd) -> ExitCode {
    let op = match cmd {
        TokenCmd::Create {
            user,
            label,
            expires_in,
        } => Op::TokenCreate {
            user,
            label,
            expires_in,
        },
        TokenCmd::List { user } => Op::TokenList { user },
        TokenCmd::Revoke { id, user } => Op::TokenRevoke { id, user },
    };
    run(data, op)
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    tracing::error!("{msg}");
    ExitCode::from(code)
}

fn run(data: &Path, op: Op) -> ExitCode {
    let addr_file = data.join("server.addr");
    let result = match std::fs::read_to_string(&addr_file) {
        Ok(addr) if std::net::TcpStream::connect(addr.trim()).is_ok() => {
            let token = match std::fs::read_to_string(data.join("admin.token")) {
                Ok(t) => t.trim().to_string(),
                Err(e) => {
                    return fail(
                        2,
                        format!("cannot read {}: {e}", data.join("admin.token").display()),
                    )
                }
            };
            over_http(addr.trim(), &token, op)
        }
        _ => offline(data, op),
    };
    match result {
        Ok(v) => {
            print(&v);
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, e),
    }
}

/// Through the running server's HTTP API.
fn over_http(addr: &str, token: &str, op: Op) -> Result<Value, String> {
    let base = format!("http://{addr}");
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(30))
        .build();
    let auth = format!("Bearer {token}");
    let call = |method: &str, path: &str, body: Option<Value>| -> Result<Value, String> {
        let req = agent
            .request(method, &format!("{base}{path}"))
            .set("Authorization", &auth);
        let resp = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => {
                let v: Value = r
                    .into_string()
                    .ok()
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null);
                return Err(v["error"]["message"]
                    .as_str()
                    .unwrap_or("the server refused")
                    .to_string());
            }
            Err(e) => return Err(format!("cannot reach the server at {addr}: {e}")),
        };
        if resp.status() == 204 {
            return Ok(json!({"ok": true}));
        }
        let text = resp.into_string().map_err(|e| e.to_string())?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    };
    let enc = |s: &str| crate::util::query::encode_component(s);
    match op {
        Op::UserAdd {
            username,
            role,
            password,
        } => call(
            "POST",
            "/v1/users",
            Some(json!({"username": username, "password": password, "role": role.as_str()})),
        ),
        Op::UserList => call("GET", "/v1/users?limit=1000", None),
        Op::Passwd { username, password } => call(
            "PATCH",
            &format!("/v1/users/{}", enc(&username)),
            Some(json!({ "password": password })),
        ),
        Op::UserDelete { username } => {
            call("DELETE", &format!("/v1/users/{}", enc(&username)), None)
        }
        Op::TokenCreate {
            user,
            label,
            expires_in,
        } => call(
            "POST",
            "/v1/tokens",
            Some(json!({"user": user, "label": label, "expires_in": expires_in})),
        ),
        Op::TokenList { user } => call(
            "GET",
            &format!("/v1/tokens?user={}", enc(user.as_deref().unwrap_or(""))),
            None,
        ),
        Op::TokenRevoke { id, user } => call(
            "DELETE",
            &format!(
                "/v1/tokens/{}?user={}",
                enc(&id),
                enc(user.as_deref().unwrap_or(""))
            ),
            None,
        ),
    }
}

/// With the store opened here (no server runs on the directory).
fn offline(data: &Path, op: Op) -> Result<Value, String> {
    let store = Store::open(StoreConfig::new(PathBuf::from(data)))
        .map_err(|e| format!("cannot open the data directory {}: {e}", data.display()))?;
    let accounts = crate::open_accounts_in(data, std::time::Duration::from_secs(3600))?;
    let store_durability = store.durability();
    let pool = BlockingPool::new(1, 16).map_err(|e| e.to_string())?;
    let core = Arc::new(crate::core::Core::new(
        store,
        crate::core::Settings::default(),
        pool,
        accounts,
        Arc::new(crate::core::events::EventHub::default()),
        Arc::new(crate::core::webhooks::Webhooks::new(Default::default())),
        crate::core::Audit::start(data, store_durability, Vec::new())
            .map_err(|e| format!("cannot start the audit log: {e}"))?,
        crate::core::IngestService::start(
            data,
            store_durability,
            crate::core::ingest::Limits::default(),
        )
        .map_err(|e| format!("cannot start the ingest engine: {e}"))?,
    ));
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async move {
        let svc = Local::new(core);
        let admin = Caller {
            principal: Some(Principal {
                user: ADMIN_USER.into(),
                role: Role::Admin,
            }),
            ip: None,
        };
        run_core(&svc, &admin, op).await.map_err(|e| e.message)
    })
}

async fn run_core(svc: &Local, admin: &Caller, op: Op) -> Result<Value, CoreError> {
    use crate::api::native::accounts::{token_json, user_json};
    let quota = svc.settings.default_quota;
    Ok(match op {
        Op::UserAdd {
            username,
            role,
            password,
        } => {
            let (user, token) = svc
                .create_user(
                    admin,
                    NewUser {
                        username,
                        password,
                        role,
                        display_name: None,
                        quota_bytes: None,
                    },
                )
                .await?;
            let mut v = user_json(&user, quota);
            v["token"] = Value::String(token.secret);
            v
        }
        Op::UserList => {
            let (users, _) = svc.list_users(admin, None, 1000)?;
            json!({ "users": users.iter().map(|u| user_json(u, quota)).collect::<Vec<_>>() })
        }
        Op::Passwd { username, password } => user_json(
            &svc.update_user(
                admin,
                &username,
                UserUpdate {
                    password: Some(password),
                    ..UserUpdate::default()
                },
            )
            .await?,
            quota,
        ),
        Op::UserDelete { username } => {
            let u = svc.delete_user(admin, &username).await?;
            // Offline, the background deletion of the user's objects must finish
            // before the process exits.
            while !svc
                .store
                .list_owner_by_time(&u.id, false, None, 1)?
                .objects
                .is_empty()
            {
                monoio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            json!({"ok": true})
        }
        Op::TokenCreate {
            user,
            label,
            expires_in,
        } => {
            let ttl = match expires_in.as_deref() {
                None => None,
                Some(s) => Some(crate::util::time::parse_ttl(s).ok_or_else(|| {
                    CoreError::invalid("--expires-in must be seconds or like 30m, 12h, 7d")
                })?),
            };
            let t = svc
                .create_token(admin, user.as_deref(), &label, ttl)
                .await?;
            let mut v = token_json(&t.record);
            v["token"] = Value::String(t.secret);
            v
        }
        Op::TokenList { user } => {
            let tokens = svc.list_tokens(admin, user.as_deref())?;
            json!({ "tokens": tokens.iter().map(token_json).collect::<Vec<_>>() })
        }
        Op::TokenRevoke { id, user } => {
            svc.revoke_token(admin, user.as_deref(), &id).await?;
            json!({"ok": true})
        }
    })
}
