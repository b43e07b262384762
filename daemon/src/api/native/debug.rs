//! Fault-injection routes for the test suite, compiled into debug builds only and
//! mounted only when the environment variable `RINGBOX_TEST_HOOKS=1` is set, so no
//! release binary and no normal start has them:
//!
//! - `POST /v1/_debug/panic`: the handler panics (the fault isolation answers 500 and
//!   the worker keeps serving).
//! - `POST /v1/_debug/writer-panic`: the writer thread panics inside a batch (the
//!   batch fails with 500, the writer goes on with the next one).

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

    async fn writer_panic(ctx: Ctx<'_>) -> HandlerResult {
        let r = ctx
            .svc
            .store
            .writer()
            .submit(crate::store::Command::DebugPanic)
            .await;
        Err(match r {
            Ok(_) => crate::http::errors::ApiError::internal("the writer did not panic"),
            Err(e) => crate::core::CoreError::from(e).into(),
        })
    }

    if std::env::var("RINGBOX_TEST_HOOKS").as_deref() != Ok("1") {
        return Vec::new();
    }
    vec![
        Route::new(
            Method::Post,
            "/v1/_debug/panic",
            Access::Write,
            handler!(panic),
        ),
        Route::new(
            Method::Post,
            "/v1/_debug/writer-panic",
            Access::Write,
            handler!(writer_panic),
        ),
    ]
}

#[cfg(not(debug_assertions))]
pub fn routes() -> Vec<Route> {
    Vec::new()
}
