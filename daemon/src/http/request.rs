//! What a handler gets: a neutral [`Request`] (the parsed head, the decoded path
//! parameters, the caller) and the request body as a [`ByteStream`], in a [`Ctx`]
//! together with the worker's core services. Handlers never see the connection, so
//! they can be driven with in-memory bodies in tests.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use ringbox_protocol::head::RequestHead;

use crate::core::stream::ByteStream;
use crate::core::{Caller, Local};
use crate::http::errors::ApiError;
use crate::http::response::Response;
use crate::util::query::Query;

/// The most path parameters a route may have.
pub const MAX_PARAMS: usize = 4;

/// Decoded path parameters, in pattern order.
#[derive(Debug, Default, Clone)]
pub struct Params<'a> {
    values: [Cow<'a, str>; MAX_PARAMS],
    len: usize,
}

impl<'a> Params<'a> {
    pub(crate) fn push(&mut self, v: Cow<'a, str>) -> bool {
        if self.len == MAX_PARAMS {
            return false;
        }
        self.values[self.len] = v;
        self.len += 1;
        true
    }

    /// The `i`-th parameter ("" when the route has fewer).
    pub fn get(&self, i: usize) -> &str {
        if i < self.len {
            &self.values[i]
        } else {
            ""
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }
}

/// A request as handlers see it.
#[derive(Debug)]
pub struct Request<'a> {
    pub head: &'a RequestHead,
    pub params: Params<'a>,
    pub caller: Caller,
    /// What authenticated the caller (an API token or a session's access token).
    pub credential: Option<crate::core::identity::CredentialKind>,
}

impl Request<'_> {
    /// The `i`-th decoded path parameter.
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i)
    }

    /// The decoded query string; a bad escape is a 400 naming the parameter.
    pub fn query(&self) -> Result<Query, ApiError> {
        Query::parse(self.head.query()).map_err(|p| {
            ApiError::bad_request(format!(
                "query parameter `{p}` is not valid percent-encoded UTF-8"
            ))
        })
    }

    /// A header as UTF-8 text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header_str(name)
    }

    /// The request's media type (lower case, without parameters) and its full
    /// `Content-Type`.
    pub fn content_type(&self) -> (String, &str) {
        let ct = self.head.header_str("content-type").unwrap_or("");
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        (media, ct)
    }
}

/// Everything a handler gets.
pub struct Ctx<'a> {
    pub svc: &'a Local,
    pub req: Request<'a>,
    pub body: &'a mut dyn ByteStream,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx").field("req", &self.req).finish()
    }
}

/// What a handler returns.
pub type HandlerResult = Result<Response, ApiError>;
/// The boxed future of a handler (one allocation per request).
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = HandlerResult> + 'a>>;
/// A route's handler: a plain function, so route tables are static data.
pub type Handler = for<'a> fn(Ctx<'a>) -> HandlerFuture<'a>;

/// Turn an `async fn(Ctx<'_>) -> HandlerResult` into a [`Handler`].
#[macro_export]
macro_rules! handler {
    ($f:path) => {{
        fn h<'a>(ctx: $crate::http::request::Ctx<'a>) -> $crate::http::request::HandlerFuture<'a> {
            Box::pin($f(ctx))
        }
        h as $crate::http::request::Handler
    }};
}
