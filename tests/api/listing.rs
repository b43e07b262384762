//! `GET /v1/objects`: filters (namespace, prefix, q), limit bounds, cursor paging that
//! returns every object exactly once.

use crate::common::checks::{assert_object_shape, id_of};
use crate::common::util::pct;
use crate::common::{Client, Daemon};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// One page: the objects and `next_cursor`.
#[track_caller]
fn page(c: &Client, query: &str) -> (Vec<Value>, Option<String>) {
    let v = c.get(&format!("/v1/objects{query}")).expect_json(200);
    let objs = v["objects"]
        .as_array()
        .unwrap_or_else(|| panic!("no objects array: {v}"))
        .clone();
    let next = match &v["next_cursor"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => panic!("next_cursor is neither a string nor null: {other}"),
    };
    assert!(
        v.as_object().unwrap().contains_key("next_cursor"),
        "next_cursor missing (must be present, null at the end): {v}"
    );
    (objs, next)
}

/// Follows cursors from `base` (a query string starting with `?`) to the end; returns
/// every id in order and checks each page is at most `limit` long.
#[track_caller]
fn all_pages(c: &Client, base: &str, limit: usize, max_pages: usize) -> Vec<String> {
    let mut ids = vec![];
    let mut cursor: Option<String> = None;
    for _ in 0..max_pages {
        let mut q = format!("{base}&limit={limit}");
        if let Some(cur) = &cursor {
            q.push_str(&format!("&cursor={}", pct(cur)));
        }
        let (objs, next) = page(c, &q);
        assert!(
            objs.len() <= limit,
            "page of {} objects with limit {limit}",
            objs.len()
        );
        ids.extend(objs.iter().map(id_of));
        match next {
            None => return ids,
            Some(n) => {
                assert_ne!(
                    Some(&n),
                    cursor.as_ref(),
                    "cursor did not advance ({} ids so far)",
                    ids.len()
                );
                cursor = Some(n);
            }
        }
    }
    panic!(
        "paging {base} did not end within {max_pages} pages ({} ids seen)",
        ids.len()
    );
}

fn names(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| o["name"].as_str().unwrap().to_string())
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Creates `n` objects in `ns` named `{prefix}{i:05}` from `threads` keep-alive clients
/// (every third one a text object). Returns (name, id) pairs.
fn create_many(
    d: &Daemon,
    ns: &str,
    prefix: &str,
    n: usize,
    threads: usize,
) -> Vec<(String, String)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let c = Client::new(d);
                s.spawn(move || {
                    let mut ids = vec![];
                    for i in (t..n).step_by(threads) {
                        let name = format!("{prefix}{i:05}");
                        let v = if i % 3 == 0 {
                            c.create_text(&name, Some(ns), &format!("text {i}"))
                        } else {
                            c.upload(
                                &name,
                                Some(ns),
                                Some("application/octet-stream"),
                                format!("bytes {i}").as_bytes(),
                            )
                        };
                        ids.push((name, id_of(&v)));
                    }
                    ids
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("creator thread panicked"))
            .collect()
    })
}

#[test]
fn filters_namespace_prefix_and_q() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    for (ns, name) in [
        ("a", "Alpha.txt"),
        ("a", "alphabet.md"),
        ("a", "beta.txt"),
        ("a", "x/ALPHA-deep.bin"),
        ("b", "alpine.txt"),
        ("b", "Gamma.txt"),
    ] {
        c.upload(name, Some(ns), Some("text/plain"), name.as_bytes());
    }
    c.create_text("notes-alpha", Some("a"), "a text object");

    let (all, next) = page(&c, "");
    assert_eq!(all.len(), 7, "{all:?}");
    assert_eq!(next, None, "next_cursor with everything on one page");
    for o in &all {
        assert_object_shape(o);
    }
    let q = |query: &str| names(&page(&c, query).0);
    assert_eq!(q("?namespace=a").len(), 5);
    assert_eq!(q("?namespace=b"), set(&["alpine.txt", "Gamma.txt"]));
    assert_eq!(q("?namespace=nothing-here"), set(&[]));
    assert_eq!(q("?prefix=be"), set(&["beta.txt"]));
    assert_eq!(
        q(&format!("?prefix={}", pct("x/"))),
        set(&["x/ALPHA-deep.bin"])
    );
    assert_eq!(q("?namespace=b&prefix=alp"), set(&["alpine.txt"]));
    assert_eq!(q("?namespace=a&prefix=alpi"), set(&[]));
    assert_eq!(
        q("?q=ALPHA"),
        set(&[
            "Alpha.txt",
            "alphabet.md",
            "x/ALPHA-deep.bin",
            "notes-alpha"
        ])
    );
    assert_eq!(q("?q=pHa.T"), set(&["Alpha.txt"]));
    assert_eq!(q("?namespace=b&q=a"), set(&["alpine.txt", "Gamma.txt"]));
    assert_eq!(
        q("?namespace=a&q=alp"),
        set(&[
            "Alpha.txt",
            "alphabet.md",
            "x/ALPHA-deep.bin",
            "notes-alpha"
        ])
    );
    assert_eq!(q("?q=zzz"), set(&[]));
}

