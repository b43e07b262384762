//! photobackup (seed 002) against the real daemon: `GET /list` (scanned media and
//! uploads, dates from EXIF, the server's local time or the file's ctime), rescans
//! (new files and directories, rewritten files re-hashed, deleted files gone),
//! `GET /image/<sha256>` with ranges and conditionals and a deleted file's 404 on the
//! next request, thumbnails, `PUT /image/<filename>` (the seed README's curl line,
//! dated names with suffixes, de-duplication, the 400s, an encoded slash), the
//! anonymous modes and the error shape. Every wait is a poll with a deadline.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::common::raw::{exchange, request};
use crate::common::util::{poll, sha256_hex, Multipart};
use crate::common::{Client, Daemon, Resp};

/// How long a scan or rescan may take to show a change (`--rescan-interval 2`).
const SCAN_WAIT: Duration = Duration::from_secs(15);

fn media_file(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/media")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A `w` x `h` PNG of noise from `seed` (noise does not compress: about 3 bytes a pixel).
fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let b = x.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A small JPEG whose EXIF has only `DateTimeOriginal` (no offset: a naive local time).
fn jpeg_with_naive_date(date: &str) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(16, 16, image::Rgb([200, 100, 50]));
    let mut jpeg = std::io::Cursor::new(Vec::new());
    img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let jpeg = jpeg.into_inner();
    // TIFF, little-endian: IFD0 (at 8) points to the Exif IFD (at 26), whose one entry
    // is DateTimeOriginal (ASCII, 20 bytes at 44).
    let mut t = b"II*\0".to_vec();
    t.extend(8u32.to_le_bytes());
    t.extend(1u16.to_le_bytes());
    t.extend(0x8769u16.to_le_bytes());
    t.extend(4u16.to_le_bytes());
    t.extend(1u32.to_le_bytes());
    t.extend(26u32.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    t.extend(1u16.to_le_bytes());
    t.extend(0x9003u16.to_le_bytes());
    t.extend(2u16.to_le_bytes());
    t.extend(20u32.to_le_bytes());
    t.extend(44u32.to_le_bytes());
    t.extend(0u32.to_le_bytes());
    assert_eq!(date.len(), 19);
    t.extend(date.as_bytes());
    t.push(0);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(t);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE1]);
    out.extend(u16::try_from(app1.len() + 2).unwrap().to_be_bytes());
    out.extend(app1);
    out.extend(&jpeg[2..]);
    out
}

