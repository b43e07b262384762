//! Sockets and threads: the worker runtimes and their listeners (`workers`), one
//! connection's request loop and its body stream (`conn`), writing responses
//! (`send`), handing an upgraded connection to a session (`upgraded`), and the
//! per-worker shutdown signal (`shutdown`). Nothing outside this module (but the
//! composition root, `main.rs`) names it: handlers see the HTTP layer's neutral types.
pub mod conn;
pub mod send;
pub mod shutdown;
#[allow(dead_code)] // see http::upgrade
pub mod upgraded;
pub mod workers;