#[test]
fn limit_bounds() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    for i in 0..3 {
        c.upload(&format!("f{i}"), None, None, b"x");
    }
    for bad in ["0", "1001", "-1", "abc", "", "1e3"] {
        let r = c.get(&format!("/v1/objects?limit={bad}"));
        assert_eq!(
            r.status,
            400,
            "limit={bad:?} should be 400:\n{}",
            r.describe()
        );
        r.expect_error_status(400);
    }
    assert_eq!(page(&c, "?limit=1000").0.len(), 3);
    let (one, next) = page(&c, "?limit=1");
    assert_eq!(one.len(), 1);
    assert!(next.is_some(), "limit=1 of 3 objects gave no next_cursor");
    let ids = all_pages(&c, "?x=1", 1, 10);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 3, "{ids:?}");
}

#[test]
fn default_limit_is_100() {
    let d = Daemon::start(&["--durability", "none"]);
    let c = Client::new(&d);
    create_many(&d, "default", "d-", 150, 2);
    let (first, next) = page(&c, "");
    assert_eq!(first.len(), 100, "default page size");
    let next = next.expect("no next_cursor after a full default page");
    let (rest, end) = page(&c, &format!("?cursor={}", pct(&next)));
    assert_eq!(rest.len(), 50);
    assert_eq!(end, None);
}

#[test]
fn cursor_garbage_is_400() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    c.upload("f", None, None, b"x");
    for bad in ["not a cursor!", "%FF%FE", "~~~~", "..%2F..%2F"] {
        let r = c.get(&format!("/v1/objects?cursor={bad}"));
        assert_eq!(
            r.status,
            400,
            "cursor={bad:?} should be 400:\n{}",
            r.describe()
        );
        r.expect_error_status(400);
    }
}

#[test]
fn pagination_3000_objects_every_id_exactly_once() {
    let d = Daemon::start(&["--durability", "none"]);
    let c = Client::new(&d);
    let t0 = std::time::Instant::now();
    let pairs = create_many(&d, "bulk", "item-", 3000, 4);
    let created: Vec<String> = pairs.iter().map(|(_, id)| id.clone()).collect();
    let named_01: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n.starts_with("item-01"))
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(named_01.len(), 1000);
    let others: Vec<String> = (0..5)
        .map(|i| id_of(&c.upload(&format!("o{i}"), Some("other"), None, b"o")))
        .collect();
    eprintln!("created 3005 objects in {:?}", t0.elapsed());

    let check = |got: Vec<String>, want: &[String], what: &str| {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in &got {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        let dups: Vec<_> = counts
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| format!("{id} x{n}"))
            .collect();
        assert!(dups.is_empty(), "{what}: ids seen more than once: {dups:?}");
        let missing: Vec<_> = want
            .iter()
            .filter(|id| !counts.contains_key(id.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{what}: {} ids never listed, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        assert_eq!(
            got.len(),
            want.len(),
            "{what}: listed ids that were not created"
        );
    };
    let t0 = std::time::Instant::now();
    check(
        all_pages(&c, "?namespace=bulk", 97, 200),
        &created,
        "namespace=bulk",
    );
    let everything: Vec<String> = created.iter().chain(&others).cloned().collect();
    check(
        all_pages(&c, "?x=1", 97, 200),
        &everything,
        "all namespaces",
    );
    check(
        all_pages(&c, "?namespace=bulk&prefix=item-01", 97, 50),
        &named_01,
        "namespace=bulk&prefix=item-01",
    );
    eprintln!("paged in {:?}", t0.elapsed());
}

#[test]
fn pagination_with_concurrent_changes() {
    let d = Daemon::start(&["--durability", "none"]);
    let c = Client::new(&d);
    let initial: Vec<String> = create_many(&d, "churn", "c-", 400, 2)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut deleted: BTreeSet<String> = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let mut q = "?namespace=churn&limit=40".to_string();
        if let Some(cur) = &cursor {
            q.push_str(&format!("&cursor={}", pct(cur)));
        }
        let (objs, next) = page(&c, &q);
        for o in &objs {
            *seen.entry(id_of(o)).or_default() += 1;
        }
        // Between pages: delete two objects not seen yet, add two new ones.
        let victims: Vec<String> = initial
            .iter()
            .filter(|id| !seen.contains_key(*id) && !deleted.contains(*id))
            .take(2)
            .cloned()
            .collect();
        for id in victims {
            c.delete(&format!("/v1/objects/{id}")).expect(204);
            deleted.insert(id);
        }
        for k in 0..2 {
            c.upload(&format!("new-{round}-{k}"), Some("churn"), None, b"n");
        }
        round += 1;
        assert!(round < 100, "paging did not end");
        match next {
            None => break,
            Some(n) => cursor = Some(n),
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "objects listed twice while the namespace changed: {twice:?}"
    );
    let missing: Vec<_> = initial
        .iter()
        .filter(|id| !deleted.contains(*id) && !seen.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} objects that existed throughout were never listed: {:?}",
        missing.len(),
        missing
    );
}
