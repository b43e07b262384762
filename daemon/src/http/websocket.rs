//! WebSocket sessions (RFC 6455) over an upgraded connection, on the protocol
//! crate's handshake check and frame codec.
//!
//! [`accept`] checks the handshake and answers `101 Switching Protocols` with an
//! upgrade that starts the session. A session is three parts:
//!
//! - a **reader task** that owns the socket's read half and keeps one read in flight
//!   (never cancelled while the session lives, so no byte is lost); it decodes frames,
//!   answers pings (by queueing pongs), and puts messages in the **inbox**;
//! - a **writer task** that owns the write half and writes what the **outbox** holds,
//!   several frames per write, plus a ping after 30 s without traffic;
//! - the application's loop, which `select!`s over [`WebSocket::recv`] (the inbox),
//!   its own sources (an event subscription) and [`WebSocket::shutdown`], and sends
//!   with [`WebSocket::send_text`], which only queues.
//!
//! Every wait in the application loop is on an in-memory queue, so it is cancel-safe.
//! The outbox is bounded (`MAX_OUTBOX_BYTES`): a client that does not read its
//! messages makes `send_text` fail with [`Lagging`] and the application closes the
//! session (1008 with a reason) instead of buffering without limit. At server shutdown
//! [`WebSocket::shutdown`] resolves and the application closes with 1001.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use ringbox_protocol::head::RequestHead;
use ringbox_protocol::websocket::{
    check_handshake, close_code, encode_close, encode_frame, FrameDecoder, Message,
    MessageAssembler, Opcode, WebSocketError, WEBSOCKET_VERSION,
};
use ringbox_protocol::{HttpError, Limits};

use crate::http::errors::ApiError;
use crate::http::response::Response;
use crate::http::upgrade::{Upgraded, UpgradedRead, UpgradedWrite};

/// Queued outgoing bytes beyond which a session is considered lagging.
pub const MAX_OUTBOX_BYTES: usize = 1 << 20;
/// A ping is sent after this long without any frame written.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// After our Close, how long we wait for the client's before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages read ahead of the application (the reader waits beyond).
const INBOX_MESSAGES: usize = 64;

/// What the application receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    /// The client closed (with its code and reason, if any) or the connection ended.
    Closed(Option<(u16, String)>),
    /// The client broke the protocol; the session must close with this code.
    Failed(u16, String),
}

/// The outbox is full: the client is not reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lagging;

/// A single-threaded queue with one waiting receiver.
struct Queue<T> {
    items: RefCell<VecDeque<T>>,
    recv_waker: RefCell<Option<Waker>>,
    send_waker: RefCell<Option<Waker>>,
    closed: Cell<bool>,
}

impl<T> Queue<T> {
    fn new() -> Rc<Queue<T>> {
        Rc::new(Queue {
            items: RefCell::new(VecDeque::new()),
            recv_waker: RefCell::new(None),
            send_waker: RefCell::new(None),
            closed: Cell::new(false),
        })
    }

