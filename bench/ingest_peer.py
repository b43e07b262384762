#!/usr/bin/env python3
"""The peer for ringbox's JSON ingest throughput: a plain Python `sqlite3` script.

It does what ringbox's `stress_ingest_throughput` test does for each batch of 1,000
small documents, minus the SQL/NoSQL analysis and the dataset catalogue:

  1. parse the `/ingest/json` body (`json.loads`) and check its shape;
  2. write the documents as NDJSON to `json/sql/bench/batch_<stamp>_<NNNN>.ndjson`
     (temp file in `json/.tmp/`, fsync, link into place, fsync the directory);
  3. rewrite `json/sql/bench/schema.json` the same way (rename instead of link);
  4. insert every document into the same table in one transaction
     (`executemany` with a prepared INSERT, typed values);
  5. append one line to `json/ingest_log.ndjson` (fdatasync).

Same documents (the generator below matches `bench_doc` in
`daemon/src/core/ingest/tests.rs`), same database layout, WAL mode, and
`synchronous=FULL` with fsyncs ("fsync") or `synchronous=OFF` without ("none"), as
ringbox's `Durability::Fsync` / `Durability::None`.

Run: python3 bench/ingest_peer.py [--batches 100] [--batch-size 1000] [--durability both]
Compare: cargo test --release -p ringbox stress_ingest_throughput -- --ignored --nocapture
"""

import argparse
import json
import os
import sqlite3
import tempfile
import time

STATUS = ["new", "paid", "shipped"]
COLUMNS = ["customer_id", "note", "order_id", "status", "total"]
CREATE = (
    'CREATE TABLE IF NOT EXISTS "bench" (\n'
    '    "_rowid" INTEGER PRIMARY KEY,\n'
    '    "customer_id" INTEGER NOT NULL,\n'
    '    "note" TEXT NOT NULL,\n'
    '    "order_id" INTEGER NOT NULL,\n'
    '    "status" TEXT NOT NULL,\n'
    '    "total" REAL NOT NULL\n'
    ");"
)
INSERT = 'INSERT INTO "bench" ({}) VALUES ({})'.format(
    ", ".join('"{}"'.format(c) for c in COLUMNS), ", ".join("?" * len(COLUMNS))
)


def doc(i):
    # Keys in sorted order, as serde_json writes them: the bodies are byte-identical
    # to the ones the Rust test builds.
    return {
        "customer_id": i % 97,
        "note": "order {}".format(i),
        "order_id": i,
        "status": STATUS[i % 3],
        "total": (i % 1000) * 1.25,
    }


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Files:
    def __init__(self, root, sync):
        self.root = root
        self.sync = sync
        self.tmp = os.path.join(root, "json", ".tmp")
        self.dir = os.path.join(root, "json", "sql", "bench")
        os.makedirs(self.tmp)
        os.makedirs(self.dir)
        self.counter = 0
        self.stamp = None
        self.seq = 0

    def temp(self, data):
        self.counter += 1
        path = os.path.join(self.tmp, "{}-{}.tmp".format(os.getpid(), self.counter))
        with open(path, "wb") as f:
            f.write(data)
            if self.sync:
                os.fdatasync(f.fileno())
        return path

    def batch(self, docs):
        data = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs).encode()
        tmp = self.temp(data)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        if stamp != self.stamp:
            self.stamp, self.seq = stamp, 0
        while True:
            self.seq += 1
            name = "batch_{}_{:04d}.ndjson".format(stamp, self.seq)
            try:
                os.link(tmp, os.path.join(self.dir, name))
                break
            except FileExistsError:
                continue
        os.unlink(tmp)
        if self.sync:
            fsync_dir(self.dir)
        return "json/sql/bench/" + name

    def schema(self, payload):
        tmp = self.temp(json.dumps(payload, indent=2).encode() + b"\n")
        os.rename(tmp, os.path.join(self.dir, "schema.json"))
        if self.sync:
            fsync_dir(self.dir)

    def log(self, record):
        path = os.path.join(self.root, "json", "ingest_log.ndjson")
        with open(path, "ab") as f:
            f.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
            if self.sync:
                os.fdatasync(f.fileno())


def run(bodies, durability):
    sync = durability == "fsync"
    with tempfile.TemporaryDirectory() as root:
        files = Files(root, sync)
        conn = sqlite3.connect(os.path.join(root, "json", "datasets.sqlite3"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous={}".format("FULL" if sync else "OFF"))
        conn.execute(CREATE)
        columns = {c: {"name": c, "type": t, "required": True}
                   for c, t in zip(COLUMNS, ["INTEGER", "TEXT", "INTEGER", "TEXT", "REAL"])}
        total = 0
        t0 = time.perf_counter()
        for body in bodies:
            req = json.loads(body)
            namespace = req.get("namespace")
            docs = req.get("documents")
            if not isinstance(namespace, str) or not isinstance(docs, list) or not docs:
                raise ValueError("bad request")
            if not all(isinstance(d, dict) for d in docs):
                raise ValueError("documents must be objects")
            batch_path = files.batch(docs)
            files.schema({"table": "bench", "ddl": CREATE, "columns": columns})
            conn.execute("BEGIN")
            conn.executemany(INSERT, ([d.get(c) for c in COLUMNS] for d in docs))
            conn.execute("COMMIT")
            files.log({"namespace": namespace, "decision": "sql", "documents": len(docs),
                       "batch_path": batch_path, "schema_path": "json/sql/bench/schema.json",
                       "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            total += len(docs)
        secs = time.perf_counter() - t0
        rows = conn.execute('SELECT count(*) FROM "bench"').fetchone()[0]
        assert rows == total, (rows, total)
        conn.close()
        return total, secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--durability", choices=["fsync", "none", "both"], default="both")
    args = ap.parse_args()
    n = args.batch_size
    bodies = [
        json.dumps({"namespace": "bench", "documents": [doc(i) for i in range(b * n, (b + 1) * n)]},
                   separators=(",", ":")).encode()
        for b in range(args.batches)
    ]
    modes = ["fsync", "none"] if args.durability == "both" else [args.durability]
    print("python {} sqlite {}".format(
        ".".join(map(str, __import__("sys").version_info[:3])), sqlite3.sqlite_version))
    for mode in modes:
        total, secs = run(bodies, mode)
        print("python sqlite3 ingest durability={}: {} documents in {} batches of {}: "
              "{:.3f} s, {:.0f} documents/s".format(mode, total, args.batches, n, secs, total / secs))


if __name__ == "__main__":
    main()
