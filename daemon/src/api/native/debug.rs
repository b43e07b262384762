//! Fault-injection routes for the test suite, compiled into debug builds only and
//! mounted only when the environment variable `RINGBOX_TEST_HOOKS=1` is set, so no
//! release binary and no normal start has them:
//!
//! - `POST /v1/_debug/panic`: the handler panics (the fault isolation answers 500 and
//!   the worker keeps serving).

use crate::http::router::Route;

#[cfg(debug_assertions)]
pub fn routes() -> Vec<Route> {
    use crate::handler;
    use crate::http::request::{Ctx, HandlerResult};
    use crate::http::router::Access;
    use ringbox_protocol::head::Method;

    async fn panic(_ctx: Ctx<'_>) -> HandlerResult {
        panic!("test hook: a handler panics on purpose");
    }

    if std::env::var("RINGBOX_TEST_HOOKS").as_deref() != Ok("1") {
        return Vec::new();
    }
    vec![Route::new(
        Method::Post,
        "/v1/_debug/panic",
        Access::Write,
        handler!(panic),
    )]
}

#[cfg(not(debug_assertions))]
pub fn routes() -> Vec<Route> {
    Vec::new()
}