    fn push(&self, item: T) {
        self.items.borrow_mut().push_back(item);
        if let Some(w) = self.recv_waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn close(&self) {
        self.closed.set(true);
        if let Some(w) = self.recv_waker.borrow_mut().take() {
            w.wake();
        }
        if let Some(w) = self.send_waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// The next item, or `None` once closed and empty.
    async fn pop(&self) -> Option<T> {
        poll_fn(|cx| {
            if let Some(item) = self.items.borrow_mut().pop_front() {
                if let Some(w) = self.send_waker.borrow_mut().take() {
                    w.wake();
                }
                return Poll::Ready(Some(item));
            }
            if self.closed.get() {
                return Poll::Ready(None);
            }
            *self.recv_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Wait until fewer than `n` items are queued (or the queue closed).
    async fn room(&self, n: usize) {
        poll_fn(|cx| {
            if self.items.borrow().len() < n || self.closed.get() {
                return Poll::Ready(());
            }
            *self.send_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// Frames waiting to be written, with their byte count.
struct Outbox {
    frames: Queue<Vec<u8>>,
    bytes: Cell<usize>,
    /// A Close frame was queued: nothing may follow it.
    closing: Cell<bool>,
}

/// An open WebSocket session, as the application sees it.
pub struct WebSocket {
    inbox: Rc<Queue<Incoming>>,
    outbox: Rc<Outbox>,
    shutdown: Pin<Box<dyn Future<Output = ()>>>,
    shutdown_seen: bool,
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("queued_bytes", &self.outbox.bytes.get())
            .finish_non_exhaustive()
    }
}

/// Check a WebSocket handshake and answer 101; `session` runs once the connection is
/// switched. A request that is not a valid handshake gets 400 (426 with
/// `Sec-WebSocket-Version: 13` for another version).
pub fn accept<F, Fut>(head: &RequestHead, limits: &Limits, session: F) -> Result<Response, ApiError>
where
    F: FnOnce(WebSocket) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let accept_key = check_handshake(head).map_err(|e| {
        let mut err = ApiError::from_protocol(&e);
        err.close = false;
        if e.status() == 426 {
            err = err.with_header("Sec-WebSocket-Version", WEBSOCKET_VERSION);
        }
        err
    })?;
    let limits = limits.clone();
    let mut resp = Response::empty(101);
    resp.header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept_key);
    resp.upgrade = Some(Box::new(move |up: Upgraded| {
        Box::pin(async move {
            let ws = WebSocket::start(up, &limits);
            session(ws).await;
        })
    }));
    Ok(resp)
}

impl WebSocket {
    fn start(up: Upgraded, limits: &Limits) -> WebSocket {
        let inbox = Queue::new();
        let outbox = Rc::new(Outbox {
            frames: Queue::<Vec<u8>>::new_inner(),
            bytes: Cell::new(0),
            closing: Cell::new(false),
        });
        monoio::spawn(read_loop(
            up.read,
            up.leftover,
            limits.clone(),
            inbox.clone(),
            outbox.clone(),
        ));
        monoio::spawn(write_loop(up.write, outbox.clone(), inbox.clone()));
        WebSocket {
            inbox,
            outbox,
            shutdown: up.shutdown,
            shutdown_seen: false,
        }
    }

    /// The next message from the client (cancel-safe).
    pub async fn recv(&self) -> Incoming {
        self.inbox.pop().await.unwrap_or(Incoming::Closed(None))
    }

    /// Resolves when the server is shutting down (then close with 1001).
    pub async fn shutdown(&mut self) {
        if self.shutdown_seen {
            return std::future::pending().await;
        }
        (&mut self.shutdown).await;
        self.shutdown_seen = true;
    }

    /// Queue a text message. `Err(Lagging)` when the client is not reading fast
    /// enough (the application should close with 1008).
    pub fn send_text(&self, text: &str) -> Result<(), Lagging> {
        self.send_frame(Opcode::Text, text.as_bytes())
    }

    fn send_frame(&self, opcode: Opcode, payload: &[u8]) -> Result<(), Lagging> {
        if self.outbox.closing.get() {
            return Ok(());
        }
        if self.outbox.bytes.get() + payload.len() > MAX_OUTBOX_BYTES {
            return Err(Lagging);
        }
        let mut frame = Vec::with_capacity(payload.len() + 10);
        encode_frame(&mut frame, true, opcode, payload, None);
        self.outbox.push(frame);
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.outbox.bytes.get()
    }

    /// Close with `code` and `reason`, then wait (bounded) until the writer has sent
    /// what was queued and the client answered or went away.
    pub async fn close(self, code: u16, reason: &str) {
        self.outbox.close_with(code, reason);
        let _ = monoio::time::timeout(CLOSE_TIMEOUT, async {
            while self.inbox.pop().await.is_some() {}
        })
        .await;
    }
}

impl Queue<Vec<u8>> {
    fn new_inner() -> Queue<Vec<u8>> {
        Queue {
            items: RefCell::new(VecDeque::new()),
            recv_waker: RefCell::new(None),
            send_waker: RefCell::new(None),
            closed: Cell::new(false),
        }
    }
}

impl Outbox {
    fn push(&self, frame: Vec<u8>) {
        self.bytes.set(self.bytes.get() + frame.len());
        self.frames.push(frame);
    }

    fn close_with(&self, code: u16, reason: &str) {
        if self.closing.replace(true) {
            return;
        }
        let mut frame = Vec::new();
        encode_close(&mut frame, code, reason, None);
        self.bytes.set(self.bytes.get() + frame.len());
        self.frames.push(frame);
        self.frames.close();
    }
}

fn failure(e: &WebSocketError) -> Incoming {
    Incoming::Failed(
        e.close_code().unwrap_or(close_code::PROTOCOL_ERROR),
        e.to_string(),
    )
}

/// Read frames until the client closes, the connection ends or the protocol breaks.
async fn read_loop(
    mut read: Box<dyn UpgradedRead>,
    leftover: Vec<u8>,
    limits: Limits,
    inbox: Rc<Queue<Incoming>>,
    outbox: Rc<Outbox>,
) {
    let mut decoder = FrameDecoder::new(&limits, true);
    let mut assembler = MessageAssembler::new(&limits);
    let mut buf = leftover;
    loop {
        // Decode everything buffered.
        let mut pos = 0;
        while pos < buf.len() {
            let (used, frame) = match decoder.decode(&buf[pos..]) {
                Ok(x) => x,
                Err(e) => {
                    inbox.push(failure(&e));
                    inbox.close();
                    return;
                }
            };
            pos += used;
            let Some(frame) = frame else { break };
            match assembler.handle_frame(frame) {
                Ok(None) => {}
                Ok(Some(Message::Ping(p))) => {
                    if !outbox.closing.get() {
                        let mut pong = Vec::with_capacity(p.len() + 2);
                        encode_frame(&mut pong, true, Opcode::Pong, &p, None);
                        outbox.push(pong);
                    }
                }
                Ok(Some(Message::Pong(_))) => {}
                Ok(Some(Message::Text(t))) => {
                    inbox.room(INBOX_MESSAGES).await;
                    inbox.push(Incoming::Text(t));
                }
                Ok(Some(Message::Binary(b))) => {
                    inbox.room(INBOX_MESSAGES).await;
                    inbox.push(Incoming::Binary(b));
                }
                Ok(Some(Message::Close(c))) => {
                    inbox.push(Incoming::Closed(c));
                    inbox.close();
                    return;
                }
                Err(e) => {
                    inbox.push(failure(&e));
                    inbox.close();
                    return;
                }
            }
        }
        buf.clear();
        // Once we have sent a Close, wait a bounded time for the client's.
        let (res, b) = if outbox.closing.get() {
            match monoio::time::timeout(CLOSE_TIMEOUT, read.read(buf)).await {
                Ok(x) => x,
                Err(_) => break,
            }
        } else {
            read.read(buf).await
        };
        buf = b;
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    inbox.push(Incoming::Closed(None));
    inbox.close();
}

/// Write queued frames (coalesced) until a Close was written or the socket fails.
async fn write_loop(
    mut write: Box<dyn UpgradedWrite>,
    outbox: Rc<Outbox>,
    inbox: Rc<Queue<Incoming>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let next = monoio::time::timeout(PING_INTERVAL, outbox.frames.pop()).await;
        buf.clear();
        match next {
            Ok(Some(frame)) => {
                outbox.bytes.set(outbox.bytes.get() - frame.len());
                buf.extend_from_slice(&frame);
                // Coalesce what else is queued into the same write.
                while let Some(more) = outbox.frames.items.borrow_mut().pop_front() {
                    outbox.bytes.set(outbox.bytes.get() - more.len());
                    buf.extend_from_slice(&more);
                    if buf.len() >= 256 * 1024 {
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {
                // Idle: keep NATs and proxies from dropping the connection.
                encode_frame(&mut buf, true, Opcode::Ping, b"", None);
            }
        }
        let (res, b) = write.write_all(std::mem::take(&mut buf)).await;
        buf = b;
        if res.is_err() {
            // The client is gone: unblock the application.
            inbox.push(Incoming::Closed(None));
            inbox.close();
            outbox.closing.set(true);
            return;
        }
    }
    let _ = write.shutdown().await;
}
