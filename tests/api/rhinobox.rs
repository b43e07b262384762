//! The RhinoBox API (seed `004`) against the real daemon: every curl example of the
//! seed run with curl itself (host and port swapped for the test daemon's), the
//! PowerShell and Python examples as the same requests, every error the seed lists,
//! the audit logs (`metadata/delete_log.ndjson`, `metadata/rename_log.ndjson`, the
//! daily `audit/` file), duplicates, ranges and conditionals, path traversal, rename,
//! metadata, hostile JSON, and the datasets read back through the native routes.
//!
//! RhinoBox has no authentication, so most tests run `--anonymous write`; one checks
//! that the default (`--anonymous none`) wants a bearer token.

use crate::common::raw::request;
use crate::common::util::{
    format_http_date, parse_http_date, parse_rfc3339, pct, random_bytes, sha256_hex, Multipart,
};
use crate::common::{Client, Daemon, RawConn, Resp};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn start() -> Daemon {
    Daemon::start(&["--anonymous", "write"])
}

fn with_magic(magic: &[u8], seed: u64, n: usize) -> Vec<u8> {
    let mut v = magic.to_vec();
    v.extend(random_bytes(seed, n));
    v
}

fn jpeg(seed: u64, n: usize) -> Vec<u8> {
    with_magic(b"\xff\xd8\xff\xe0\x00\x10JFIF", seed, n)
}

fn png(seed: u64, n: usize) -> Vec<u8> {
    with_magic(b"\x89PNG\r\n\x1a\n", seed, n)
}

fn mp4(seed: u64, n: usize) -> Vec<u8> {
    with_magic(b"\x00\x00\x00\x18ftypisom", seed, n)
}

fn pdf(seed: u64, n: usize) -> Vec<u8> {
    with_magic(b"%PDF-1.7\n", seed, n)
}

/// Asserts RhinoBox's error shape (`{"error":"..."}`, JSON) and returns the message.
#[track_caller]
fn error_of(r: &Resp, status: u16) -> String {
    assert_eq!(r.status, status, "{}", r.describe());
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with("application/json"), "{}", r.describe());
    let v = r.json();
    let msg = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no string `error` in {}", r.describe()));
    assert!(!msg.is_empty());
    msg.to_string()
}

/// Announces a `len`-byte body, sends its first bytes, and reads the answer (which
/// comes before the rest when the body is refused by its declared length).
fn oversized(d: &Daemon, path: &str, content_type: &str, len: usize) -> Resp {
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request(
        "POST",
        path,
        &[
            ("Content-Type", content_type),
            ("Content-Length", &len.to_string()),
        ],
        b"",
    ));
    conn.send(b"{\"namespace\":\"h\",\"document\":{\"s\":\"xxxxxxxx");
    conn.read_response()
}

fn post_form(c: &Client, path: &str, mp: &Multipart) -> Resp {
    c.post(path, Some(&mp.content_type()), &mp.body())
}

fn read_ndjson(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Every line of every daily audit file.
fn audit_lines(d: &Daemon) -> Vec<Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(d.data_dir().join("audit"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("audit-") && name.ends_with(".ndjson") && name.len() == 23,
            "daily file name {name}"
        );
    }
    files.iter().flat_map(|f| read_ndjson(f)).collect()
}

// ---------------------------------------------------------------------------------
// curl

fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs the seed's curl examples in a scratch directory (where `@photo.jpg` and
/// `-O -J` files live).
struct Curl {
    dir: tempfile::TempDir,
    base: String,
}

impl Curl {
    fn new(d: &Daemon) -> Option<Curl> {
        if !curl_available() {
            eprintln!("SKIPPED: `curl` not found on PATH");
            return None;
        }
        Some(Curl {
            dir: tempfile::tempdir().unwrap(),
            base: d.url(""),
        })
    }

    fn file(&self, name: &str, data: &[u8]) {
        std::fs::write(self.dir.path().join(name), data).unwrap();
    }

    /// `curl <args>` with `http://localhost:8090` replaced by the daemon's address;
    /// the response as `Resp` (headers from `-D -`, body from stdout unless `-O`).
    fn run(&self, args: &[&str]) -> Resp {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("http://localhost:8090", &self.base))
            .collect();
        let out = Command::new("curl")
            .current_dir(self.dir.path())
            .args(["-sS", "-D", "-", "--noproxy", "*", "--max-time", "60"])
            .args(&args)
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_curl(&out.stdout)
    }
}