/// A scan root `photos` in a temp dir.
struct Root {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

impl Root {
    fn new() -> Root {
        let tmp = tempfile::Builder::new()
            .prefix("ringbox-photobackup-")
            .tempdir()
            .unwrap();
        let path = tmp.path().join("photos");
        std::fs::create_dir_all(&path).unwrap();
        Root { _tmp: tmp, path }
    }
    fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }
    fn str(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

fn start(root: &Root, anonymous: &str, envs: &[(&str, &str)]) -> Daemon {
    Daemon::start_with_env(
        &[
            "--anonymous",
            anonymous,
            "--scan-dir",
            root.str(),
            "--rescan-interval",
            "2",
        ],
        envs,
    )
}

/// `GET /list` without credentials.
#[track_caller]
fn list(c: &Client) -> Map<String, Value> {
    match c.get("/list").expect_json(200) {
        Value::Object(m) => m,
        other => panic!("/list is not an object: {other}"),
    }
}

/// Polls `/list` until `f` holds.
#[track_caller]
fn wait_list(
    c: &Client,
    what: &str,
    f: impl Fn(&Map<String, Value>) -> bool,
) -> Map<String, Value> {
    poll(SCAN_WAIT, || {
        let m = list(c);
        f(&m).then_some(m)
    })
    .unwrap_or_else(|| panic!("{what}: not seen within {SCAN_WAIT:?}: {:?}", list(c)))
}

/// `PUT /image/<url_name>` with a part `file` named `part_name`.
fn put_image(c: &Client, url_name: &str, part_name: &str, data: &[u8]) -> Resp {
    let m = Multipart::new().file("file", part_name, Some("application/octet-stream"), data);
    c.put(
        &format!("/image/{url_name}"),
        Some(&m.content_type()),
        &m.body(),
    )
}

/// Asserts the werkzeug-style JSON error `{"code","name","description"}`.
#[track_caller]
fn expect_error(r: Resp, status: u16, description: &str) {
    let v = r.expect_json(status);
    assert_eq!(v["code"], status, "{v}");
    assert!(v["name"].as_str().is_some_and(|n| !n.is_empty()), "{v}");
    assert_eq!(v["description"], description, "{v}");
}

fn float(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v}"))
}

fn ctime(p: &Path) -> f64 {
    let m = std::fs::metadata(p).unwrap();
    m.ctime() as f64 + m.ctime_nsec() as f64 / 1e9
}

fn mtime(p: &Path) -> f64 {
    let m = std::fs::metadata(p).unwrap();
    m.mtime() as f64 + m.mtime_nsec() as f64 / 1e9
}

#[test]
fn list_shows_scanned_media_with_exif_local_or_ctime_dates() {
    let root = Root::new();
    let photo = media_file("photo.jpg"); // DateTimeOriginal with an offset (-03:00)
    let naive = jpeg_with_naive_date("2021:03:04 05:06:07");
    let plain = png(8, 8, 1);
    let clip = media_file("clip.mp4");
    root.write("photo.jpg", &photo);
    root.write("naive.jpg", &naive);
    let plain_path = root.write("plain.png", &plain);
    let clip_path = root.write("sub/clip.mp4", &clip);
    root.write("notes.txt", b"not media");
    root.write(".hidden.jpg", &photo);
    // The server's zone: UTC+05:30 (a POSIX TZ string, no zone database needed).
    let d = start(&root, "write", &[("TZ", "IST-5:30")]);
    let c = Client::anonymous(&d);
    let m = wait_list(&c, "the first scan", |m| m.len() == 4);
    let key = |data: &[u8]| sha256_hex(data);
    for data in [&photo, &naive, &plain, &clip] {
        assert!(m.contains_key(&key(data)), "{m:?}");
    }
    let abs = |rel: &str| root.path.join(rel).to_str().unwrap().to_string();
    let e = &m[&key(&photo)];
    assert_eq!(e["filename"], "photo.jpg");
    assert_eq!(e["file_path"], abs("photo.jpg"));
    assert!((float(e, "last_modified") - mtime(&root.path.join("photo.jpg"))).abs() < 1e-3);
    // 2024-07-14 18:30:05.25 at -03:00.
    assert!(
        (float(e, "original_creation_date") - 1_720_992_605.25).abs() < 1e-6,
        "{e}"
    );
    // A naive EXIF time is the server's local time: 2021-03-04 05:06:07 at +05:30.
    let e = &m[&key(&naive)];
    assert_eq!(e["filename"], "naive.jpg");
    assert_eq!(
        float(e, "original_creation_date"),
        1_614_834_367.0 - 19_800.0,
        "{e}"
    );
    // No EXIF date: the file's ctime (a video is listed without being decoded).
    let e = &m[&key(&plain)];
    assert!(
        (float(e, "original_creation_date") - ctime(&plain_path)).abs() < 1e-3,
        "{e}"
    );
    let e = &m[&key(&clip)];
    assert_eq!(e["filename"], "clip.mp4");
    assert_eq!(e["file_path"], abs("sub/clip.mp4"));
    assert!(
        (float(e, "original_creation_date") - ctime(&clip_path)).abs() < 1e-3,
        "{e}"
    );
    assert_eq!(e.as_object().unwrap().len(), 4, "{e}");
    // With an Authorization header, /list is not photobackup's.
    let r = Client::with_authorization(&d, "Bearer nope").get("/list");
    assert!(
        r.status != 200
            || !serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v.as_object().map(|o| o.contains_key(&key(&photo))))
                .unwrap_or(false),
        "{}",
        r.describe()
    );
}

#[test]
fn rescans_add_rehash_and_remove() {
    let root = Root::new();
    let a = png(8, 8, 10);
    let b = png(8, 8, 11);
    root.write("a.png", &a);
    root.write("b.png", &b);
    let d = start(&root, "write", &[]);
    let c = Client::anonymous(&d);
    wait_list(&c, "the first scan", |m| m.len() == 2);
    // A new file, and a file in a new subdirectory.
    let n = png(8, 8, 12);
    let deep = png(8, 8, 13);
    root.write("new.png", &n);
    root.write("2024/trip/deep.png", &deep);
    let m = wait_list(&c, "new files", |m| m.len() == 4);
    assert_eq!(
        m[&sha256_hex(&deep)]["file_path"],
        root.path.join("2024/trip/deep.png").to_str().unwrap()
    );
    // A rewritten file (new size and mtime): listed under its new hash only.
    let a2 = png(9, 9, 14);
    root.write("a.png", &a2);
    let m = wait_list(&c, "a rewritten file", |m| {
        m.contains_key(&sha256_hex(&a2)) && !m.contains_key(&sha256_hex(&a))
    });
    assert_eq!(m.len(), 4, "{m:?}");
    assert_eq!(m[&sha256_hex(&a2)]["filename"], "a.png");
    c.get(&format!("/image/{}", sha256_hex(&a))).expect(404);
    assert_eq!(
        c.get(&format!("/image/{}", sha256_hex(&a2)))
            .expect(200)
            .body,
        a2
    );
    // A deleted file: gone.
    std::fs::remove_file(root.path.join("b.png")).unwrap();
    let m = wait_list(&c, "a deleted file", |m| !m.contains_key(&sha256_hex(&b)));
    assert_eq!(m.len(), 3, "{m:?}");
}

