//! Connection upgrades: a handler may answer `101 Switching Protocols` with an
//! [`OnUpgrade`] callback; after the 101 head is written, the connection hands the
//! socket over to it as an [`Upgraded`] and the callback's future becomes the rest of
//! the connection's life (a WebSocket session, say).
//!
//! The socket comes split into an owned read half and an owned write half, so a
//! session can keep one read in flight in a task of its own while it waits for
//! messages from other threads: nothing is ever cancelled mid-read, so no byte is lost.
//! `leftover` holds bytes the client sent right after its request head (already read).
//! `shutdown` resolves when the server starts shutting down; a session then closes
//! (WebSocket close code 1001).

use std::future::Future;
use std::io;
use std::pin::Pin;

/// A boxed future borrowing its receiver.
pub type IoFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// The read half of an upgraded connection.
pub trait UpgradedRead {
    /// Read into the spare capacity of `buf` (appending); `Ok(0)` is end of stream.
    fn read(&mut self, buf: Vec<u8>) -> IoFuture<'_, (io::Result<usize>, Vec<u8>)>;
}

/// The write half of an upgraded connection.
pub trait UpgradedWrite {
    /// Write all of `buf` (bounded by the server's write timeout); returns it for reuse.
    fn write_all(&mut self, buf: Vec<u8>) -> IoFuture<'_, (io::Result<()>, Vec<u8>)>;
    /// Half-close the connection (after a close frame).
    fn shutdown(&mut self) -> IoFuture<'_, io::Result<()>>;
}

/// The connection after the 101.
pub struct Upgraded {
    pub leftover: Vec<u8>,
    pub read: Box<dyn UpgradedRead>,
    pub write: Box<dyn UpgradedWrite>,
    /// Resolves when the server shuts down.
    pub shutdown: Pin<Box<dyn Future<Output = ()>>>,
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("leftover", &self.leftover.len())
            .finish_non_exhaustive()
    }
}

/// What takes the connection over after a 101.
pub type OnUpgrade = Box<dyn FnOnce(Upgraded) -> Pin<Box<dyn Future<Output = ()>>>>;