/// Headers (`-D -`) then body; interim `100 Continue` blocks are skipped.
fn parse_curl(mut raw: &[u8]) -> Resp {
    loop {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a header block");
        let head = String::from_utf8_lossy(&raw[..end]).to_string();
        raw = &raw[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap().to_string();
        let status: u16 = parts.next().unwrap().parse().unwrap();
        if status == 100 {
            continue;
        }
        let reason = parts.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        return Resp {
            version,
            status,
            reason,
            headers,
            body: raw.to_vec(),
        };
    }
}

// ---------------------------------------------------------------------------------
// The seed's examples

#[test]
fn seed_healthz_example() {
    let d = start();
    let Some(curl) = Curl::new(&d) else { return };
    let r = curl.run(&["http://localhost:8090/healthz"]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    assert_eq!(v["status"], "ok");
    let t = v["time"].as_str().unwrap();
    assert!(parse_rfc3339(t).is_some_and(|p| p.zulu), "{t}");
}

#[test]
fn seed_ingest_examples() {
    let d = start();
    let Some(curl) = Curl::new(&d) else { return };
    let photo = jpeg(1, 3000);
    let document = pdf(2, 2000);
    curl.file("photo.jpg", &photo);
    curl.file("document.pdf", &document);

    // Mixed Upload
    let r = curl.run(&[
        "-X",
        "POST",
        "http://localhost:8090/ingest",
        "-F",
        "files=@photo.jpg",
        "-F",
        "files=@document.pdf",
        "-F",
        r#"data=[{"order_id":101,"total":42.50}]"#,
        "-F",
        "namespace=orders",
        "-F",
        "comment=mixed batch",
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    let job = v["job_id"].as_str().unwrap();
    assert!(
        job.starts_with("job_") && job[4..].bytes().all(|b| b.is_ascii_digit()),
        "{job}"
    );
    assert_eq!(v["status"], "completed");
    assert_eq!(v["errors"], json!([]));
    for k in ["total_ms", "processing_ms", "json_ms"] {
        assert!(v["timing"][k].is_u64(), "timing.{k} in {v}");
    }
    let m = &v["results"]["media"][0];
    assert_eq!(v["results"]["media"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(m["original_name"], "photo.jpg");
    let sp = m["stored_path"].as_str().unwrap();
    assert!(
        sp.starts_with("media/images/mixed-batch/photo_") && sp.ends_with(".jpg"),
        "{sp}"
    );
    assert_eq!(m["category"], "mixed-batch");
    assert_eq!(m["mime_type"], "image/jpeg");
    assert_eq!(m["size"], photo.len());
    assert_eq!(m["hash"], sha256_hex(&photo), "hash is filled in");
    assert_eq!(m["duplicates"], false);
    assert_eq!(m["metadata"]["comment"], "mixed batch");
    let f = &v["results"]["files"][0];
    assert_eq!(f["original_name"], "document.pdf");
    let fp = f["stored_path"].as_str().unwrap();
    assert!(
        fp.starts_with("files/orders/document_") && fp.ends_with(".pdf"),
        "{fp}"
    );
    assert_eq!(f["file_type"], "application/pdf");
    assert_eq!(f["size"], document.len());
    assert_eq!(f["hash"], sha256_hex(&document));
    let j = &v["results"]["json"][0];
    assert_eq!(j["storage_type"], "sql");
    assert_eq!(j["table_or_collection"], "orders");
    assert_eq!(j["records_inserted"], 1);
    assert_eq!(j["schema_created"], true);
    assert_eq!(j["decision"]["engine"], "sql");
    assert!(j["decision"]["schema_sql"]
        .as_str()
        .unwrap()
        .starts_with("CREATE TABLE IF NOT EXISTS \"orders\""));
    let batch = j["batch_path"].as_str().unwrap();
    assert!(batch.starts_with("json/sql/orders/batch_"), "{batch}");
    // The stored paths and the batch file serve back.
    let c = Client::anonymous(&d);
    let got = c
        .get(&format!("/files/download?path={}", pct(sp)))
        .expect(200);
    assert_eq!(got.body, photo);
    let got = c
        .get(&format!("/files/download?path={}", pct(fp)))
        .expect(200);
    assert_eq!(got.body, document);
    let got = c
        .get(&format!("/files/download?path={}", pct(batch)))
        .expect(200);
    assert_eq!(got.text(), "{\"order_id\":101,\"total\":42.5}\n");

    // Batch Media
    let (img1, img2, video) = (jpeg(3, 1000), jpeg(4, 1200), mp4(5, 5000));
    curl.file("img1.jpg", &img1);
    curl.file("img2.jpg", &img2);
    curl.file("video.mp4", &video);
    let r = curl.run(&[
        "-X",
        "POST",
        "http://localhost:8090/ingest",
        "-F",
        "files=@img1.jpg",
        "-F",
        "files=@img2.jpg",
        "-F",
        "files=@video.mp4",
        "-F",
        "comment=family photos",
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    let media = v["results"]["media"].as_array().unwrap();
    assert_eq!(media.len(), 3, "{v}");
    for (m, (name, data, dir)) in media.iter().zip([
        ("img1.jpg", &img1, "media/images/family-photos/img1_"),
        ("img2.jpg", &img2, "media/images/family-photos/img2_"),
        ("video.mp4", &video, "media/videos/family-photos/video_"),
    ]) {
        assert_eq!(m["original_name"], name);
        assert!(m["stored_path"].as_str().unwrap().starts_with(dir), "{m}");
        assert_eq!(m["category"], "family-photos");
        assert_eq!(m["hash"], sha256_hex(data));
    }
    assert_eq!(v["results"]["json"], json!([]));
    assert_eq!(v["results"]["files"], json!([]));
    assert!(v["timing"]["json_ms"].is_null(), "no JSON, no json_ms: {v}");

    // JSON Only
    let r = curl.run(&[
        "-X",
        "POST",
        "http://localhost:8090/ingest",
        "-F",
        r#"data=[{"id":1,"name":"Alice"},{"id":2,"name":"Bob"}]"#,
        "-F",
        "namespace=users",
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    assert_eq!(v["results"]["media"], json!([]));
    let j = &v["results"]["json"][0];
    assert_eq!(j["table_or_collection"], "users");
    assert_eq!(j["records_inserted"], 2);
    assert_eq!(j["storage_type"], "sql");

    // PowerShell: files = photo.jpg, namespace = gallery, comment = demo. The same
    // bytes as before: the stored file comes back as a duplicate.
    let mp = Multipart::new()
        .file("files", "photo.jpg", Some("image/jpeg"), &photo)
        .field("namespace", "gallery")
        .field("comment", "demo");
    let v = post_form(&c, "/ingest", &mp).expect_json(200);
    let m = &v["results"]["media"][0];
    assert_eq!(m["duplicates"], true, "{v}");
    assert_eq!(m["stored_path"], sp, "the first upload's path");
    assert_eq!(m["hash"], sha256_hex(&photo));
}

#[test]
fn seed_ingest_media_examples() {
    let d = start();
    let Some(curl) = Curl::new(&d) else { return };
    let cat = png(10, 800);
    curl.file("cat.png", &cat);
    // Single Upload
    let r = curl.run(&[
        "-X",
        "POST",
        "http://localhost:8090/ingest/media",
        "-F",
        "file=@cat.png",
        "-F",
        "category=wildlife",
        "-F",
        "comment=demo upload",
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    let s = &v["stored"][0];
    let path = s["path"].as_str().unwrap();
    assert!(
        path.starts_with("media/images/wildlife/cat_") && path.ends_with(".png"),
        "{path}"
    );
    assert_eq!(s["mime_type"], "image/png");
    assert_eq!(s["media_type"], "images");
    assert_eq!(s["category"], "wildlife");
    assert_eq!(s["comment"], "demo upload");
    assert_eq!(s["original_name"], "cat.png");
    assert!(parse_rfc3339(s["uploaded_at"].as_str().unwrap()).is_some());

    // Batch Upload
    let (p1, p2, video) = (jpeg(11, 900), jpeg(12, 900), mp4(13, 2000));
    curl.file("photo1.jpg", &p1);
    curl.file("photo2.jpg", &p2);
    curl.file("video.mp4", &video);
    let r = curl.run(&[
        "-X",
        "POST",
        "http://localhost:8090/ingest/media",
        "-F",
        "file=@photo1.jpg",
        "-F",
        "file=@photo2.jpg",
        "-F",
        "file=@video.mp4",
        "-F",
        "category=vacation",
        "-F",
        "comment=summer trip",
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    let stored = v["stored"].as_array().unwrap();
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[2]["media_type"], "videos");
    assert!(stored[2]["path"]
        .as_str()
        .unwrap()
        .starts_with("media/videos/vacation/video_"));
    for s in stored {
        assert_eq!(s["category"], "vacation");
        assert_eq!(s["comment"], "summer trip");
    }

    // PowerShell: file = cat.jpg, category = pets, comment = my cat.
    let c = Client::anonymous(&d);
    let catjpg = jpeg(14, 700);
    let mp = Multipart::new()
        .file("file", "cat.jpg", Some("image/jpeg"), &catjpg)
        .field("category", "pets")
        .field("comment", "my cat");
    let v = post_form(&c, "/ingest/media", &mp).expect_json(200);
    assert_eq!(v["stored"][0]["category"], "pets");
    assert!(v["stored"][0]["path"]
        .as_str()
        .unwrap()
        .starts_with("media/images/pets/cat_"));

    // Errors: no files; invalid multipart.
    let mp = Multipart::new().field("category", "x");
    let r = post_form(&c, "/ingest/media", &mp);
    assert_eq!(error_of(&r, 400), "no files provided");
    let r = c.post("/ingest/media", Some("multipart/form-data"), b"junk");
    assert!(error_of(&r, 400).starts_with("invalid multipart payload:"));
    let r = c.post(
        "/ingest/media",
        Some("multipart/form-data; boundary=xyz"),
        b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nabc",
    );
    assert!(error_of(&r, 400).starts_with("invalid multipart payload:"));
}

#[test]
fn seed_ingest_json_examples_and_files() {
    let d = start();
    let Some(curl) = Curl::new(&d) else { return };
    // SQL-routed Example
    let r = curl.run(&[
        "-X",
        "POST",
        "http://localhost:8090/ingest/json",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{
    "namespace": "orders",
    "documents": [
      {"order_id": 1, "customer_id": 10, "total": 100.0},
      {"order_id": 2, "customer_id": 11, "total": 200.0}
    ]
  }"#,
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    let dec = &v["decision"];
    assert_eq!(dec["engine"], "sql");
    assert_eq!(dec["confidence"], 1.0);
    assert!(dec["reason"].as_str().unwrap().contains("foreign keys"));
    assert!(dec["schema_sql"]
        .as_str()
        .unwrap()
        .starts_with("CREATE TABLE IF NOT EXISTS \"orders\" ("));
    assert_eq!(dec["columns"]["order_id"]["type"], "INTEGER");
    assert_eq!(dec["columns"]["order_id"]["required"], true);
    assert_eq!(dec["summary"]["DocumentsAnalyzed"], 2);
    assert_eq!(dec["analysis"]["has_foreign_keys"], true);
    assert_eq!(dec["table"], "orders");
    assert_eq!(v["documents"], 2);
    assert_eq!(v["schema_path"], "json/sql/orders/schema.json");
    let batch = v["batch_path"].as_str().unwrap().to_string();
    assert!(batch.starts_with("json/sql/orders/batch_") && batch.ends_with(".ndjson"));
    assert_eq!(read_ndjson(&d.data_dir().join(&batch)).len(), 2);
    assert!(d.data_dir().join("json/sql/orders/schema.json").is_file());

    // NoSQL-routed Example
    let r = curl.run(&[
        "-X",
        "POST",
        "http://localhost:8090/ingest/json",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{
    "namespace": "activity",
    "comment": "flexible schema nosql",
    "documents": [
      {
        "user": {"id": "u1", "name": "Alice"},
        "events": [
          {"type": "click", "meta": {"device": "ios"}}
        ]
      }
    ]
  }"#,
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    let v = r.json();
    assert_eq!(v["decision"]["engine"], "nosql");
    assert!(v["decision"].get("schema_sql").is_none());
    assert!(v["batch_path"]
        .as_str()
        .unwrap()
        .starts_with("json/nosql/activity/batch_"));
    assert_eq!(v["schema_path"], "");
    let log = read_ndjson(&d.data_dir().join("json/ingest_log.ndjson"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(log[1]["namespace"], "activity");

    // PowerShell: the inventory example.
    let c = Client::anonymous(&d);
    let v = c
        .post_json(
            "/ingest/json",
            &json!({"namespace": "inventory", "documents": [
                {"sku": "A-100", "qty": 42, "price": 19.99},
                {"sku": "B-200", "qty": 10, "price": 4.25}]}),
        )
        .expect_json(200);
    assert_eq!(v["decision"]["table"], "inventory");
    assert_eq!(v["decision"]["engine"], "sql");

    // Errors the seed lists.
    let r = c.post_json("/ingest/json", &json!({"namespace": "x"}));
    assert_eq!(error_of(&r, 400), "no JSON documents provided");
    let r = c.post("/ingest/json", Some("application/json"), b"{\"namespace\":");
    assert!(error_of(&r, 400).starts_with("invalid JSON: "));
    let r = c.post_json(
        "/ingest/json",
        &json!({"namespace": "x", "document": {"a": 1}, "documents": [{"a": 1}]}),
    );
    assert!(error_of(&r, 400).contains("not both"));
    let r = c.post_json("/ingest/json", &json!({"documents": [{"a": 1}]}));
    assert!(error_of(&r, 400).contains("namespace is required"));
}

/// A 3 MiB file for the seed's streaming examples, and the headers they list.
#[test]
fn seed_download_stream_and_metadata_examples() {
    let d = start();
    let Some(curl) = Curl::new(&d) else { return };
    let c = Client::anonymous(&d);
    let data = mp4(20, 3 * 1024 * 1024);
    let hash = sha256_hex(&data);
    let mp = Multipart::new()
        .file("files", "clip.mp4", Some("video/mp4"), &data)
        .field("comment", "vacation");
    let v = post_form(&c, "/ingest", &mp).expect_json(200);
    let path = v["results"]["media"][0]["stored_path"]
        .as_str()
        .unwrap()
        .to_string();

    // Download by Hash: curl -O -J saves under the name from Content-Disposition.
    let r = curl.run(&[
        "-O",
        "-J",
        &format!("http://localhost:8090/files/download?hash={hash}"),
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        std::fs::read(curl.dir.path().join("clip.mp4")).unwrap(),
        data
    );
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(r.header("content-length"), Some(&*data.len().to_string()));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"clip.mp4\"")
    );
    assert_eq!(r.header("etag"), Some(&*format!("\"{hash}\"")));
    assert!(parse_http_date(r.header("last-modified").unwrap()).is_some());
    assert_eq!(r.header("x-file-category"), Some("videos/vacation"));
    assert_eq!(r.header("x-file-hash"), Some(hash.as_str()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("cache-control"), Some("private, max-age=3600"));
    // The seed's placeholder hash names no file.
    let r = curl.run(&["http://localhost:8090/files/download?hash=abc123def456..."]);
    assert_eq!(error_of(&r, 404), "file not found: hash abc123def456...");

    // Download by Path.
    std::fs::remove_file(curl.dir.path().join("clip.mp4")).unwrap();
    let r = curl.run(&[
        "-O",
        "-J",
        &format!("http://localhost:8090/files/download?path={path}"),
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        std::fs::read(curl.dir.path().join("clip.mp4")).unwrap(),
        data
    );

    // Metadata.
    let r = curl.run(&[&format!("http://localhost:8090/files/metadata?hash={hash}")]);
    assert_eq!(r.status, 200);
    let m = r.json();
    assert_eq!(m["hash"], hash);
    assert_eq!(m["original_name"], "clip.mp4");
    assert_eq!(m["stored_path"], path);
    assert_eq!(m["category"], "videos/vacation");
    assert_eq!(m["mime_type"], "video/mp4");
    assert_eq!(m["size"], data.len());
    assert!(parse_rfc3339(m["uploaded_at"].as_str().unwrap()).is_some());
    assert_eq!(m["metadata"], json!({"comment": "vacation"}));

    // Stream Full File.
    let r = curl.run(&[&format!("http://localhost:8090/files/stream?hash={hash}")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    assert_eq!(
        r.header("content-disposition"),
        Some("inline; filename=\"clip.mp4\"")
    );
    assert_eq!(r.header("cache-control"), Some("private, max-age=3600"));
    // Stream First 1MB, Middle Range, from Position to End.
    for (range, start, end) in [
        ("bytes=0-1048575", 0, 1048575),
        ("bytes=1048576-2097151", 1048576, 2097151),
        ("bytes=1048576-", 1048576, data.len() - 1),
    ] {
        let r = curl.run(&[
            "-H",
            &format!("Range: {range}"),
            &format!("http://localhost:8090/files/stream?hash={hash}"),
        ]);
        assert_eq!(r.status, 206, "{range}: {}", r.describe());
        assert_eq!(
            r.header("content-range"),
            Some(&*format!("bytes {start}-{end}/{}", data.len()))
        );
        assert_eq!(
            r.header("content-length"),
            Some(&*(end - start + 1).to_string())
        );
        assert_eq!(r.header("etag"), Some(&*format!("\"{hash}\"")));
        assert!(r.header("last-modified").is_some());
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.header("content-type"), Some("video/mp4"));
        assert!(r.body == data[start..=end], "{range}: wrong bytes");
    }
}

#[test]
fn seed_delete_examples() {
    let d = start();
    let Some(curl) = Curl::new(&d) else { return };
    // The seed's example id is 66 characters, not a SHA-256: invalid input.
    let r = curl.run(&[
        "-X",
        "DELETE",
        "http://localhost:8090/files/a1b2c3d4e5f6789012345678901234567890123456789012345678901234567890",
    ]);
    assert!(error_of(&r, 400).starts_with("invalid input:"));
    // PowerShell / Python: the same request with a real hash.
    let c = Client::anonymous(&d);
    let data = jpeg(30, 500);
    let mp = Multipart::new().file("files", "photo.jpg", Some("image/jpeg"), &data);
    post_form(&c, "/ingest", &mp).expect(200);
    let hash = sha256_hex(&data);
    let r = curl.run(&[
        "-X",
        "DELETE",
        &format!("http://localhost:8090/files/{hash}"),
    ]);
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.json()["deleted"], true);
}

// ---------------------------------------------------------------------------------
// Behaviour beyond the examples

/// Stores `data` under `name` through `/ingest` (generic or media by content) and
/// returns the file's result entry.
fn ingest_one(c: &Client, name: &str, data: &[u8], namespace: Option<&str>) -> Value {
    let mut mp = Multipart::new();
    if let Some(ns) = namespace {
        mp = mp.field("namespace", ns);
    }
    mp = mp.file("files", name, None, data);
    let v = post_form(c, "/ingest", &mp).expect_json(200);
    let r = &v["results"];
    r["media"]
        .get(0)
        .or_else(|| r["files"].get(0))
        .unwrap_or_else(|| panic!("no file result in {v}"))
        .clone()
}

#[test]
fn ingest_partial_success_and_failures() {
    let d = start();
    let c = Client::anonymous(&d);
    // Neither files nor data.
    let mp = Multipart::new().field("namespace", "x");
    assert!(error_of(&post_form(&c, "/ingest", &mp), 400).starts_with("no files or data"));
    // Invalid data alone: every item failed.
    let mp = Multipart::new().field("data", "{not json");
    let msg = error_of(&post_form(&c, "/ingest", &mp), 400);
    assert!(
        msg.starts_with("all items failed: [JSON processing: invalid JSON: "),
        "{msg}"
    );
    // Invalid data with a good file: 200, the file stored, the error listed.
    let good = pdf(40, 300);
    let mp = Multipart::new()
        .file("files", "good.pdf", None, &good)
        .field("data", "[1, 2]");
    let v = post_form(&c, "/ingest", &mp).expect_json(200);
    assert_eq!(v["results"]["files"][0]["hash"], sha256_hex(&good));
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{v}");
    assert!(errors[0].as_str().unwrap().starts_with("JSON processing: "));
    // A file whose name breaks the naming rules beside a good one: partial success.
    let mp = Multipart::new()
        .file("files", "..", None, b"bad name")
        .file("files", "fine.txt", None, b"fine");
    let v = post_form(&c, "/ingest", &mp).expect_json(200);
    assert_eq!(v["results"]["files"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["errors"][0].as_str().unwrap().starts_with("..: "), "{v}");
    // All files bad: 400 all items failed.
    let mp = Multipart::new().file("files", "..", None, b"bad");
    let msg = error_of(&post_form(&c, "/ingest", &mp), 400);
    assert!(msg.starts_with("all items failed: [..: "), "{msg}");
    // Bad metadata JSON, not multipart.
    let mp = Multipart::new()
        .field("metadata", "[1]")
        .file("files", "a.txt", None, b"a");
    assert!(error_of(&post_form(&c, "/ingest", &mp), 400).starts_with("invalid metadata JSON"));
    let r = c.post("/ingest", Some("application/json"), b"{}");
    assert!(error_of(&r, 400).starts_with("invalid multipart payload"));
    // The form's metadata lands on the files.
    let mp = Multipart::new()
        .field("metadata", r#"{"source":"scanner"}"#)
        .field("namespace", "Docs")
        .file("files", "scan.pdf", None, &pdf(41, 100));
    let v = post_form(&c, "/ingest", &mp).expect_json(200);
    let f = &v["results"]["files"][0];
    assert!(f["stored_path"]
        .as_str()
        .unwrap()
        .starts_with("files/docs/scan_"));
    let m = c
        .get(&format!(
            "/files/metadata?hash={}",
            f["hash"].as_str().unwrap()
        ))
        .expect_json(200);
    assert_eq!(m["metadata"], json!({"source": "scanner"}));
    assert_eq!(m["category"], "files/docs");
}

#[test]
fn duplicates_are_one_object() {
    let d = start();
    let c = Client::anonymous(&d);
    let data = jpeg(50, 2048);
    let first = ingest_one(&c, "a.jpg", &data, None);
    assert_eq!(first["duplicates"], false);
    let second = ingest_one(&c, "b.jpg", &data, None);
    assert_eq!(second["duplicates"], true);
    assert_eq!(second["stored_path"], first["stored_path"]);
    assert_eq!(second["hash"], first["hash"]);
    // Through /ingest/media too, and twice in one request.
    let mp = Multipart::new()
        .file("file", "c.jpg", None, &data)
        .file("file", "d.jpg", None, &jpeg(51, 10))
        .file("file", "e.jpg", None, &jpeg(51, 10));
    let v = post_form(&c, "/ingest/media", &mp).expect_json(200);
    assert_eq!(v["stored"][0]["duplicates"], true);
    assert_eq!(v["stored"][0]["path"], first["stored_path"]);
    assert_eq!(v["stored"][1]["duplicates"], false);
    assert_eq!(v["stored"][2]["duplicates"], true, "{v}");
    assert_eq!(v["stored"][2]["path"], v["stored"][1]["path"]);
    // The native API sees two objects (one per content) in namespace rhinobox.
    let list = c.get("/v1/objects?namespace=rhinobox").expect_json(200);
    let objects = list["objects"].as_array().unwrap();
    assert_eq!(objects.len(), 2, "{list}");
    assert!(objects.iter().any(|o| o["sha256"] == sha256_hex(&data)));
}

#[test]
fn ranges_conditionals_and_traversal() {
    let d = start();
    let c = Client::anonymous(&d);
    let data = random_bytes(60, 4096);
    let f = ingest_one(&c, "data.bin", &data, None);
    let hash = f["hash"].as_str().unwrap().to_string();
    assert_eq!(
        f["stored_path"].as_str().unwrap().split('/').nth(1),
        Some("generic")
    );
    let get = |range: Option<&str>, extra: &[(&str, &str)]| {
        let mut r = c.req("GET", &format!("/files/stream?hash={hash}"));
        if let Some(range) = range {
            r = r.header("Range", range);
        }
        for (k, v) in extra {
            r = r.header(k, v);
        }
        r.call()
    };
    let full = get(None, &[]).expect(200);
    assert_eq!(full.body, data);
    assert_eq!(full.header("x-file-category"), Some("files/generic"));
    let etag = full.header("etag").unwrap().to_string();
    let lm = full.header("last-modified").unwrap().to_string();
    // Suffix range (the seed says "not yet supported"; ringbox supports it).
    let r = get(Some("bytes=-1024"), &[]).expect(206);
    assert_eq!(r.header("content-range"), Some("bytes 3072-4095/4096"));
    assert!(r.body == data[3072..]);
    // An end past EOF is clamped.
    let r = get(Some("bytes=4000-999999"), &[]).expect(206);
    assert_eq!(r.header("content-range"), Some("bytes 4000-4095/4096"));
    assert!(r.body == data[4000..]);
    // Unsatisfiable: 416 {"error":"invalid range"}.
    let r = get(Some("bytes=5000-"), &[]);
    assert_eq!(error_of(&r, 416), "invalid range");
    assert_eq!(r.header("content-range"), Some("bytes */4096"));
    // If-Range: a matching ETag gives the range, another one the whole file.
    let r = get(Some("bytes=0-9"), &[("If-Range", &etag)]).expect(206);
    assert_eq!(r.body, &data[..10]);
    let r = get(Some("bytes=0-9"), &[("If-Range", "\"other\"")]).expect(200);
    assert_eq!(r.body.len(), 4096);
    // If-Modified-Since: not modified since, and modified since.
    let r = get(None, &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304, "{}", r.describe());
    assert!(r.body.is_empty());
    let old = format_http_date(parse_http_date(&lm).unwrap() - 3600);
    get(None, &[("If-Modified-Since", &old)]).expect(200);
    // Download answers the same bytes as an attachment.
    let r = c.get(&format!("/files/download?hash={hash}")).expect(200);
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"data.bin\"")
    );
    // ?disposition= overrides, as in RhinoBox.
    let r = c
        .get(&format!("/files/download?hash={hash}&disposition=inline"))
        .expect(200);
    assert!(r
        .header("content-disposition")
        .unwrap()
        .starts_with("inline"));
    // Upper-case hashes name the same file.
    c.get(&format!("/files/download?hash={}", hash.to_uppercase()))
        .expect(200);

    // Traversal: 400 with the seed's message, for every route that takes a path.
    for p in [
        "../etc/passwd",
        "/etc/passwd",
        "media/../../etc/passwd",
        "media\\..\\..\\x",
        "json/../../etc/passwd",
        "..",
    ] {
        for route in ["download", "stream", "metadata"] {
            let r = c.get(&format!("/files/{route}?path={}", pct(p)));
            assert_eq!(
                error_of(&r, 400),
                "invalid path: path traversal detected",
                "{route} {p}"
            );
        }
    }
    // Unknown path and hash; neither given.
    let r = c.get("/files/download?path=media/images/none/x.jpg");
    assert_eq!(
        error_of(&r, 404),
        "file not found: path media/images/none/x.jpg"
    );
    let r = c.get(&format!("/files/stream?hash={}", "0".repeat(64)));
    assert_eq!(
        error_of(&r, 404),
        format!("file not found: hash {}", "0".repeat(64))
    );
    for route in ["download", "stream"] {
        let r = c.get(&format!("/files/{route}"));
        assert_eq!(
            error_of(&r, 400),
            "hash or path query parameter is required"
        );
    }
    // Dataset files other than batches and schemas are not served.
    let r = c.get("/files/download?path=json/ingest_log.ndjson");
    error_of(&r, 404);
}

#[test]
fn metadata_search_and_rename() {
    let d = start();
    let c = Client::anonymous(&d);
    let a = ingest_one(&c, "Holiday-Beach.JPG", &jpeg(70, 500), None);
    let b = ingest_one(&c, "notes.txt", b"plain notes", Some("docs"));
    let ha = a["hash"].as_str().unwrap().to_string();
    let hb = b["hash"].as_str().unwrap().to_string();

    // Metadata: the seed's schema; the errors it lists.
    let m = c
        .get(&format!("/files/metadata?hash={ha}"))
        .expect_json(200);
    for k in [
        "hash",
        "original_name",
        "stored_path",
        "category",
        "mime_type",
        "size",
        "uploaded_at",
        "metadata",
    ] {
        assert!(m.get(k).is_some(), "{k} in {m}");
    }
    assert_eq!(m["stored_path"], a["stored_path"]);
    let r = c.get("/files/metadata");
    assert_eq!(error_of(&r, 400), "hash query parameter is required");
    let r = c.get("/files/metadata?hash=abc123");
    assert_eq!(error_of(&r, 404), "file not found: hash abc123");
    let m = c
        .get(&format!(
            "/files/metadata?path={}",
            pct(b["stored_path"].as_str().unwrap())
        ))
        .expect_json(200);
    assert_eq!(m["hash"], hb);

    // Search: case-insensitive substring of the name; [] for none; name required.
    let v = c.get("/files/search?name=beach").expect_json(200);
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1, "{v}");
    assert_eq!(arr[0]["hash"], ha);
    assert_eq!(
        c.get("/files/search?name=HOLIDAY")
            .expect_json(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(c.get("/files/search?name=zzz").expect_json(200), json!([]));
    assert_eq!(
        error_of(&c.get("/files/search"), 400),
        "name query parameter is required"
    );
    assert_eq!(
        c.get("/files/search?name=.&type=images")
            .expect_json(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.get("/files/search?name=.&category=docs").expect_json(200)[0]["hash"],
        hb
    );

    // Rename: 200 with the updated record; the new name everywhere.
    let r = c
        .patch_json(
            "/files/rename",
            &json!({"hash": ha, "new_name": "sunset.jpg"}),
        )
        .expect_json(200);
    assert_eq!(r["original_name"], "sunset.jpg");
    assert_eq!(r["hash"], ha);
    assert_eq!(r["renamed"], true);
    assert_eq!(r["old_metadata"]["original_name"], "Holiday-Beach.JPG");
    assert_eq!(
        c.get(&format!("/files/metadata?hash={ha}"))
            .expect_json(200)["original_name"],
        "sunset.jpg"
    );
    assert_eq!(
        c.get("/files/search?name=beach").expect_json(200),
        json!([])
    );
    assert_eq!(
        c.get("/files/search?name=SUNSET").expect_json(200)[0]["hash"],
        ha
    );
    let dl = c.get(&format!("/files/download?hash={ha}")).expect(200);
    assert_eq!(
        dl.header("content-disposition"),
        Some("attachment; filename=\"sunset.jpg\"")
    );
    // The stored path stays (it is a logical name).
    let dl = c
        .get(&format!(
            "/files/download?path={}",
            pct(a["stored_path"].as_str().unwrap())
        ))
        .expect(200);
    assert!(dl
        .header("content-disposition")
        .unwrap()
        .contains("sunset.jpg"));

    // Rename errors.
    let r = c.patch_json(
        "/files/rename",
        &json!({"hash": "0".repeat(64), "new_name": "x.jpg"}),
    );
    assert!(error_of(&r, 404).starts_with("file not found"));
    let r = c.patch_json("/files/rename", &json!({"hash": ha}));
    assert_eq!(error_of(&r, 400), "new_name is required");
    let r = c.patch_json("/files/rename", &json!({"new_name": "x"}));
    assert_eq!(error_of(&r, 400), "hash is required");
    for bad in [
        "a/b.jpg",
        "a\\b.jpg",
        "../up.jpg",
        "x..y",
        "tab\there",
        "nul\0",
    ] {
        let r = c.patch_json("/files/rename", &json!({"hash": ha, "new_name": bad}));
        assert!(error_of(&r, 400).starts_with("invalid filename"), "{bad:?}");
    }
    let r = c.req("PATCH", "/files/rename").send_bytes(b"{oops");
    assert!(error_of(&r, 400).starts_with("invalid JSON"));

    // The rename log and the daily audit file.
    let log = read_ndjson(&d.data_dir().join("metadata/rename_log.ndjson"));
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["hash"], ha);
    assert_eq!(log[0]["old_original_name"], "Holiday-Beach.JPG");
    assert_eq!(log[0]["new_original_name"], "sunset.jpg");
    assert_eq!(log[0]["old_stored_path"], a["stored_path"]);
    assert!(parse_rfc3339(log[0]["renamed_at"].as_str().unwrap()).is_some());
    let audit = audit_lines(&d);
    let renamed: Vec<&Value> = audit
        .iter()
        .filter(|l| l["action"] == "object.renamed")
        .collect();
    assert_eq!(renamed.len(), 1);
    let l = renamed[0];
    assert_eq!(l["old_name"], "Holiday-Beach.JPG");
    assert_eq!(l["name"], "sunset.jpg");
    assert_eq!(l["sha256"], ha);
    assert_eq!(l["namespace"], "rhinobox");
    assert_eq!(l["actor"], "anonymous");
    assert_eq!(l["ip"], "127.0.0.1");
    assert_eq!(l["at"], log[0]["renamed_at"], "the view is the same record");
}

#[test]
fn metadata_merge_replace_remove_and_batch() {
    let d = start();
    let c = Client::anonymous(&d);
    let f = ingest_one(&c, "a.pdf", &pdf(80, 100), None);
    let h = f["hash"].as_str().unwrap().to_string();
    let g = ingest_one(&c, "b.pdf", &pdf(81, 100), None);
    let h2 = g["hash"].as_str().unwrap().to_string();
    let patch = |hash: &str, body: Value| c.patch_json(&format!("/files/{hash}/metadata"), &body);

    let v = patch(
        &h,
        json!({"action": "merge", "metadata": {"a": "1", "b": "2"}}),
    )
    .expect_json(200);
    assert_eq!(v["metadata"], json!({"a": "1", "b": "2"}));
    let v = patch(&h, json!({"action": "merge", "metadata": {"c": 3}})).expect_json(200);
    assert_eq!(
        v["metadata"],
        json!({"a": "1", "b": "2", "c": 3}),
        "merge keeps keys"
    );
    assert_eq!(v["old_metadata"], json!({"a": "1", "b": "2"}));
    // No action means merge.
    let v = patch(&h, json!({"metadata": {"d": true}})).expect_json(200);
    assert_eq!(v["metadata"]["d"], true);
    let v = patch(&h, json!({"action": "remove", "keys": ["a", "zz"]})).expect_json(200);
    assert_eq!(v["metadata"], json!({"b": "2", "c": 3, "d": true}));
    let v = patch(&h, json!({"action": "remove", "fields": ["b"]})).expect_json(200);
    assert_eq!(v["metadata"], json!({"c": 3, "d": true}));
    let v = patch(&h, json!({"action": "replace", "metadata": {"only": "x"}})).expect_json(200);
    assert_eq!(v["metadata"], json!({"only": "x"}));
    // Replace keeps what RhinoBox itself knows of the file.
    assert_eq!(v["stored_path"], f["stored_path"]);
    assert_eq!(v["category"], "files/generic");
    let m = c.get(&format!("/files/metadata?hash={h}")).expect_json(200);
    assert_eq!(m["metadata"], json!({"only": "x"}));

    // Errors.
    let r = patch(&"0".repeat(64), json!({"metadata": {"a": 1}}));
    assert!(error_of(&r, 404).starts_with("file not found: hash 000"));
    let r = patch(&h, json!({"action": "zap", "metadata": {}}));
    assert!(error_of(&r, 400).starts_with("invalid action: zap"));
    let r = patch(&h, json!({"action": "merge"}));
    assert!(error_of(&r, 400).contains("metadata is required"));
    let r = patch(&h, json!({"action": "remove"}));
    assert!(error_of(&r, 400).contains("keys is required"));
    for key in ["hash", "stored_path", "_rhinobox", "Category"] {
        let r = patch(&h, json!({"metadata": {key: 1}}));
        assert!(error_of(&r, 400).contains("protected"), "{key}");
    }
    let r = patch(&h, json!({"metadata": [1]}));
    error_of(&r, 400);

    // Batch: one bad entry does not fail the others.
    let v = c
        .post_json(
            "/files/metadata/batch",
            &json!({"updates": [
                {"hash": h, "action": "merge", "metadata": {"k": 1}},
                {"hash": "0".repeat(64), "action": "merge", "metadata": {"k": 1}},
                {"hash": h2, "action": "replace", "metadata": {"z": 2}},
                {"action": "merge", "metadata": {"k": 1}},
                {"hash": h2, "action": "bogus"}
            ]}),
        )
        .expect_json(200);
    assert_eq!(v["succeeded"], 2, "{v}");
    assert_eq!(v["failed"], 3);
    let res = v["results"].as_array().unwrap();
    assert_eq!(res.len(), 5);
    assert_eq!(res[0]["success"], true);
    assert_eq!(res[0]["record"]["metadata"], json!({"only": "x", "k": 1}));
    assert_eq!(res[1]["success"], false);
    assert_eq!(res[1]["status"], 404);
    assert_eq!(res[2]["record"]["metadata"], json!({"z": 2}));
    assert_eq!(res[3]["error"], "hash is required");
    assert!(res[4]["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid action"));
    let r = c.post_json("/files/metadata/batch", &json!({"updates": []}));
    assert_eq!(error_of(&r, 400), "updates is required");
    // Every change is in the audit log.
    let n = audit_lines(&d)
        .iter()
        .filter(|l| l["action"] == "object.metadata")
        .count();
    assert_eq!(n, 8);
}

#[test]
fn delete_logs_and_metadata_only_cleanup() {
    let d = start();
    let c = Client::anonymous(&d);
    let data = jpeg(90, 1000);
    let f = ingest_one(&c, "photo.jpg", &data, None);
    let h = f["hash"].as_str().unwrap().to_string();
    let v = c.delete(&format!("/files/{h}")).expect_json(200);
    assert_eq!(v["hash"], h);
    assert_eq!(v["original_name"], "photo.jpg");
    assert_eq!(v["stored_path"], f["stored_path"]);
    assert_eq!(v["deleted"], true);
    assert!(parse_rfc3339(v["deleted_at"].as_str().unwrap()).is_some());
    assert_eq!(v["message"], "deleted file photo.jpg");
    // The delete log holds the seed's record as soon as the 200 is out.
    let log = read_ndjson(&d.data_dir().join("metadata/delete_log.ndjson"));
    assert_eq!(log.len(), 1, "{log:?}");
    let l = &log[0];
    assert_eq!(l["hash"], h);
    assert_eq!(l["original_name"], "photo.jpg");
    assert_eq!(l["stored_path"], f["stored_path"]);
    assert_eq!(
        l["category"],
        f["category"]
            .as_str()
            .map(|c| format!("images/{c}"))
            .unwrap()
    );
    assert_eq!(l["mime_type"], "image/jpeg");
    assert_eq!(l["size"], data.len());
    assert!(parse_rfc3339(l["deleted_at"].as_str().unwrap()).is_some());
    let audit = audit_lines(&d);
    let del: Vec<&Value> = audit
        .iter()
        .filter(|l| l["action"] == "object.deleted")
        .collect();
    assert_eq!(del.len(), 1);
    assert_eq!(del[0]["at"], l["deleted_at"], "the view is the same record");
    assert_eq!(del[0]["sha256"], h);
    assert!(del[0]["object_id"].is_string());
    // Gone: 404 with the seed's message; errors for bad ids.
    let r = c.delete(&format!("/files/{h}"));
    assert_eq!(error_of(&r, 404), format!("file not found: hash {h}"));
    c.get(&format!("/files/download?hash={h}")).expect(404);
    let r = c.delete("/files/not-a-hash");
    assert!(error_of(&r, 400).starts_with("invalid input"));
    let r = c.delete("/files");
    assert_eq!(error_of(&r, 400), "file_id is required");

    // Metadata-only cleanup: the blob file vanished behind ringbox's back.
    let data = pdf(91, 500);
    let f = ingest_one(&c, "lost.pdf", &data, None);
    let h = f["hash"].as_str().unwrap().to_string();
    let blob = d.data_dir().join("blobs").join(&h[..2]).join(&h);
    std::fs::remove_file(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
    let v = c.delete(&format!("/files/{h}")).expect_json(200);
    assert_eq!(v["deleted"], true);
    c.get(&format!("/files/metadata?hash={h}")).expect(404);
    assert_eq!(
        read_ndjson(&d.data_dir().join("metadata/delete_log.ndjson")).len(),
        2
    );
}

#[test]
fn hostile_json_is_refused_or_stored_safely() {
    let d = start();
    let c = Client::anonymous(&d);
    // 10,000 levels of nesting.
    let deep = format!(
        "{{\"namespace\":\"deep\",\"document\":{}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = c.post("/ingest/json", Some("application/json"), deep.as_bytes());
    assert!(error_of(&r, 400).starts_with("invalid JSON"));
    // A number beyond f64.
    let r = c.post(
        "/ingest/json",
        Some("application/json"),
        br#"{"namespace":"n","document":{"x":1e400}}"#,
    );
    assert!(error_of(&r, 400).starts_with("invalid JSON"));
    // Beyond i64: kept as a float, stored.
    let r = c.post(
        "/ingest/json",
        Some("application/json"),
        br#"{"namespace":"big","documents":[{"x":123456789012345678901234567890}]}"#,
    );
    r.expect(200);
    // Duplicate keys: the last one wins.
    c.post(
        "/ingest/json",
        Some("application/json"),
        br#"{"namespace":"dup","documents":[{"k":1,"k":2}]}"#,
    )
    .expect(200);
    let rows = c.get("/v1/datasets/dup/rows").expect_json(200);
    assert_eq!(rows["rows"][0]["k"], 2);
    // Column names that are SQL keywords or carry quotes: stored, read back as they came.
    let weird = json!({"namespace": "weird", "documents": [
        {"select": 1, "from": "x", "drop table weird;--": 2, "a\"b": 3, "it's": 4, "[x]": 5}
    ]});
    c.post_json("/ingest/json", &weird).expect(200);
    let rows = c.get("/v1/datasets/weird/rows").expect_json(200);
    let row = &rows["rows"][0];
    assert_eq!(row["select"], 1);
    assert_eq!(row["drop table weird;--"], 2);
    assert_eq!(row["a\"b"], 3);
    assert_eq!(row["it's"], 4);
    assert_eq!(row["[x]"], 5);
    assert_eq!(rows["engine"], "sql");
    // A body over --max-json-body (default 8 MiB, a "100 MB string" is far beyond it):
    // 413 before the body is read, with RhinoBox's error shape.
    let r = oversized(&d, "/ingest/json", "application/json", 100 << 20);
    error_of(&r, 413);
    // The daemon is fine.
    c.get("/healthz").expect(200);
}

#[test]
fn datasets_read_back_through_the_native_routes() {
    let d = start();
    let c = Client::anonymous(&d);
    let orders: Vec<Value> = (1..=5)
        .map(|i| json!({"order_id": i, "customer_id": i % 2, "total": i as f64 * 10.0}))
        .collect();
    c.post_json(
        "/ingest/json",
        &json!({"namespace": "orders", "documents": orders}),
    )
    .expect(200);
    c.post_json(
        "/ingest/json",
        &json!({"namespace": "activity", "comment": "nosql", "documents": [
            {"user": {"id": "u1"}}, {"user": {"id": "u2"}, "tags": ["a"]}, {"other": 1}]}),
    )
    .expect(200);
    // Native ingestion, native error shape.
    let v = c
        .post_json(
            "/v1/ingest",
            &json!({"namespace": "orders", "document": {"order_id": 6, "customer_id": 0, "total": 60.0}}),
        )
        .expect_json(200);
    assert_eq!(v["decision"]["engine"], "sql");
    c.post_json("/v1/ingest", &json!({"namespace": "x"}))
        .expect_error(400, "no_documents");

    let list = c.get("/v1/datasets").expect_json(200);
    let ds = list["datasets"].as_array().unwrap();
    assert_eq!(ds.len(), 2, "{list}");
    let o = ds.iter().find(|d| d["name"] == "orders").unwrap();
    assert_eq!(o["engine"], "sql");
    assert_eq!(o["row_count"], 6);
    assert!(o["schema_sql"]
        .as_str()
        .unwrap()
        .contains("\"order_id\" INTEGER"));
    let a = ds.iter().find(|d| d["name"] == "activity").unwrap();
    assert_eq!(a["engine"], "nosql");
    assert_eq!(a["row_count"], 3);

    // SQL rows, paged.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/datasets/orders/rows?limit=4".to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = c.get(&path).expect_json(200);
        for r in page["rows"].as_array().unwrap() {
            seen.push(r["order_id"].as_i64().unwrap());
            assert!(r["_rowid"].is_i64());
        }
        match page["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5, 6]);
    // NoSQL documents from LMDB, paged.
    let page = c.get("/v1/datasets/activity/rows?limit=2").expect_json(200);
    assert_eq!(page["engine"], "nosql");
    assert_eq!(
        page["rows"][0],
        json!({"seq": 1, "document": {"user": {"id": "u1"}}})
    );
    let next = page["next_cursor"].as_str().unwrap().to_string();
    let page = c
        .get(&format!("/v1/datasets/activity/rows?cursor={next}"))
        .expect_json(200);
    assert_eq!(page["rows"], json!([{"seq": 3, "document": {"other": 1}}]));
    assert_eq!(page["next_cursor"], Value::Null);
    c.get("/v1/datasets/nope/rows")
        .expect_error(404, "not_found");
    c.get("/v1/datasets/orders/rows?limit=0")
        .expect_error(400, "bad_request");
    c.get("/v1/datasets/orders/rows?cursor=abc")
        .expect_error(400, "bad_request");

    // A query, and injection attempts refused.
    let q = |sql: &str| c.post_json("/v1/datasets/orders/query", &json!({ "sql": sql }));
    let v = q(
        "SELECT customer_id, sum(total) AS s FROM orders GROUP BY customer_id ORDER BY customer_id",
    )
    .expect_json(200);
    assert_eq!(v["columns"], json!(["customer_id", "s"]));
    assert_eq!(v["rows"], json!([[0, 120.0], [1, 90.0]]));
    assert_eq!(v["truncated"], false);
    for sql in [
        "SELECT * FROM orders; DROP TABLE orders",
        "DROP TABLE orders",
        "DELETE FROM orders",
        "SELECT * FROM _datasets",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM orders WHERE 1=1 UNION SELECT name, sql, 1, 1 FROM sqlite_schema",
        "ATTACH DATABASE '/tmp/x.db' AS x",
        "PRAGMA writable_schema=1",
        "SELECT load_extension('x')",
    ] {
        let r = q(sql);
        assert_eq!(r.status, 400, "{sql}: {}", r.describe());
        assert!(r.json()["error"]["code"].is_string(), "{sql}");
    }
    c.post_json("/v1/datasets/activity/query", &json!({"sql": "SELECT 1"}))
        .expect_error(400, "not_sql");
    q("SELECT * FROM activity").expect_error(400, "query_refused");
    c.post(
        "/v1/datasets/orders/query",
        Some("application/json"),
        b"{\"sql\":1}",
    )
    .expect_error(400, "bad_request");
    // Nothing was harmed.
    assert_eq!(
        q("SELECT count(*) AS n FROM orders").expect_json(200)["rows"],
        json!([[6]])
    );
}

#[test]
fn native_api_sees_rhinobox_files_and_tokens_are_needed_by_default() {
    let d = Daemon::start(&[]);
    let anon = Client::anonymous(&d);
    let c = Client::new(&d);
    let data = png(100, 300);
    let mp = Multipart::new().file("file", "pic.png", None, &data);
    // Without --anonymous: 401 in RhinoBox's error shape.
    let r = post_form(&anon, "/ingest/media", &mp);
    assert!(error_of(&r, 401).contains("token"));
    error_of(&anon.get("/files/search?name=x"), 401);
    anon.get("/v1/datasets").expect_error(401, "unauthorized");
    anon.get("/healthz").expect(200);
    // With the token.
    let v = post_form(&c, "/ingest/media", &mp).expect_json(200);
    let hash = v["stored"][0]["hash"].as_str().unwrap().to_string();
    assert_eq!(hash, sha256_hex(&data));
    let list = c.get("/v1/objects?namespace=rhinobox").expect_json(200);
    let o = &list["objects"][0];
    assert_eq!(o["name"], "pic.png");
    assert_eq!(o["sha256"], hash);
    assert_eq!(o["mime_type"], "image/png");
    assert_eq!(
        o["metadata"]["_rhinobox"]["stored_path"],
        v["stored"][0]["path"]
    );
    let id = o["id"].as_str().unwrap().to_string();
    assert_eq!(c.content(&id).expect(200).body, data);
    // A native rename and delete show in RhinoBox's logs: views of the same records.
    c.patch_json(
        &format!("/v1/objects/{id}"),
        &json!({"name": "renamed.png"}),
    )
    .expect(200);
    c.delete(&format!("/v1/objects/{id}")).expect(204);
    let ok = crate::common::util::poll(std::time::Duration::from_secs(5), || {
        let n = read_ndjson(&d.data_dir().join("metadata/delete_log.ndjson")).len();
        (n == 1).then_some(())
    });
    assert!(ok.is_some(), "the native delete reaches the delete log");
    let ren = read_ndjson(&d.data_dir().join("metadata/rename_log.ndjson"));
    assert_eq!(ren[0]["new_original_name"], "renamed.png");
    let del = read_ndjson(&d.data_dir().join("metadata/delete_log.ndjson"));
    assert_eq!(del[0]["hash"], hash);
    assert_eq!(del[0]["original_name"], "renamed.png");
    let audit = audit_lines(&d);
    let del = audit
        .iter()
        .find(|l| l["action"] == "object.deleted")
        .unwrap();
    assert_eq!(del["actor"], "admin");
    // Native objects are not RhinoBox files: no hash alias, not found by hash.
    let n = c.upload("native.bin", None, None, b"native bytes");
    let r = c.get(&format!(
        "/files/metadata?hash={}",
        n["sha256"].as_str().unwrap()
    ));
    error_of(&r, 404);
}

#[test]
fn rhinobox_max_upload_mb_maps_to_max_body() {
    let d = Daemon::start_with_env(
        &["--anonymous", "write"],
        &[("RHINOBOX_MAX_UPLOAD_MB", "1")],
    );
    let c = Client::anonymous(&d);
    let small = pdf(110, 100_000);
    let mp = Multipart::new().file("files", "small.pdf", None, &small);
    post_form(&c, "/ingest", &mp).expect(200);
    let r = oversized(
        &d,
        "/ingest",
        "multipart/form-data; boundary=x",
        (1 << 20) + 1,
    );
    error_of(&r, 413);
}