#[test]
fn images_are_served_with_ranges_and_conditionals_and_404_once_deleted() {
    let root = Root::new();
    let big = png(64, 64, 20); // about 12 KiB
    assert!(big.len() > 8192);
    let path = root.write("big.png", &big);
    let d = start(&root, "write", &[]);
    let c = Client::anonymous(&d);
    wait_list(&c, "the first scan", |m| m.len() == 1);
    let url = format!("/image/{}", sha256_hex(&big));
    let r = c.get(&url).expect(200);
    assert_eq!(r.body, big);
    assert_eq!(r.header("content-type"), Some("image/png"));
    let etag = r.must_header("etag").to_string();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&big)));
    // A 4 KiB range.
    let r = c
        .req("GET", &url)
        .header("Range", "bytes=4096-8191")
        .call()
        .expect(206);
    assert_eq!(r.body, &big[4096..8192]);
    assert_eq!(
        r.header("content-range").map(str::to_string),
        Some(format!("bytes 4096-8191/{}", big.len()))
    );
    c.req("GET", &url)
        .header("Range", &format!("bytes={}-", big.len() + 10))
        .call()
        .expect(416);
    c.req("GET", &url)
        .header("If-None-Match", &etag)
        .call()
        .expect(304);
    let r = c.head(&url).expect(200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("content-length").map(str::to_string),
        Some(big.len().to_string())
    );
    // Served (its descriptor cached), then deleted: 404 on the very next request.
    for _ in 0..3 {
        c.get(&url).expect(200);
    }
    std::fs::remove_file(&path).unwrap();
    expect_error(c.get(&url), 404, "Image not found.");
    expect_error(c.get(&url), 404, "Image not found.");
    expect_error(
        c.get(&format!("/thumbnail/{}", sha256_hex(&big))),
        404,
        "Thumbnail not found.",
    );
}

