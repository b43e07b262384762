//! The change feed of the native API: `GET /v1/events`, as pages of JSON, or, with
//! `Upgrade: websocket`, as a live stream. A mount of its own because it also takes
//! the token from the query string (`?token=`): browsers cannot set headers on a
//! WebSocket handshake. Errors are the native shape.
//!
//! Query parameters (both forms): `since` (a sequence number; 0 = from the start),
//! `types` (comma-separated types or families: `object.created,user`), `namespace`,
//! and for pages `limit` (1-1000, default 100).
//!
//! The stream sends each event as one JSON text frame (the same object as in pages),
//! first every stored event after `since`, then live ones, in order, without gaps or
//! duplicates. A client that falls behind is closed with 1008 and a reason naming the
//! `since` to resume from; at shutdown the server closes with 1001.

use ringbox_protocol::head::Method;
use ringbox_protocol::websocket::close_code;
use serde_json::json;

use crate::core::events::{event_json, event_text, EventFilter, StreamItem};
use crate::handler;
use crate::http::auth::AuthScheme;
use crate::http::errors::{render_native, ApiError};
use crate::http::ratelimit::RateTiers;
use crate::http::request::{Ctx, HandlerResult};
use crate::http::response::Response;
use crate::http::router::{Access, Mount, Route};
use crate::http::websocket::{self, Incoming, WebSocket};

/// The events mount (at `/`).
pub fn mount() -> Mount {
    Mount {
        api: "events",
        prefix: String::new(),
        routes: vec![Route::new(
            Method::Get,
            "/v1/events",
            Access::Read,
            handler!(events),
        )],
        auth: vec![AuthScheme::Bearer, AuthScheme::QueryToken("token")],
        render: render_native,
        rate: RateTiers::NONE,
    }
}

fn filter_of(q: &crate::util::query::Query) -> Result<EventFilter, ApiError> {
    let types = q
        .get("types")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(EventFilter {
        types,
        namespace: q
            .get("namespace")
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    })
}

fn since_of(q: &crate::util::query::Query) -> Result<u64, ApiError> {
    match q.get("since") {
        None | Some("") => Ok(0),
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::bad_request("since must be a sequence number (0 = from the start)")
        }),
    }
}

/// `GET /v1/events`
async fn events(ctx: Ctx<'_>) -> HandlerResult {
    let q = ctx.req.query()?;
    let since = since_of(&q)?;
    let filter = filter_of(&q)?;
    if ctx.req.head.upgrade().is_some() {
        // Checked now (a trimmed `since` is a 410 before the switch).
        let stream = ctx
            .svc
            .events_stream(ctx.req.caller.clone(), since, filter)?;
        return websocket::accept(
            ctx.req.head,
            &ctx.svc.settings.limits,
            ctx.svc.settings.ws_max_queued,
            move |ws| session(ws, stream),
        );
    }
    let limit = match q.get("limit") {
        None => 100,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 1000"))?,
    };
    let page = ctx
        .svc
        .events_page(&ctx.req.caller, since, limit, &filter)?;
    let events: Vec<_> = page.events.iter().map(event_json).collect();
    Ok(Response::json(
        200,
        &json!({ "events": events, "next_since": page.next_since }),
    ))
}

/// One subscriber: forward the stream, answer what the client sends, close cleanly.
async fn session(ws: WebSocket, mut stream: crate::core::events::EventStream) {
    loop {
        monoio::select! {
            item = stream.next() => match item {
                Ok(StreamItem::Event(ev)) => {
                    if ws.send_text(&event_text(&ev)).is_err() {
                        let reason = format!("too slow; resume with since={}", stream.position().saturating_sub(1));
                        ws.close(close_code::POLICY_VIOLATION, &reason).await;
                        return;
                    }
                }
                Ok(StreamItem::Lagged { since }) => {
                    ws.close(close_code::POLICY_VIOLATION, &format!("too slow; resume with since={since}")).await;
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
                Incoming::Text(_) | Incoming::Binary(_) => {}
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
