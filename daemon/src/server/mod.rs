//! Sockets and threads: the worker runtimes and their listeners (`workers`), one
//! connection's request loop (`conn`), reading request bodies (`body` lives in
//! `conn::ConnIo`), writing responses (`send`), the per-worker blob read cache
//! (`blob_cache`), and signal handling (`signals`).
pub mod blob_cache;
pub mod conn;
pub mod hot_cache;
pub mod send;
pub mod shutdown;
pub mod sys;
pub mod workers;
