//! `ceiling`: the fastest server this machine can run, as a yardstick for the load harness.
//!
//! One thread, one monoio io_uring runtime, keep-alive, and every request answered with the
//! same 4 KiB body from memory: no routing, no lookup, no file, no clock. What ringbox gets
//! at 4 KiB divided by what this gets is how much of the machine's headroom ringbox uses.
//!
//! Deliberately minimal: request heads are parsed with `httparse` only to find where each
//! request ends (pipelined requests are answered in order); a request body announced by
//! `Content-Length` is skipped; chunked request bodies are refused by closing the
//! connection. `HEAD` gets the head without the body. Nothing is logged per request.
//!
//! Usage: `ceiling [--listen 127.0.0.1:0]`; when ready it prints
//! `ceiling listening addr=IP:PORT` on stderr (the same shape as ringbox's line).

use std::net::SocketAddr;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

/// The body size the harness compares against ringbox's 4 KiB GET.
const BODY_LEN: usize = 4096;
/// Read buffer per connection; a request head larger than this closes the connection.
const BUF_LEN: usize = 16 * 1024;
/// Header slots for `httparse`: wrk sends three or four headers.
const MAX_HEADERS: usize = 32;

/// Its only output goes to stderr: the readiness line `ceiling listening addr=...`
/// that the harness waits for (the same shape as ringbox's log line), and errors.
/// The tool has no logging framework on purpose: it is the trivial baseline.
fn say(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

const USAGE: &str = "usage: ceiling [--listen IP:PORT]";

fn main() -> Result<(), String> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("static address");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args.next().unwrap_or_default();
                listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value:?}: {e}"))?;
            }
            "-h" | "--help" => {
                say(format_args!("{USAGE}"));
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} ({USAGE})")),
        }
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(1024)
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot start an io_uring runtime: {e}"))?;
    rt.block_on(serve(listen))
}

async fn serve(listen: SocketAddr) -> Result<(), String> {
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().unwrap_or(listen);
    say(format_args!("ceiling listening addr={addr}"));

    let (full, head_only) = responses();
    let full: &'static [u8] = Box::leak(full.into_boxed_slice());
    let head_only: &'static [u8] = Box::leak(head_only.into_boxed_slice());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                monoio::spawn(connection(stream, full, head_only));
            }
            Err(e) => {
                // EMFILE and friends: keep serving the connections we have.
                say(format_args!("ceiling: accept failed: {e}"));
                monoio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// The two fixed answers: head + 4 KiB body, and the head alone for `HEAD`.
fn responses() -> (Vec<u8>, Vec<u8>) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nServer: ceiling\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {BODY_LEN}\r\n\r\n"
    )
    .into_bytes();
    let mut full = head.clone();
    full.extend((0..BODY_LEN).map(|i| b'a' + (i % 26) as u8));
    (full, head)
}

/// What the head parser found at the front of the buffer.
enum Parsed {
    /// A whole request: head length, announced body length, and whether it was `HEAD`.
    Request {
        head_len: usize,
        body_len: usize,
        is_head: bool,
    },
    /// Not enough bytes yet.
    Partial,
    /// Malformed or unsupported (chunked): close the connection.
    Invalid,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => {
            let mut body_len = 0usize;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    match std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                    {
                        Some(n) => body_len = n,
                        None => return Parsed::Invalid,
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    return Parsed::Invalid;
                }
            }
            Parsed::Request {
                head_len,
                body_len,
                is_head: req.method == Some("HEAD"),
            }
        }
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(_) => Parsed::Invalid,
    }
}

async fn connection(mut stream: TcpStream, full: &'static [u8], head_only: &'static [u8]) {
    let mut buf: Vec<u8> = Vec::with_capacity(BUF_LEN);
    // Bytes of a request body still to skip (they may span several reads).
    let mut skip = 0usize;
    loop {
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // Answer every complete request in the buffer, in order. The usual case is one
        // request per read, answered straight from the static bytes without a copy; only
        // pipelined requests are gathered into one buffer.
        let mut pos = 0usize;
        let mut first: Option<&'static [u8]> = None;
        let mut more: Vec<u8> = Vec::new();
        loop {
            if skip > 0 {
                let n = skip.min(buf.len() - pos);
                skip -= n;
                pos += n;
                if skip > 0 {
                    break;
                }
            }
            match parse(&buf[pos..]) {
                Parsed::Request {
                    head_len,
                    body_len,
                    is_head,
                } => {
                    pos += head_len;
                    skip = body_len;
                    let answer = if is_head { head_only } else { full };
                    match first {
                        None => first = Some(answer),
                        Some(f) => {
                            if more.is_empty() {
                                more.extend_from_slice(f);
                            }
                            more.extend_from_slice(answer);
                        }
                    }
                }
                Parsed::Partial => break,
                Parsed::Invalid => return,
            }
        }
        buf.drain(..pos);
        if buf.len() == buf.capacity() {
            // A head that does not fit the buffer.
            return;
        }
        let res = if !more.is_empty() {
            stream.write_all(more).await.0
        } else if let Some(answer) = first {
            stream.write_all(answer).await.0
        } else {
            Ok(0)
        };
        if res.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Parsed};

    #[test]
    fn heads_are_found_whole_partial_and_with_bodies() {
        let get = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(
            matches!(parse(get), Parsed::Request { head_len, body_len: 0, is_head: false } if head_len == get.len())
        );
        assert!(matches!(parse(&get[..get.len() - 1]), Parsed::Partial));
        let put = b"PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert!(matches!(parse(put), Parsed::Request { body_len: 5, .. }));
        assert!(matches!(
            parse(b"HEAD / HTTP/1.1\r\n\r\n"),
            Parsed::Request { is_head: true, .. }
        ));
        assert!(matches!(
            parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Invalid
        ));
        assert!(matches!(
            parse(b"\x01\x02 nonsense\r\n\r\n"),
            Parsed::Invalid
        ));
    }
}
