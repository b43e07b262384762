//! Criterion benches of the HTTP/1.1 request path of `ringbox-protocol`, in bytes per
//! second on realistic fixtures (httparse's bench style, `Throughput::Bytes`):
//!
//! * `request_head/short`: the smallest useful request (`GET /`, one Host header),
//!   i.e. the per-request fixed cost;
//! * `request_head/browser`: a ~700-byte, 12-header request as Chrome sends it;
//! * `chunked/1MiB_16KiB_chunks*`: decoding a 1 MiB body sent in 16 KiB chunks: with
//!   the whole body in one buffer, fed in 4 KiB reads as a socket delivers it, and
//!   with every Data slice copied out. The decoder hands out borrowed slices, so the
//!   first two measure the framing cost alone (they are far above memory bandwidth
//!   by design); the third is what an upload costs with one copy.
//!
//! * `partial_head/browser`: `check_partial_head` on the browser request (it judges
//!   the request line only), the check the daemon runs on each read of an incomplete
//!   head; `partial_head/2KiB_line_1_byte_reads`: a 2 KiB request line arriving one
//!   byte per read, judged by a resumed `RequestLineCheck` after every byte (the
//!   slow-client worst case; throughput is over the line, so O(new bytes) shows as
//!   a rate close to the stateless one).
//!
//! Run: `cargo bench -p ringbox-bench --bench http`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringbox_protocol::chunked::{ChunkedDecoder, ChunkedEvent};
use ringbox_protocol::head::{
    check_partial_head, parse_request_head, RequestHead, RequestLineCheck, Status,
};
use ringbox_protocol::Limits;

const SHORT: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// 12 header fields, ~700 bytes: a Chrome navigation with cookies.
const BROWSER: &[u8] = b"GET /v1/objects?prefix=photos%2F2024&limit=50 HTTP/1.1\r\n\
Host: files.example.org\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Referer: https://files.example.org/browse/photos/2024\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,de;q=0.8,fr;q=0.7\r\n\
Cookie: session=4f1c2a9be07d4e55a1c3d9e8f7a6b5c4; theme=dark; _pk_id=1a2b3c4d5e6f7a8b.1700000000\r\n\r\n";

fn request_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("request_head");
    for (name, req) in [("short", SHORT), ("browser", BROWSER)] {
        group.throughput(Throughput::Bytes(req.len() as u64));
        // One head reused across iterations, as one connection reuses it.
        let mut head = RequestHead::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = parse_request_head(black_box(req), &limits, &mut head);
                assert_eq!(r, Ok(Status::Complete(req.len())));
                black_box(head.framing());
            })
        });
    }
    group.finish();
}

fn partial_heads(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("partial_head");
    let line_len = BROWSER
        .iter()
        .position(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    group.throughput(Throughput::Bytes(line_len as u64));
    group.bench_function("browser", |b| {
        b.iter(|| assert_eq!(check_partial_head(black_box(BROWSER), &limits), Ok(())))
    });
    let mut line = b"GET /".to_vec();
    line.resize(2048 - 11, b'a');
    line.extend_from_slice(b" HTTP/1.1\r\n");
    group.throughput(Throughput::Bytes(line.len() as u64));
    let mut check = RequestLineCheck::new();
    group.bench_function("2KiB_line_1_byte_reads", |b| {
        b.iter(|| {
            check.reset();
            for k in 1..=line.len() {
                assert_eq!(check.check(black_box(&line[..k]), &limits), Ok(()));
            }
        })
    });
    group.finish();
}

/// A 1 MiB body chunk-encoded in 16 KiB chunks, with the last-chunk.
fn chunked_body() -> Vec<u8> {
    const BODY: usize = 1 << 20;
    const CHUNK: usize = 16 << 10;
    let data: Vec<u8> = (0..BODY).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = Vec::with_capacity(BODY + BODY / CHUNK * 16);
    for chunk in data.chunks(CHUNK) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Decode `encoded` handing the decoder at most `read` new bytes at a time; returns
/// the body length. With `sink`, every Data slice is copied into it (cleared per
/// chunk), as the daemon copies body bytes into its write buffers.
fn decode_all(
    encoded: &[u8],
    limits: &Limits,
    read: usize,
    mut sink: Option<&mut Vec<u8>>,
) -> usize {
    let mut dec = ChunkedDecoder::new(limits);
    let (mut start, mut end, mut total) = (0, read.min(encoded.len()), 0);
    loop {
        match dec.decode(&encoded[start..end]).expect("valid body") {
            (n, ChunkedEvent::Data(d)) => {
                if let Some(sink) = sink.as_deref_mut() {
                    sink.clear();
                    sink.extend_from_slice(d);
                }
                total += black_box(d).len();
                start += n;
            }
            (n, ChunkedEvent::NeedMore) => {
                start += n;
                end = end.saturating_add(read).min(encoded.len());
            }
            (_, ChunkedEvent::Done) => return total,
        }
    }
}

fn chunked(c: &mut Criterion) {
    let limits = Limits::default();
    let encoded = chunked_body();
    let mut group = c.benchmark_group("chunked");
    group.throughput(Throughput::Bytes(encoded.len() as u64));
    // Framing cost alone: Data slices are borrowed, the body bytes are not touched.
    group.bench_function("1MiB_16KiB_chunks", |b| {
        b.iter(|| {
            assert_eq!(
                decode_all(black_box(&encoded), &limits, usize::MAX, None),
                1 << 20
            )
        })
    });
    // As a socket delivers it: 4 KiB reads, so chunks arrive split across reads.
    group.bench_function("1MiB_16KiB_chunks_4KiB_reads", |b| {
        b.iter(|| {
            assert_eq!(
                decode_all(black_box(&encoded), &limits, 4096, None),
                1 << 20
            )
        })
    });
    // With the body copied out, as the daemon's upload path does (memcpy-bound).
    let mut sink = Vec::with_capacity(16 << 10);
    group.bench_function("1MiB_16KiB_chunks_copied", |b| {
        b.iter(|| {
            assert_eq!(
                decode_all(black_box(&encoded), &limits, 4096, Some(&mut sink)),
                1 << 20
            )
        })
    });
    group.finish();
}

criterion_group!(benches, request_heads, partial_heads, chunked);
criterion_main!(benches);
