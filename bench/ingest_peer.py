#!/usr/bin/env python3
"""The peer for ringbox's ingest throughput: plain Python `sqlite3` and file writes.

Three modes, each the same work ringbox does for the same input, minus its analysis,
catalogue and HTTP:

`--mode sql` (the default) does, for each batch of 1,000 small documents, what
ringbox's `stress_ingest_throughput` test and `/ingest/json` do for SQL-routed data:

  1. parse the `/ingest/json` body (`json.loads`) and check its shape;
  2. write the documents as NDJSON to `json/sql/bench/batch_<stamp>_<NNNN>.ndjson`
     (temp file in `json/.tmp/`, fsync, link into place, fsync the directory);
  3. rewrite `json/sql/bench/schema.json` the same way (rename instead of link);
  4. insert every document into the same table in one transaction
     (`executemany` with a prepared INSERT, typed values);
  5. append one line to `json/ingest_log.ndjson` (fdatasync).

`--mode nosql`: steps 1, 2 (under `json/nosql/`) and 5, and instead of SQLite the
documents are appended to one NDJSON file that is then fdatasynced: the stand-in for
ringbox's LMDB commit of the documents.

`--mode files`: for each of `--files` files of `--file-size` random bytes (distinct
contents), what RhinoBox does with an uploaded file and ringbox does underneath
`/ingest`: hash it (SHA-256), write it to a temp file, fsync, rename it to
`files/bench/<name>_<uuid>.bin`, fsync the directory, and append a metadata line
(hash, name, stored path, size, time) to `metadata/files.ndjson` with fdatasync.

Same documents (the generator below matches `bench_doc` in
`daemon/src/core/ingest/tests.rs`), same database layout, WAL mode, and
`synchronous=FULL` with fsyncs ("fsync") or `synchronous=OFF` without ("none"), as
ringbox's `Durability::Fsync` / `Durability::None`. `--root DIR` puts the scratch
directories on the file system being measured (default: the system temp dir).
`--json` prints one JSON line per run (what `ingestbench` reads).

Run: python3 bench/ingest_peer.py [--mode sql|nosql|files] [--batches 100]
       [--batch-size 1000] [--files 2000] [--file-size 4096] [--durability both]
Compare: cargo run --release -p ringbox-bench --bin ingestbench
     or: cargo test --release -p ringbox stress_ingest_throughput -- --ignored --nocapture
"""

import argparse
import hashlib
import json
import os
import sqlite3
import tempfile
import time
import uuid

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

    def batch(self, docs, engine="sql"):
        data = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs).encode()
        tmp = self.temp(data)
        target = self.dir if engine == "sql" else self.nosql_dir()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        if stamp != self.stamp:
            self.stamp, self.seq = stamp, 0
        while True:
            self.seq += 1
            name = "batch_{}_{:04d}.ndjson".format(stamp, self.seq)
            try:
                os.link(tmp, os.path.join(target, name))
                break
            except FileExistsError:
                continue
        os.unlink(tmp)
        if self.sync:
            fsync_dir(target)
        return "json/{}/bench/{}".format(engine, name)

    def nosql_dir(self):
        d = os.path.join(self.root, "json", "nosql", "bench")
        os.makedirs(d, exist_ok=True)
        return d

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


def run(bodies, durability, parent=None):
    sync = durability == "fsync"
    with tempfile.TemporaryDirectory(dir=parent) as root:
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


def run_nosql(bodies, durability, parent=None):
    sync = durability == "fsync"
    with tempfile.TemporaryDirectory(dir=parent) as root:
        files = Files(root, sync)
        docs_path = os.path.join(root, "json", "nosql", "documents.ndjson")
        os.makedirs(os.path.dirname(docs_path), exist_ok=True)
        total = 0
        t0 = time.perf_counter()
        with open(docs_path, "ab") as store:
            for body in bodies:
                req = json.loads(body)
                namespace = req.get("namespace")
                docs = req.get("documents")
                if not isinstance(namespace, str) or not isinstance(docs, list) or not docs:
                    raise ValueError("bad request")
                if not all(isinstance(d, dict) for d in docs):
                    raise ValueError("documents must be objects")
                batch_path = files.batch(docs, engine="nosql")
                store.write("".join(json.dumps(d, separators=(",", ":")) + "\n"
                                    for d in docs).encode())
                store.flush()
                if sync:
                    os.fdatasync(store.fileno())
                files.log({"namespace": namespace, "decision": "nosql", "documents": len(docs),
                           "batch_path": batch_path,
                           "ingested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
                total += len(docs)
        return total, time.perf_counter() - t0


def run_files(contents, durability, parent=None):
    sync = durability == "fsync"
    with tempfile.TemporaryDirectory(dir=parent) as root:
        tmp = os.path.join(root, "tmp")
        target = os.path.join(root, "files", "bench")
        meta = os.path.join(root, "metadata")
        for d in (tmp, target, meta):
            os.makedirs(d)
        index = open(os.path.join(meta, "files.ndjson"), "ab")
        t0 = time.perf_counter()
        for i, data in enumerate(contents):
            digest = hashlib.sha256(data).hexdigest()
            name = "f{}.bin".format(i)
            t = os.path.join(tmp, uuid.uuid4().hex)
            with open(t, "wb") as f:
                f.write(data)
                if sync:
                    os.fsync(f.fileno())
            stored = "f{}_{}.bin".format(i, uuid.uuid4())
            os.rename(t, os.path.join(target, stored))
            if sync:
                fsync_dir(target)
            index.write(json.dumps({"hash": digest, "original_name": name,
                                    "stored_path": "files/bench/" + stored, "size": len(data),
                                    "uploaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                 time.gmtime())},
                                   separators=(",", ":")).encode() + b"\n")
            index.flush()
            if sync:
                os.fdatasync(index.fileno())
        secs = time.perf_counter() - t0
        index.close()
        assert len(os.listdir(target)) == len(contents)
        return len(contents), secs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=["sql", "nosql", "files"], default="sql")
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--file-size", type=int, default=4096)
    ap.add_argument("--durability", choices=["fsync", "none", "both"], default="both")
    ap.add_argument("--root", default=None, help="parent of the scratch directories")
    ap.add_argument("--json", action="store_true", help="print one JSON line per run")
    args = ap.parse_args()
    n = args.batch_size
    modes = ["fsync", "none"] if args.durability == "both" else [args.durability]
    if not args.json:
        print("python {} sqlite {}".format(
            ".".join(map(str, __import__("sys").version_info[:3])), sqlite3.sqlite_version))
    if args.mode == "files":
        # Distinct contents, generated before the clock starts.
        contents = [os.urandom(args.file_size) for _ in range(args.files)]
        what = "files"
    else:
        extra = {"comment": "nosql"} if args.mode == "nosql" else {}
        bodies = [
            json.dumps(dict({"namespace": "bench",
                             "documents": [doc(i) for i in range(b * n, (b + 1) * n)]}, **extra),
                       separators=(",", ":")).encode()
            for b in range(args.batches)
        ]
        what = "documents"
    for mode in modes:
        if args.mode == "sql":
            total, secs = run(bodies, mode, args.root)
        elif args.mode == "nosql":
            total, secs = run_nosql(bodies, mode, args.root)
        else:
            total, secs = run_files(contents, mode, args.root)
        if args.json:
            print(json.dumps({"mode": args.mode, "durability": mode, "items": total,
                              "seconds": secs, "per_second": total / secs}))
        else:
            print("python {} ingest durability={}: {} {} in {:.3f} s, {:.0f} {}/s".format(
                args.mode, mode, total, what, secs, total / secs, what))


if __name__ == "__main__":
    main()
