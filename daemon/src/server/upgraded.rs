//! The server's side of a connection upgrade: the socket split into monoio's owned
//! read and write halves behind the HTTP layer's [`UpgradedRead`] / [`UpgradedWrite`]
//! traits, and the worker's shutdown as a future the session can select on.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;

use crate::http::upgrade::{IoFuture, Upgraded, UpgradedRead, UpgradedWrite};
use crate::server::workers::Worker;

struct Reader(OwnedReadHalf<TcpStream>);

struct Writer {
    half: OwnedWriteHalf<TcpStream>,
    timeout: Duration,
}

impl UpgradedRead for Reader {
    fn read(&mut self, buf: Vec<u8>) -> IoFuture<'_, (io::Result<usize>, Vec<u8>)> {
        Box::pin(async move {
            let mut buf = buf;
            if buf.capacity() == buf.len() {
                buf.reserve(4096);
            }
            let (len, cap) = (buf.len(), buf.capacity());
            let (res, slice) = self.0.read(buf.slice_mut(len..cap)).await;
            (res, slice.into_inner())
        })
    }
}

impl UpgradedWrite for Writer {
    fn write_all(&mut self, buf: Vec<u8>) -> IoFuture<'_, (io::Result<()>, Vec<u8>)> {
        Box::pin(async move {
            match monoio::time::timeout(self.timeout, self.half.write_all(buf)).await {
                Ok((res, buf)) => (res.map(|_| ()), buf),
                Err(_) => (
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read in time",
                    )),
                    Vec::new(),
                ),
            }
        })
    }

    fn shutdown(&mut self) -> IoFuture<'_, io::Result<()>> {
        Box::pin(async move { self.half.shutdown().await })
    }
}

/// The upgraded connection handed to a session.
pub fn split(stream: TcpStream, leftover: Vec<u8>, w: &Rc<Worker>) -> Upgraded {
    let (r, wr) = stream.into_split();
    let worker = w.clone();
    Upgraded {
        leftover,
        read: Box::new(Reader(r)),
        write: Box::new(Writer {
            half: wr,
            timeout: w.cfg().body_timeout,
        }),
        shutdown: Box::pin(async move { worker.shutdown.wait().await }),
    }
}
