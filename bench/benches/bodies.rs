//! Criterion benches of the body-side parsers, in bytes per second:
//!
//! - `range/*`: `Range` header parsing plus resolution against a length, for a few
//!   headers that browsers, video players and download managers send;
//! - `multipart/*`: a multipart/form-data upload of one file part (1 MiB and 64 MiB of
//!   pseudo-random binary data, with CRs, LFs and dashes in it), fed the way the daemon
//!   feeds it: one reused 64 KiB read buffer, unconsumed bytes moved to its front
//!   before the next read. The copy into the buffer stands for the socket read and is
//!   part of the measured time.
//!
//! Run: `cargo bench -p ringbox-bench --bench bodies`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringbox_protocol::multipart::{MultipartEvent, MultipartParser};
use ringbox_protocol::range::resolve_range;
use ringbox_protocol::Limits;

/// The daemon's read size for request bodies.
const READ_SIZE: usize = 64 * 1024;

const BOUNDARY: &[u8] = b"----WebKitFormBoundary7MA4YWxkTrZu0gW";

fn ranges(c: &mut Criterion) {
    let limits = Limits::default();
    let cases: [(&str, &[u8]); 5] = [
        ("first_kib", b"bytes=0-1023"),
        ("video_seek", b"bytes=367001600-"),
        ("suffix", b"bytes=-500"),
        ("resume_list", b"bytes=0-0,-1"),
        (
            "eight_unsorted_overlapping",
            b"bytes=9000-9999, 0-99, 50-149, 4000-4999,200-299,-100, 1000-1999,150-199",
        ),
    ];
    let mut group = c.benchmark_group("range");
    for (name, value) in cases {
        group.throughput(Throughput::Bytes(value.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), value, |b, v| {
            b.iter(|| resolve_range(black_box(v), black_box(734_003_200), &limits))
        });
    }
    group.finish();
}

/// One file part with `size` bytes of xorshift noise, as a browser would send it.
fn upload_body(size: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(size + 512);
    body.extend_from_slice(b"--");
    body.extend_from_slice(BOUNDARY);
    body.extend_from_slice(
        b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"video.mp4\"\r\n\
          Content-Type: video/mp4\r\n\r\n",
    );
    let data_start = body.len();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while body.len() < data_start + size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        body.extend_from_slice(&x.to_le_bytes());
    }
    body.truncate(data_start + size);
    body.extend_from_slice(b"\r\n--");
    body.extend_from_slice(BOUNDARY);
    body.extend_from_slice(b"--\r\n");
    body
}

/// Feeds `body` through one 64 KiB buffer like the daemon; returns the data bytes.
fn parse_like_daemon(body: &[u8], limits: &Limits, buf: &mut [u8]) -> usize {
    let mut parser = MultipartParser::new(BOUNDARY, limits).expect("valid boundary");
    let (mut filled, mut read, mut data) = (0, 0, 0);
    loop {
        // "Read" into the free part of the buffer.
        let n = (buf.len() - filled).min(body.len() - read);
        buf[filled..filled + n].copy_from_slice(&body[read..read + n]);
        filled += n;
        read += n;
        let eof = read == body.len();
        let mut off = 0;
        loop {
            let (consumed, event) = parser.parse(&buf[off..filled], eof).expect("a valid body");
            off += consumed;
            match event {
                MultipartEvent::Data(d) => data += black_box(d).len(),
                MultipartEvent::NeedMore => break,
                MultipartEvent::Done => return data,
                MultipartEvent::PartStart(_) | MultipartEvent::PartEnd => {}
            }
        }
        // Keep the possible delimiter start for the next read.
        buf.copy_within(off..filled, 0);
        filled -= off;
    }
}

fn multipart(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("multipart");
    for (name, size, samples) in [("1MiB", 1 << 20, 50), ("64MiB", 64 << 20, 10)] {
        let body = upload_body(size);
        let mut buf = vec![0u8; READ_SIZE];
        assert_eq!(parse_like_daemon(&body, &limits, &mut buf), size);
        group.sample_size(samples);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(BenchmarkId::new("one_file_64KiB_reads", name), |b| {
            b.iter(|| parse_like_daemon(black_box(&body), &limits, &mut buf))
        });
    }
    group.finish();
}

criterion_group!(benches, ranges, multipart);
criterion_main!(benches);
