//! `GET /ws`: Metaclip's WebSocket of item notifications, a translation of the core's
//! change feed (the same stream `/v1/events` sends), not a mechanism of its own.
//!
//! - The subscription starts at the current end of the event log: Metaclip clients
//!   expect news, not history (a reconnecting client re-reads `GET /items`).
//! - It keeps `object.created` and `object.deleted` of the `metaclip` namespace that
//!   the caller may see (the core's visibility rules: their own items, or all of them
//!   in the anonymous modes and for admins).
//! - Each becomes one JSON text frame: `{"type":"created","item_id":"...","item":
//!   {"id","type","content"}}` (the item as `GET /items/{id}` shows it, left out when
//!   it is already gone) or `{"type":"deleted","item_id":"..."}`.
//! - A client's `{"type":"ping"}` text message is answered `{"type":"pong"}`; other
//!   messages are ignored. WebSocket-level pings get pongs from the session layer,
//!   which also pings an idle client every 30 s.
//! - A client that does not read its messages is closed with 1008 (it re-reads
//!   `GET /items` when it reconnects); shutdown closes with 1001.

use ringbox_protocol::websocket::close_code;
use serde_json::{json, Value};

use super::{item_json, NAMESPACE};
use crate::core::events::{EventFilter, EventStream, StreamItem};
use crate::http::request::{Ctx, HandlerResult};
use crate::http::websocket::{self, Incoming, WebSocket};
use crate::store::EventRecord;

/// `GET /ws`
pub async fn ws(ctx: Ctx<'_>) -> HandlerResult {
    let filter = EventFilter {
        types: vec!["object.created".into(), "object.deleted".into()],
        namespace: Some(NAMESPACE.into()),
    };
    // Subscribed here, before the 101 is sent: an item created once the client has its
    // handshake answer is always notified.
    let stream = ctx
        .svc
        .events_stream_from_now(ctx.req.caller.clone(), filter)?;
    websocket::accept(
        ctx.req.head,
        &ctx.svc.settings.limits,
        ctx.svc.settings.ws_max_queued,
        move |ws| session(ws, stream),
    )
}

/// The Metaclip message for a core event.
fn message(stream: &EventStream, ev: &EventRecord) -> Option<Value> {
    let id = ev.object.as_ref()?.id;
    match ev.kind.as_str() {
        "object.created" => {
            let mut m = json!({ "type": "created", "item_id": id.to_string() });
            match stream.object(id) {
                Ok(Some(rec)) => m["item"] = item_json(&rec),
                Ok(None) => {}
                Err(e) => tracing::warn!(%id, error = %e, "cannot read a created item"),
            }
            Some(m)
        }
        "object.deleted" => Some(json!({ "type": "deleted", "item_id": id.to_string() })),
        _ => None,
    }
}

/// Whether a client's text message is Metaclip's heartbeat `{"type":"ping"}`.
fn is_ping(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|v| v["type"] == "ping")
}

/// One client: forward the translated feed, answer heartbeats, close cleanly.
async fn session(ws: WebSocket, mut stream: EventStream) {
    const TOO_SLOW: &str = "too slow; reload GET /items";
    loop {
        monoio::select! {
            item = stream.next() => match item {
                Ok(StreamItem::Event(ev)) => {
                    let Some(m) = message(&stream, &ev) else { continue };
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
                    if is_ping(&t) && ws.send_text(r#"{"type":"pong"}"#).is_err() {
                        ws.close(close_code::POLICY_VIOLATION, TOO_SLOW).await;
                        return;
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

#[cfg(test)]
mod tests {
    use super::is_ping;

    #[test]
    fn heartbeat_messages() {
        assert!(is_ping(r#"{"type":"ping"}"#));
        assert!(is_ping(r#" {"type": "ping", "at": 1} "#));
        assert!(!is_ping(r#"{"type":"pong"}"#));
        assert!(!is_ping("ping"));
        assert!(!is_ping("[1,2]"));
        assert!(!is_ping(""));
    }
}
