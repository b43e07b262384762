//! `GET /realtime`: Media Vault's WebSocket, a translation of the core's change feed.
//!
//! - The socket opens without credentials; the client then sends
//!   `{"type":"auth","token":"<JWT or API key>"}` and
//!   `{"type":"subscribe","channel":"media_updates","resource_id"?}`, typically
//!   back to back without waiting: messages are handled strictly in order, each
//!   acknowledged with `{"type":"ack","action":"auth"|"subscribe",...}`.
//! - A bad token, or a `subscribe` before a valid `auth`, is answered
//!   `{"type":"error","error":"unauthorized"}` at once and the socket is closed (1008);
//!   no event is ever sent to an unauthenticated socket.
//! - Events: the core's object events of the [`NAMESPACE`] namespace whose owner is the
//!   authenticated user (the core's visibility rule, narrowed to "my media": admins
//!   too get only their own here), as `{"type":"media.uploaded"|"media.updated"|
//!   "media.deleted","channel":"media_updates","resource_id","data":{"id",...},
//!   "timestamp"}`. A subscription without `resource_id` gets all of them; one with
//!   it gets that item's events, its deletion included. Events count from the auth
//!   (news, not history).
//! - `{"type":"unsubscribe",...}` drops a subscription; `{"type":"ping"}` gets
//!   `{"type":"pong"}`; anything else gets an `error` frame and the socket stays open.
//! - Slow readers are closed with 1008, shutdown closes with 1001 (the session layer's
//!   rules, as for every feed).

use ringbox_protocol::websocket::close_code;
use serde_json::{json, Value};

use super::{media_type, NAMESPACE};
use crate::core::events::{EventFilter, EventStream, StreamItem};
use crate::core::Caller;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::websocket::{self, Incoming, WebSocket};
use crate::store::EventRecord;
use crate::util::hex;
use crate::util::time::rfc3339_ms;

/// The one channel the seed names.
pub const CHANNEL: &str = "media_updates";
/// Most subscriptions one socket holds.
const MAX_SUBSCRIPTIONS: usize = 256;

/// `GET /realtime`
pub async fn ws(ctx: Ctx<'_>) -> HandlerResult {
    let filter = EventFilter {
        types: vec!["object".into()],
        namespace: Some(NAMESPACE.into()),
    };
    // Opened before the 101 as the anonymous caller; the `auth` message makes the
    // token's holder its reader (and nothing is forwarded before that).
    let stream = ctx
        .svc
        .events_stream_from_now(Caller::anonymous(ctx.req.caller.ip), filter)?;
    websocket::accept(
        ctx.req.head,
        &ctx.svc.settings.limits,
        ctx.svc.settings.ws_max_queued,
        move |ws| session(ws, stream),
    )
}

/// The seed's name of a core object event.
pub(super) fn event_type(kind: &str) -> Option<&'static str> {
    match kind {
        "object.created" => Some("media.uploaded"),
        "object.updated" | "object.content_set" => Some("media.updated"),
        "object.deleted" => Some("media.deleted"),
        "object.lost" => Some("media.lost"),
        _ => None,
    }
}

/// What a socket has asked for.
#[derive(Debug, Default)]
pub(super) struct State {
    /// The authenticated user.
    pub user: Option<String>,
    /// Subscriptions: `None` = all of the user's media, `Some(id)` = one item.
    pub subs: Vec<Option<String>>,
}

impl State {
    /// The frame for `ev`, if this socket gets it.
    pub fn message(&self, ev: &EventRecord) -> Option<Value> {
        let user = self.user.as_deref()?;
        let o = ev.object.as_ref().filter(|o| o.namespace == NAMESPACE)?;
        if ev.owner.as_deref() != Some(user) {
            return None;
        }
        let id = o.id.to_string();
        if !self
            .subs
            .iter()
            .any(|s| s.as_deref().is_none_or(|r| r == id))
        {
            return None;
        }
        let kind = event_type(&ev.kind)?;
        Some(json!({
            "type": kind,
            "channel": CHANNEL,
            "resource_id": id,
            "data": {
                "id": id,
                "filename": o.name,
                "type": media_type(&o.mime_type),
                "mime_type": o.mime_type,
                "size": o.size,
                "sha256": o.sha256.map(|s| hex::encode(&s)),
                "user_id": user,
            },
            "timestamp": rfc3339_ms(ev.at_ms),
        }))
    }
}

/// What to do after a client message.
#[derive(Debug, PartialEq)]
pub(super) enum Reply {
    /// Send this frame and go on.
    Send(Value),
    /// Send this frame, then close with 1008.
    Refuse(Value),
}

