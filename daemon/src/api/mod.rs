//! From a parsed request to a [`Response`]: route, authorize, check the body size,
//! then call the handler. Handlers are thin: they turn the request into calls on the
//! store and render the result in their API's JSON shape. The native `/v1` API lives
//! in `native`; each seed dialect will be a sibling module with its own routes.

pub mod native;

use ringbox_protocol::head::{BodyFraming, RequestHead};

use crate::http::auth;
use crate::http::errors::ApiError;
use crate::http::response::Response;
use crate::http::router::{self, Matched, RouteError, RouteId};
use crate::server::conn::ConnIo;
use crate::server::workers::Worker;
use crate::store::Principal;

/// Everything a handler gets.
pub struct Ctx<'a> {
    pub w: &'a Worker,
    pub head: &'a RequestHead,
    pub io: &'a mut ConnIo,
    pub route: Matched<'a>,
    /// The caller; None when anonymous access let them in.
    pub principal: Option<Principal>,
}

/// Answer one request. Returns the response and the route's metrics label.
pub async fn dispatch(w: &Worker, head: &RequestHead, io: &mut ConnIo) -> (Response, &'static str) {
    let route = match router::route(head.method(), head.path()) {
        Ok(m) => m,
        Err(RouteError::NotFound) => {
            let e = ApiError::new(
                404,
                "not_found",
                format!("no route for {}; see the README for the API", head.path()),
            );
            return (e.into_response(), router::UNMATCHED);
        }
        Err(RouteError::MethodNotAllowed { allow }) => {
            let e = ApiError::new(
                405,
                "method_not_allowed",
                format!(
                    "{} is not allowed here; allowed: {allow}",
                    head.method_str()
                ),
            )
            .with_header("Allow", allow);
            return (e.into_response(), router::UNMATCHED);
        }
    };
    let name = route.name;
    let principal =
        match auth::authorize(head, route.access, w.cfg().anonymous, w.store(), &w.tokens) {
            Ok(p) => p,
            Err(e) => return (e.into_response(), name),
        };
    // Refuse an oversized body before reading it (and before `100 Continue`).
    if let BodyFraming::ContentLength(n) = head.framing() {
        if n > w.cfg().max_body {
            return (
                ApiError::payload_too_large(w.cfg().max_body).into_response(),
                name,
            );
        }
    }
    let ctx = Ctx {
        w,
        head,
        io,
        route,
        principal,
    };
    let result = match route.id {
        RouteId::Healthz => native::healthz(),
        RouteId::Metrics => native::metrics(),
        RouteId::Objects => native::objects(ctx).await,
        RouteId::Object => native::object(ctx).await,
        RouteId::ObjectContent => native::object_content(ctx).await,
        RouteId::Blob => native::blob(ctx).await,
    };
    (result.unwrap_or_else(ApiError::into_response), name)
}
