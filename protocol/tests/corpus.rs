//! Replays the committed fuzz corpora and the named regression files through the same
//! property checks the cargo-fuzz targets run (`ringbox_protocol::props`), on stable
//! Rust, as part of `cargo test`.
//!
//! For each target (`request_head`, `chunked`, `range`, `multipart`, `websocket`,
//! `percent`) it reads
//!
//! - every file of `fuzz/corpus/<target>/` (the seed corpus cargo-fuzz starts from;
//!   it must exist and be non-empty, so a lost corpus fails the test), and
//! - every file under `protocol/tests/data/<target>/`, if that directory exists: one
//!   file per crash or hang the fuzzer found, kept forever as a regression test
//!   (see `fuzz/README.md`).
//!
//! A property check panics only when a parser property is violated; each file runs
//! under `catch_unwind` so one report names every failing file, not just the first.
//! Files whose name starts with `.` (`.gitkeep`) are skipped.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ringbox_protocol::props;

/// All regular files under `dir` (recursively), sorted for a stable order.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("reading {}: {e}", d.display()))
                .path();
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Replays the corpus and regression files of `target` through `check`.
fn replay(target: &str, check: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus_dir = root.join("../fuzz/corpus").join(target);
    assert!(
        corpus_dir.is_dir(),
        "seed corpus {} is missing: it must be committed with the fuzz target",
        corpus_dir.display()
    );
    let corpus = files_under(&corpus_dir);
    assert!(
        !corpus.is_empty(),
        "seed corpus {} is empty: commit seed inputs for the {target} fuzz target",
        corpus_dir.display()
    );
    let regression_dir = root.join("tests/data").join(target);
    let regressions = if regression_dir.is_dir() {
        files_under(&regression_dir)
    } else {
        Vec::new()
    };

    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        if panic::catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    eprintln!(
        "{target}: replayed {} corpus files and {} regression files",
        corpus.len(),
        regressions.len()
    );
    assert!(
        failed.is_empty(),
        "{target}: property violated by {} file(s):\n  {}",
        failed.len(),
        failed.join("\n  ")
    );
}

#[test]
fn corpus_request_head() {
    replay("request_head", props::request_head::check);
}

#[test]
fn corpus_chunked() {
    replay("chunked", props::chunked::check);
}

#[test]
fn corpus_range() {
    replay("range", props::range::check);
}

#[test]
fn corpus_multipart() {
    replay("multipart", props::multipart::check);
}

#[test]
fn corpus_websocket() {
    replay("websocket", props::websocket::check);
}

#[test]
fn corpus_percent() {
    replay("percent", props::percent::check);
}