fn unauthorized() -> Reply {
    Reply::Refuse(json!({ "type": "error", "error": "unauthorized" }))
}

/// Handle one text message; `auth` checks a token (and makes its holder the feed's
/// reader), returning the user id when it is valid.
pub(super) fn handle(
    state: &mut State,
    text: &str,
    auth: &mut dyn FnMut(&str) -> Option<String>,
) -> Reply {
    let Ok(Value::Object(m)) = serde_json::from_str::<Value>(text) else {
        return Reply::Send(json!({ "type": "error", "error": "invalid_message",
            "message": "send JSON objects like {\"type\":\"auth\",\"token\":\"...\"}" }));
    };
    match m.get("type").and_then(Value::as_str).unwrap_or("") {
        "auth" => {
            let token = m.get("token").and_then(Value::as_str).unwrap_or("");
            match (!token.is_empty()).then(|| auth(token)).flatten() {
                Some(user) => {
                    state.user = Some(user.clone());
                    Reply::Send(json!({ "type": "ack", "action": "auth", "user_id": user }))
                }
                None => unauthorized(),
            }
        }
        "subscribe" | "unsubscribe" if state.user.is_none() => unauthorized(),
        t @ ("subscribe" | "unsubscribe") => {
            let channel = m.get("channel").and_then(Value::as_str).unwrap_or(CHANNEL);
            if channel != CHANNEL {
                return Reply::Send(json!({ "type": "error", "error": "unknown_channel",
                    "message": format!("the only channel is {CHANNEL}") }));
            }
            let rid = match m.get("resource_id") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Reply::Send(json!({ "type": "error", "error": "invalid_message",
                        "message": "resource_id must be a string" }))
                }
            };
            if t == "subscribe" {
                if !state.subs.contains(&rid) {
                    if state.subs.len() >= MAX_SUBSCRIPTIONS {
                        return Reply::Send(
                            json!({ "type": "error", "error": "too_many_subscriptions" }),
                        );
                    }
                    state.subs.push(rid.clone());
                }
            } else {
                state.subs.retain(|s| *s != rid);
            }
            Reply::Send(
                json!({ "type": "ack", "action": t, "channel": CHANNEL, "resource_id": rid }),
            )
        }
        "ping" => Reply::Send(json!({ "type": "pong" })),
        _ => Reply::Send(json!({ "type": "error", "error": "unknown_type",
            "message": "message types are auth, subscribe, unsubscribe and ping" })),
    }
}

/// One client.
async fn session(ws: WebSocket, mut stream: EventStream) {
    const TOO_SLOW: &str = "too slow; reconnect and list /api/v1/media";
    let mut state = State::default();
    loop {
        monoio::select! {
            item = stream.next() => match item {
                Ok(StreamItem::Event(ev)) => {
                    let Some(m) = state.message(&ev) else { continue };
                    if ws.send_text(&m.to_string()).is_err() {
                        ws.close(close_code::POLICY_VIOLATION, TOO_SLOW).await;
                        return;
                    }
                }
                Ok(StreamItem::Lagged { .. }) => {
                    ws.close(close_code::POLICY_VIOLATION, TOO_SLOW).await;
                    return;
                }
                Ok(StreamItem::Closed) => {
                    ws.close(close_code::GOING_AWAY, "the server is shutting down").await;
                    return;
                }
                Err(e) => {
                    ws.close(close_code::INTERNAL_ERROR, &e.message).await;
                    return;
                }
            },
            msg = ws.recv() => match msg {
                Incoming::Text(t) => {
                    let mut auth = |token: &str| match stream.authenticate(token.as_bytes()) {
                        Ok(Some(c)) => c.user().map(str::to_string),
                        Ok(None) => None,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot check a realtime token");
                            None
                        }
                    };
                    match handle(&mut state, &t, &mut auth) {
                        Reply::Send(v) => {
                            if ws.send_text(&v.to_string()).is_err() {
                                ws.close(close_code::POLICY_VIOLATION, TOO_SLOW).await;
                                return;
                            }
                        }
                        Reply::Refuse(v) => {
                            let _ = ws.send_text(&v.to_string());
                            ws.close(close_code::POLICY_VIOLATION, "unauthorized").await;
                            return;
                        }
                    }
                }
                Incoming::Binary(_) => {}
                Incoming::Closed(_) => {
                    ws.close(close_code::NORMAL, "").await;
                    return;
                }
                Incoming::Failed(code, reason) => {
                    ws.close(code, &reason).await;
                    return;
                }
            },
            _ = ws.shutdown() => {
                ws.close(close_code::GOING_AWAY, "the server is shutting down").await;
                return;
            }
        }
    }
}