#[test]
fn thumbnails_are_png_and_404_for_videos() {
    let root = Root::new();
    let photo = png(300, 200, 30);
    let clip = media_file("clip.mp4");
    root.write("wide.png", &photo);
    root.write("clip.mp4", &clip);
    let d = start(&root, "write", &[]);
    let c = Client::anonymous(&d);
    wait_list(&c, "the first scan", |m| m.len() == 2);
    let r = c
        .get(&format!("/thumbnail/{}", sha256_hex(&photo)))
        .expect(200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    let img = image::load_from_memory_with_format(&r.body, image::ImageFormat::Png).unwrap();
    assert_eq!(img.width().max(img.height()), 256);
    assert!(img.width() > img.height());
    expect_error(
        c.get(&format!("/thumbnail/{}", sha256_hex(&clip))),
        404,
        "Thumbnail not found.",
    );
    expect_error(
        c.get(&format!("/thumbnail/{}", "0".repeat(64))),
        404,
        "Thumbnail not found.",
    );
    for bad in ["abc", &"x".repeat(64), &"a".repeat(63)] {
        expect_error(
            c.get(&format!("/thumbnail/{bad}")),
            400,
            "Invalid SHA256 format.",
        );
    }
}

#[test]
fn uploads_are_dated_suffixed_deduplicated_and_kept_out_of_the_scanned_directory() {
    let root = Root::new();
    let scanned = png(8, 8, 40);
    root.write("scanned.png", &scanned);
    let d = start(&root, "write", &[]);
    let c = Client::anonymous(&d);
    wait_list(&c, "the first scan", |m| m.len() == 1);
    let a = png(16, 16, 41);
    let b = png(16, 16, 42);
    let v = put_image(&c, "image.jpg", "local.png", &a).expect_json(201);
    assert_eq!(v["message"], "Image uploaded successfully.");
    assert_eq!(v["sha256"], sha256_hex(&a));
    assert_eq!(v["filename"], "image.jpg");
    let path = v["file_path"].as_str().unwrap().to_string();
    let day = path
        .strip_prefix("uploads/")
        .and_then(|p| p.strip_suffix("/image.jpg"))
        .unwrap_or_else(|| panic!("{path}"));
    assert!(
        day.len() == 8 && day.bytes().all(|b| b.is_ascii_digit()),
        "{path}"
    );
    assert_eq!(v["thumbnail_file"], format!("{}.png", sha256_hex(&a)));
    // Same name, other content: `_1`, then `_2`.
    let v = put_image(&c, "image.jpg", "x.png", &b).expect_json(201);
    assert_eq!(v["filename"], "image_1.jpg");
    assert_eq!(v["file_path"], format!("uploads/{day}/image_1.jpg"));
    let c3 = png(16, 16, 43);
    let v = put_image(&c, "image.jpg", "x.png", &c3).expect_json(201);
    assert_eq!(v["file_path"], format!("uploads/{day}/image_2.jpg"));
    // Known content: 200 with the existing file, whatever the new name.
    let v = put_image(&c, "other.png", "other.png", &a).expect_json(200);
    assert_eq!(v["message"], "Image content already exists.");
    assert_eq!(v["sha256"], sha256_hex(&a));
    assert_eq!(
        (v["filename"].as_str(), v["file_path"].as_str()),
        (Some("image.jpg"), Some(path.as_str()))
    );
    // Content the scan found: the scanned file (absolute path).
    let v = put_image(&c, "copy.png", "copy.png", &scanned).expect_json(200);
    assert_eq!(v["filename"], "scanned.png");
    assert_eq!(
        v["file_path"],
        root.path.join("scanned.png").to_str().unwrap()
    );
    // Nothing was written into the scanned directory.
    let entries: Vec<_> = std::fs::read_dir(&root.path)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(entries, vec![std::ffi::OsString::from("scanned.png")]);
    // Served, listed, thumbnailed, and still there after rescans.
    assert_eq!(
        c.get(&format!("/image/{}", sha256_hex(&b)))
            .expect(200)
            .body,
        b
    );
    let m = list(&c);
    assert_eq!(m.len(), 4, "{m:?}");
    let e = &m[&sha256_hex(&b)];
    assert_eq!(e["file_path"], format!("uploads/{day}/image_1.jpg"));
    assert_eq!(e["filename"], "image_1.jpg");
    let now = crate::common::util::now_unix_ms() as f64 / 1000.0;
    assert!((float(e, "last_modified") - now).abs() < 120.0, "{e}");
    assert!(
        (float(e, "original_creation_date") - now).abs() < 120.0,
        "{e}"
    );
    let r = poll(Duration::from_secs(5), || {
        let r = c.get(&format!("/thumbnail/{}", sha256_hex(&a)));
        (r.status == 200).then_some(r)
    })
    .expect("the upload's thumbnail within 5 s");
    assert_eq!(r.header("content-type"), Some("image/png"));
    let runs =
        |c: &Client| crate::common::util::metric_sum(&c.metrics(), "ringbox_scan_runs_total", &[]);
    let admin = Client::new(&d);
    let before = runs(&admin);
    poll(SCAN_WAIT, || (runs(&admin) >= before + 2.0).then_some(())).expect("two rescans");
    assert_eq!(list(&c).len(), 4);
    c.get(&format!("/image/{}", sha256_hex(&c3))).expect(200);
}

#[test]
fn the_seed_readme_curl_line_uploads_an_image() {
    let Ok(out) = std::process::Command::new("curl").arg("--version").output() else {
        eprintln!("skipped: curl is not installed");
        return;
    };
    if !out.status.success() {
        eprintln!("skipped: curl does not run");
        return;
    }
    let root = Root::new();
    let d = start(&root, "write", &[]);
    let c = Client::anonymous(&d);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("image.jpg");
    let data = media_file("photo.jpg");
    std::fs::write(&local, &data).unwrap();
    // curl -X PUT -F "file=@/path/to/local/image.jpg" http://localhost:8000/image/image.jpg
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "30", "-X", "PUT", "-F"])
        .arg(format!("file=@{}", local.display()))
        .arg(d.url("/image/image.jpg"))
        .args(["-w", "\n%{http_code}"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    assert_eq!(
        code,
        "201",
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["sha256"], sha256_hex(&data));
    assert_eq!(v["filename"], "image.jpg");
    let r = c.get(&format!("/image/{}", sha256_hex(&data))).expect(200);
    assert_eq!(r.body, data);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    // Its EXIF date becomes the listing's creation date once probed.
    poll(Duration::from_secs(10), || {
        let m = list(&c);
        let e = m.get(&sha256_hex(&data))?;
        ((float(e, "original_creation_date") - 1_720_992_605.25).abs() < 1e-6).then_some(())
    })
    .expect("the upload's EXIF date in /list");
}

#[test]
fn refusals_are_400_and_names_never_leave_the_store() {
    let root = Root::new();
    let d = start(&root, "write", &[]);
    let c = Client::anonymous(&d);
    let a = png(8, 8, 50);
    // Not multipart.
    expect_error(
        c.put("/image/a.png", Some("image/png"), &a),
        400,
        "No file part in the request.",
    );
    // No part named `file`.
    let m = Multipart::new().file("photo", "a.png", None, &a);
    expect_error(
        c.put("/image/a.png", Some(&m.content_type()), &m.body()),
        400,
        "No file part in the request.",
    );
    // An empty file name.
    expect_error(put_image(&c, "a.png", "", &a), 400, "No selected file.");
    // Other types.
    for part in ["notes.txt", "picture.bmp"] {
        let r = put_image(&c, "a.png", part, &a);
        let v = r.expect_json(400);
        assert!(
            v["description"]
                .as_str()
                .unwrap()
                .starts_with("Invalid file type."),
            "{v}"
        );
    }
    assert_eq!(put_image(&c, "evil.txt", "a.png", &a).status, 400);
    // GET hashes.
    for bad in ["abc", &"z".repeat(64), &"a".repeat(65)] {
        expect_error(
            c.get(&format!("/image/{bad}")),
            400,
            "Invalid SHA256 format.",
        );
    }
    expect_error(
        c.get(&format!("/image/{}", "0".repeat(64))),
        404,
        "Image not found.",
    );
    assert!(list(&c).is_empty());
    // An encoded slash: a safe name in the store, nothing outside it.
    let v = put_image(&c, "..%2F..%2Fevil.png", "x.png", &a).expect_json(201);
    assert_eq!(v["filename"], "evil.png");
    let path = v["file_path"].as_str().unwrap();
    assert!(
        path.starts_with("uploads/") && path.ends_with("/evil.png") && !path.contains(".."),
        "{path}"
    );
    // A literal slash (Flask's `<path:filename>`): taken and flattened.
    let b = png(8, 8, 51);
    let v = put_image(&c, "2024/holiday.png", "x.png", &b).expect_json(201);
    assert_eq!(v["filename"], "2024_holiday.png");
    // Sent raw, so no client normalises the target.
    let c2 = png(8, 8, 52);
    let m = Multipart::new().file("file", "x.png", None, &c2);
    let ct = m.content_type();
    let raw = request(
        "PUT",
        "/image/%2E%2E%2F%2E%2E%2Fraw.png",
        &[("Content-Type", &ct)],
        &m.body(),
    );
    let r = exchange(d.addr(), &raw);
    assert_eq!(r.status, 201, "{}", r.describe());
    assert_eq!(r.json()["filename"], "raw.png");
    for dir in [
        root.path.parent().unwrap(),
        root.path.as_path(),
        d.data_dir(),
    ] {
        for name in ["evil.png", "raw.png", "holiday.png"] {
            assert!(!dir.join(name).exists(), "{}", dir.join(name).display());
        }
    }
    assert_eq!(std::fs::read_dir(&root.path).unwrap().count(), 0);
    assert_eq!(list(&c).len(), 3);
}

#[test]
fn anonymous_modes_decide() {
    let root = Root::new();
    let a = png(8, 8, 60);
    root.write("a.png", &a);
    // read: reads work, uploads are 401.
    let d = start(&root, "read", &[]);
    let c = Client::anonymous(&d);
    wait_list(&c, "the first scan", |m| m.len() == 1);
    c.get(&format!("/image/{}", sha256_hex(&a))).expect(200);
    let r = put_image(&c, "b.png", "b.png", &png(8, 8, 61));
    let v = r.expect_json(401);
    assert_eq!(v["code"], 401);
    drop(d);
    // none: a token is needed (so /list, taken only without one, is 401).
    let d = start(&root, "none", &[]);
    let anon = Client::anonymous(&d);
    anon.get("/list").expect(401);
    anon.get(&format!("/image/{}", sha256_hex(&a))).expect(401);
    let admin = Client::new(&d);
    let b = png(8, 8, 62);
    put_image(&admin, "b.png", "b.png", &b).expect_json(201);
    poll(SCAN_WAIT, || {
        (admin.get(&format!("/image/{}", sha256_hex(&a))).status == 200).then_some(())
    })
    .expect("the scanned file, with a token");
    assert_eq!(
        admin
            .get(&format!("/image/{}", sha256_hex(&b)))
            .expect(200)
            .body,
        b
    );
}
