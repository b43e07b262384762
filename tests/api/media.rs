//! Media: type detection at commit, EXIF after the 2xx (GPS only for the owner and
//! admins), thumbnails (sizes, formats, orientation, conditionals, ranges, one decode
//! for concurrent requests, types without thumbnails, hostile images, removal with the
//! blob), and directories indexed in place (rescans, vanished and changed files,
//! symlinks, uploads untouched, `check` and `gc`). The test files are `tests/media/`
//! (see its README).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::daemon::{run_cli, MemSampler};
use crate::common::util::{metric_sum, poll, sha256_hex};
use crate::common::{Client, Daemon, Resp};

fn media_file(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/media")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {v}"))
        .to_string()
}

fn metric(c: &Client, name: &str) -> f64 {
    metric_sum(&c.metrics(), name, &[])
}

/// Polls the object until `media` is set (the probe runs after the 2xx).
#[track_caller]
fn wait_media(c: &Client, id: &str) -> Value {
    poll(Duration::from_secs(10), || {
        let v = c.object(id);
        (!v["media"].is_null()).then_some(v)
    })
    .unwrap_or_else(|| panic!("no media on {id} within 10 s: {}", c.object(id)))
}

/// Decodes a thumbnail response, checking its type.
#[track_caller]
fn decode(r: &Resp, format: image::ImageFormat) -> image::DynamicImage {
    assert_eq!(
        image::guess_format(&r.body).unwrap(),
        format,
        "{}",
        r.describe()
    );
    image::load_from_memory_with_format(&r.body, format).unwrap()
}

/// A `w` x `h` image: top-left red, top-right green, bottom-left blue, bottom-right
/// white (the media set's pattern), encoded as `format`.
fn quadrants(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb(match (x < w / 2, y < h / 2) {
            (true, true) => [255, 0, 0],
            (false, true) => [0, 255, 0],
            (true, false) => [0, 0, 255],
            (false, false) => [255, 255, 255],
        })
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn rgb_at(img: &image::DynamicImage, fx: f32, fy: f32) -> [u8; 3] {
    let x = ((img.width() as f32 * fx) as u32).min(img.width() - 1);
    let y = ((img.height() as f32 * fy) as u32).min(img.height() - 1);
    let p = img.to_rgb8().get_pixel(x, y).0;
    [p[0], p[1], p[2]]
}

#[track_caller]
fn assert_close(got: [u8; 3], want: [u8; 3], what: &str) {
    assert!(
        got.iter().zip(want).all(|(&a, b)| a.abs_diff(b) < 50),
        "{what}: got {got:?}, want {want:?}"
    );
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

#[test]
fn type_is_detected_at_commit_magic_first() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let png = media_file("alpha.png");
    let v = c.upload("x.txt", None, Some("application/octet-stream"), &png);
    assert_eq!(v["mime_type"], "image/png", "{v}");
    // A JPEG named .png and claimed as PNG is a JPEG.
    let v = c.upload("cat.png", None, Some("image/png"), &media_file("photo.jpg"));
    assert_eq!(v["mime_type"], "image/jpeg", "{v}");
    // Video and HEIC are recognised by their boxes, whatever the name.
    let v = c.upload("clip.bin", None, None, &media_file("clip.mp4"));
    assert_eq!(v["mime_type"], "video/mp4", "{v}");
    let v = c.upload("noext", None, None, &media_file("small.heic"));
    assert_eq!(v["mime_type"], "image/heic", "{v}");
    // Replacing the content detects again.
    let pending = c
        .post_json("/v1/objects", &json!({"type": "file", "name": "later.dat"}))
        .expect_json(201);
    let v = c
        .put(
            &format!("/v1/objects/{}/content", id(&pending)),
            Some("application/octet-stream"),
            &media_file("small.webp"),
        )
        .expect_json(200);
    assert_eq!(v["mime_type"], "image/webp", "{v}");
}

#[test]
fn exif_appears_after_the_upload_and_gps_only_for_owner_and_admins() {
    let d = Daemon::start(&["--anonymous", "read"]);
    let admin = Client::new(&d);
    let started = Instant::now();
    let v = admin.upload("photo.jpg", Some("photos"), None, &media_file("photo.jpg"));
    let oid = id(&v);
    let v = wait_media(&admin, &oid);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let m = &v["media"];
    // Stored 64 x 48 with orientation 6: shown (and reported) 48 x 64.
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(48), Some(64)),
        "{v}"
    );
    assert_eq!(m["orientation"], 6, "{v}");
    assert_eq!(m["taken_at"], "2024:07:14 18:30:05", "{v}");
    assert_eq!(m["taken_at_ms"], 1_720_992_605_250i64, "{v}");
    assert_eq!(m["camera"]["make"], "Canon", "{v}");
    assert!(
        m["camera"]["model"]
            .as_str()
            .unwrap()
            .starts_with("Canon EOS R6"),
        "{v}"
    );
    let gps = &m["gps"];
    assert!((gps["lat"].as_f64().unwrap() + 22.9519).abs() < 1e-3, "{v}");
    assert!((gps["lon"].as_f64().unwrap() + 43.2105).abs() < 1e-3, "{v}");
    assert_eq!(gps["alt"], 700.5, "{v}");
    assert!(m.get("error").is_none(), "{v}");

    // Anonymous readers see the picture's details but not where it was taken.
    let anon = Client::anonymous(&d);
    let v = anon.object(&oid);
    assert_eq!(v["media"]["taken_at"], "2024:07:14 18:30:05", "{v}");
    assert!(v["media"].get("gps").is_none(), "anonymous sees GPS: {v}");
    let list = anon.get("/v1/objects?namespace=photos").expect_json(200);
    assert!(list["objects"][0]["media"].get("gps").is_none(), "{list}");
    assert!(list["objects"][0]["media"]["width"].is_u64(), "{list}");
    // Neither does another user (who may read it, the store being public).
    let u = admin
        .post_json(
            "/v1/users",
            &json!({"username": "bob", "password": "correct horse battery staple"}),
        )
        .expect_json(201);
    let bob = Client::with_authorization(&d, &format!("Bearer {}", u["token"].as_str().unwrap()));
    let v = bob.object(&oid);
    assert!(
        v["media"]["width"].is_u64() && v["media"].get("gps").is_none(),
        "{v}"
    );
    // Bob's own photo shows him its GPS.
    let mine = bob.upload("mine.jpg", None, None, &media_file("photo.jpg"));
    let v = wait_media(&bob, &id(&mine));
    assert!(v["media"]["gps"]["lat"].is_f64(), "{v}");
    // The admin sees every position.
    assert!(admin.object(&id(&mine))["media"]["gps"].is_object());
    // Objects that are not images have no media.
    let t = admin.upload("a.txt", None, None, b"just text");
    std::thread::sleep(Duration::from_millis(300));
    assert!(admin.object(&id(&t))["media"].is_null());
}

#[test]
fn thumbnails_in_every_size_and_format_upright() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    // A landscape image larger than every size.
    let big = c.upload(
        "big.png",
        None,
        None,
        &quadrants(1200, 800, image::ImageFormat::Png),
    );
    let big = id(&big);
    for (fmt, name, mime) in [
        (image::ImageFormat::Png, "png", "image/png"),
        (image::ImageFormat::Jpeg, "jpeg", "image/jpeg"),
        (image::ImageFormat::WebP, "webp", "image/webp"),
    ] {
        for (size, h) in [(128u32, 85u32), (256, 171), (512, 341)] {
            let r = c
                .get(&format!(
                    "/v1/objects/{big}/thumbnail?size={size}&format={name}"
                ))
                .expect(200);
            assert_eq!(r.must_header("content-type"), mime);
            assert_eq!(r.must_header("cache-control"), "private, max-age=86400");
            let img = decode(&r, fmt);
            assert_eq!((img.width(), img.height()), (size, h), "{name} {size}");
            assert_close(rgb_at(&img, 0.2, 0.2), RED, "top-left");
            assert_close(rgb_at(&img, 0.8, 0.2), GREEN, "top-right");
            assert_close(rgb_at(&img, 0.2, 0.8), BLUE, "bottom-left");
            assert_close(rgb_at(&img, 0.8, 0.8), WHITE, "bottom-right");
        }
    }
    // Defaults: 256 px PNG.
    let r = c.get(&format!("/v1/objects/{big}/thumbnail")).expect(200);
    let img = decode(&r, image::ImageFormat::Png);
    assert_eq!((img.width(), img.height()), (256, 171));
    // The EXIF orientation is applied (64 x 48 stored, rotated 90° clockwise), and a
    // small image is never upscaled.
    let p = id(&c.upload("photo.jpg", None, None, &media_file("photo.jpg")));
    for fmt in ["png", "jpeg", "webp"] {
        let r = c
            .get(&format!("/v1/objects/{p}/thumbnail?size=512&format={fmt}"))
            .expect(200);
        let img = image::load_from_memory(&r.body).unwrap();
        assert_eq!((img.width(), img.height()), (48, 64), "{fmt}");
        assert_close(rgb_at(&img, 0.2, 0.2), BLUE, "rotated top-left");
        assert_close(rgb_at(&img, 0.8, 0.2), RED, "rotated top-right");
        assert_close(rgb_at(&img, 0.2, 0.8), WHITE, "rotated bottom-left");
        assert_close(rgb_at(&img, 0.8, 0.8), GREEN, "rotated bottom-right");
    }
    // The same thumbnail by content hash.
    let sha = c.object(&big)["sha256"].as_str().unwrap().to_string();
    let r = c
        .get(&format!("/v1/blobs/{sha}/thumbnail?size=128"))
        .expect(200);
    assert_eq!(decode(&r, image::ImageFormat::Png).width(), 128);
    // Bad parameters.
    c.get(&format!("/v1/objects/{big}/thumbnail?size=100"))
        .expect_error(400, "bad_request");
    c.get(&format!("/v1/objects/{big}/thumbnail?format=gif"))
        .expect_error(400, "bad_request");
    c.get("/v1/blobs/xyz/thumbnail")
        .expect_error(400, "invalid_hash");
    c.get(&format!("/v1/blobs/{}/thumbnail", "0".repeat(64)))
        .expect_error(404, "not_found");
    // Text objects and pending files.
    let t = c.create_text("note", None, "hello");
    c.get(&format!("/v1/objects/{}/thumbnail", id(&t)))
        .expect_error(404, "no_thumbnail");
    let pending = c
        .post_json("/v1/objects", &json!({"type": "file", "name": "later.jpg"}))
        .expect_json(201);
    c.get(&format!("/v1/objects/{}/thumbnail", id(&pending)))
        .expect_error(409, "pending");
}

#[test]
fn thumbnails_answer_conditionals_and_ranges() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let o = id(&c.upload(
        "q.png",
        None,
        None,
        &quadrants(600, 400, image::ImageFormat::Png),
    ));
    let path = format!("/v1/objects/{o}/thumbnail?size=128");
    let full = c.get(&path).expect(200);
    let etag = full.must_header("etag").to_string();
    assert!(
        etag.starts_with('"') && etag.len() == 66,
        "strong etag: {etag}"
    );
    let lm = full.must_header("last-modified").to_string();
    assert_eq!(full.must_header("accept-ranges"), "bytes");
    // The same bytes and validators again (and from another connection's worker).
    let again = Client::new(&d).get(&path).expect(200);
    assert_eq!(again.body, full.body);
    assert_eq!(again.must_header("etag"), etag);
    // 304s.
    let r = c
        .req("GET", &path)
        .header("If-None-Match", &etag)
        .call()
        .expect(304);
    assert_eq!(r.must_header("etag"), etag);
    c.req("GET", &path)
        .header("If-Modified-Since", &lm)
        .call()
        .expect(304);
    // 412.
    c.req("GET", &path)
        .header("If-Match", "\"nope\"")
        .call()
        .expect_error(412, "precondition_failed");
    // Ranges.
    let r = c
        .req("GET", &path)
        .header("Range", "bytes=0-9")
        .call()
        .expect(206);
    assert_eq!(r.body, full.body[..10]);
    assert_eq!(
        r.must_header("content-range"),
        format!("bytes 0-9/{}", full.body.len())
    );
    let r = c
        .req("GET", &path)
        .header("Range", "bytes=-4")
        .call()
        .expect(206);
    assert_eq!(r.body, full.body[full.body.len() - 4..]);
    // If-Range with another validator: the whole thing.
    let r = c
        .req("GET", &path)
        .header("Range", "bytes=0-9")
        .header("If-Range", "\"other\"")
        .call()
        .expect(200);
    assert_eq!(r.body, full.body);
    c.req("GET", &path)
        .header("Range", &format!("bytes={}-", full.body.len() + 10))
        .call()
        .expect_error(416, "range_not_satisfiable");
    // HEAD: headers, no body.
    let h = c.head(&path).expect(200);
    assert!(h.body.is_empty());
    assert_eq!(h.must_header("etag"), etag);
    assert_eq!(h.must_header("content-length"), full.body.len().to_string());
    // Another format is another representation.
    let w = c.get(&format!("{path}&format=webp")).expect(200);
    assert_ne!(w.must_header("etag"), etag);
}

#[test]
fn concurrent_requests_for_a_missing_thumbnail_decode_once() {
    let d = Daemon::start(&["--thumbnail-eager", "false"]);
    let c = Client::new(&d);
    // Noise: a PNG that takes a while to decode, so the requests overlap it.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let img = image::RgbImage::from_fn(2400, 1600, |_, _| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let o = id(&c.upload("noise.png", None, None, &png.into_inner()));
    std::thread::sleep(Duration::from_millis(300));
    let before = metric(&c, "ringbox_thumbnail_decodes_total");
    let path = format!("/v1/objects/{o}/thumbnail?size=512&format=jpeg");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let c = Client::new(&d);
            let path = path.clone();
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                c.get(&path)
            })
        })
        .collect();
    let resps: Vec<Resp> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for r in &resps {
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.body, resps[0].body);
        assert_eq!(r.header("etag"), resps[0].header("etag"));
    }
    assert_eq!(
        metric(&c, "ringbox_thumbnail_decodes_total") - before,
        1.0,
        "eight requests, one decode"
    );
    // Served from the cache afterwards: still one.
    c.get(&path).expect(200);
    assert_eq!(metric(&c, "ringbox_thumbnail_decodes_total") - before, 1.0);
}

#[test]
fn types_without_thumbnails_are_404_at_once() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let mp3 = {
        let mut v = b"ID3\x03\x00\x00\x00\x00\x00\x00".to_vec();
        v.extend_from_slice(&[0xff, 0xfb, 0x90, 0x64]);
        v.extend_from_slice(&[0u8; 400]);
        v
    };
    let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    let files: Vec<(&str, Vec<u8>, &str)> = vec![
        ("clip.mp4", media_file("clip.mp4"), "video/mp4"),
        ("song.mp3", mp3, "audio/mpeg"),
        ("doc.pdf", pdf, "application/pdf"),
        ("small.heic", media_file("small.heic"), "image/heic"),
        ("quadrants.tif", media_file("quadrants.tif"), "image/tiff"),
        ("hello.txt", media_file("hello.txt"), "text/plain"),
    ];
    let ids: Vec<(String, String)> = files
        .iter()
        .map(|(name, data, mime)| {
            let v = c.upload(name, None, None, data);
            assert!(v["mime_type"].as_str().unwrap().starts_with(mime), "{v}");
            (id(&v), v["sha256"].as_str().unwrap().to_string())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = metric(&c, "ringbox_thumbnail_decodes_total");
    for ((oid, sha), (name, _, mime)) in ids.iter().zip(&files) {
        let t = Instant::now();
        let r = c
            .get(&format!("/v1/objects/{oid}/thumbnail"))
            .expect_error(404, "no_thumbnail");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{name}: {:?}",
            t.elapsed()
        );
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.contains("no thumbnail for this type") && msg.contains(mime),
            "{msg}"
        );
        // By hash too (the decoder's magic check says so without decoding).
        c.get(&format!("/v1/blobs/{sha}/thumbnail"))
            .expect_error(404, "no_thumbnail");
    }
    assert_eq!(
        metric(&c, "ringbox_thumbnail_decodes_total"),
        before,
        "no decode"
    );
    // The HEIC's dimensions are still probed.
    let heic = wait_media(&c, &ids[3].0);
    assert_eq!(heic["media"]["width"], 64, "{heic}");
}

#[test]
fn hostile_images_are_refused_and_recorded_without_harm() {
    let mut d = Daemon::start(&[]);
    let c = Client::new(&d);
    let sampler = MemSampler::start(d.pid());
    let started = Instant::now();
    let mut refused = Vec::new();
    for name in [
        "bomb-100000x100000.png",
        "truncated.jpg",
        "exif-length-2g.png",
    ] {
        let o = id(&c.upload(name, None, None, &media_file(name)));
        let r = c
            .get(&format!("/v1/objects/{o}/thumbnail"))
            .expect_error(404, "thumbnail_refused");
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains("no thumbnail for this image"), "{name}: {msg}");
        refused.push((name, o, msg));
    }
    // Hostile but fine: huge EXIF blocks, thousands of frames.
    for name in ["exif-huge.jpg", "animated-3000.gif"] {
        let o = id(&c.upload(name, None, None, &media_file(name)));
        let t = Instant::now();
        let r = c.get(&format!("/v1/objects/{o}/thumbnail")).expect(200);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{name}: {:?}",
            t.elapsed()
        );
        assert!(image::load_from_memory(&r.body).is_ok(), "{name}");
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // The refusal is recorded on the object, and the next request is answered at once.
    for (name, o, _) in &refused {
        let v = poll(Duration::from_secs(10), || {
            let v = c.object(o);
            v["media"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("thumbnail:"))
                .then_some(v)
        })
        .unwrap_or_else(|| panic!("{name}: no error recorded: {}", c.object(o)));
        let before = metric(&c, "ringbox_thumbnail_decodes_total");
        c.get(&format!("/v1/objects/{o}/thumbnail?size=128&format=webp"))
            .expect_error(404, "thumbnail_refused");
        assert_eq!(
            metric(&c, "ringbox_thumbnail_decodes_total"),
            before,
            "{name}: {v}"
        );
    }
    let bomb = c.object(&refused[0].1);
    assert!(
        bomb["media"]["error"]
            .as_str()
            .unwrap()
            .contains("100000 x 100000"),
        "{bomb}"
    );
    // The bomb's header is probed: its declared size is on the object.
    assert_eq!(bomb["media"]["width"], 100_000, "{bomb}");
    let (anon_kib, _) = sampler.finish();
    assert!(
        anon_kib < 300 * 1024,
        "anonymous memory peaked at {anon_kib} KiB"
    );
    d.assert_alive();
    assert_eq!(metric_sum(&c.metrics(), "ringbox_panics_total", &[]), 0.0);
    c.get("/healthz").expect(200);
}

#[test]
fn thumbnails_go_when_their_blob_is_collected() {
    let d = Daemon::start(&[]);
    let c = Client::new(&d);
    let data = quadrants(300, 200, image::ImageFormat::Png);
    let sha = sha256_hex(&data);
    let a = id(&c.upload("a.png", None, None, &data));
    let b = id(&c.upload("b.png", None, None, &data));
    for q in ["size=128", "size=512&format=webp", ""] {
        c.get(&format!("/v1/objects/{a}/thumbnail?{q}")).expect(200);
    }
    let thumbs_of = |sha: &str| -> Vec<PathBuf> {
        std::fs::read_dir(d.data_dir().join("thumbs"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(sha))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(thumbs_of(&sha).len(), 3, "{:?}", thumbs_of(&sha));
    // The content is shared: one delete keeps the previews.
    c.delete(&format!("/v1/objects/{a}")).expect(204);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(thumbs_of(&sha).len(), 3);
    c.get(&format!("/v1/objects/{b}/thumbnail?size=128"))
        .expect(200);
    // The last one goes: the blob is collected, and its thumbnails with it.
    c.delete(&format!("/v1/objects/{b}")).expect(204);
    poll(Duration::from_secs(5), || {
        thumbs_of(&sha).is_empty().then_some(())
    })
    .unwrap_or_else(|| panic!("thumbnails left: {:?}", thumbs_of(&sha)));
    c.get(&format!("/v1/blobs/{sha}/thumbnail"))
        .expect_error(404, "not_found");
}

/// A scan root `photos` under a temp dir, with the media set's photo and clip.
struct ScanDir {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn scan_dir() -> ScanDir {
    let tmp = tempfile::Builder::new()
        .prefix("ringbox-scan-")
        .tempdir()
        .unwrap();
    let root = tmp.path().join("photos");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("photo.jpg"), media_file("photo.jpg")).unwrap();
    std::fs::write(root.join("sub/clip.mp4"), media_file("clip.mp4")).unwrap();
    std::fs::write(root.join("notes.txt"), b"not media").unwrap();
    std::fs::write(root.join(".hidden.jpg"), media_file("photo.jpg")).unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.jpg"), media_file("photo.jpg")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.jpg"), root.join("escape.jpg")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("escape-dir")).unwrap();
    // A FIFO (opening it would block) and a name that is not UTF-8.
    let fifo =
        std::ffi::CString::new(root.join("pipe.jpg").as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    use std::os::unix::ffi::OsStrExt as _;
    std::fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"bad\xff.jpg")),
        media_file("photo.jpg"),
    )
    .unwrap();
    ScanDir {
        _tmp: tmp,
        root,
        outside,
    }
}

/// The scanned objects of namespace `scan-photos`, by name.
fn scanned(c: &Client) -> std::collections::BTreeMap<String, Value> {
    let v = c
        .get("/v1/objects?namespace=scan-photos&limit=1000")
        .expect_json(200);
    v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o.clone()))
        .collect()
}

#[track_caller]
fn wait_scanned(
    c: &Client,
    what: &str,
    f: impl Fn(&std::collections::BTreeMap<String, Value>) -> bool,
) {
    poll(Duration::from_secs(10), || f(&scanned(c)).then_some(()))
        .unwrap_or_else(|| panic!("{what}: not seen within 10 s: {:?}", scanned(c).keys()));
}

#[test]
fn scanned_directories_are_indexed_in_place_and_rescanned() {
    let s = scan_dir();
    let root = s.root.to_str().unwrap();
    let mut d = Daemon::start(&["--scan-dir", root, "--rescan-interval", "1"]);
    let c = Client::new(&d);
    // The first scan runs in the background; /healthz never waited for it.
    c.get("/healthz").expect(200);
    wait_scanned(&c, "first scan", |m| m.len() == 2);
    let first = scanned(&c);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["photo.jpg", "sub/clip.mp4"],
        "no .txt, no hidden file, no symlink leaving the root, no FIFO, no non-UTF-8 name"
    );
    assert!(
        metric(&c, "ringbox_scan_errors_total") >= 1.0,
        "the non-UTF-8 name is counted"
    );
    assert!(d.log().contains("not UTF-8"), "and logged");
    let photo = &first["photo.jpg"];
    assert_eq!(photo["mime_type"], "image/jpeg");
    assert_eq!(photo["sha256"], sha256_hex(&media_file("photo.jpg")));
    assert_eq!(photo["media"]["taken_at"], "2024:07:14 18:30:05", "{photo}");
    assert_eq!(first["sub/clip.mp4"]["mime_type"], "video/mp4");
    // Not copied: no blob file, and the bytes come from the file.
    let sha = photo["sha256"].as_str().unwrap();
    assert!(!d
        .data_dir()
        .join("blobs")
        .join(&sha[..2])
        .join(sha)
        .exists());
    let r = c.content(&id(photo)).expect(200);
    assert_eq!(r.body, media_file("photo.jpg"));
    assert_eq!(r.must_header("etag"), format!("\"{sha}\""));
    let t = c
        .get(&format!("/v1/objects/{}/thumbnail", id(photo)))
        .expect(200);
    assert_eq!(decode(&t, image::ImageFormat::Png).height(), 64);
    c.get(&format!("/v1/blobs/{sha}/thumbnail?size=128"))
        .expect(200);
    c.get(&format!(
        "/v1/objects/{}/thumbnail",
        id(&first["sub/clip.mp4"])
    ))
    .expect_error(404, "no_thumbnail");
    let metrics = c.metrics();
    assert!(metric_sum(&metrics, "ringbox_scan_runs_total", &[]) >= 1.0);
    assert!(metric_sum(&metrics, "ringbox_scan_files_total", &[]) >= 2.0);

    // An upload into the scan's namespace goes to the managed store, not the directory,
    // and no rescan touches it.
    let before: Vec<_> = std::fs::read_dir(&s.root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let up = c.upload(
        "uploaded.jpg",
        Some("scan-photos"),
        None,
        &media_file("small.webp"),
    );
    let after: Vec<_> = std::fs::read_dir(&s.root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        before.len(),
        after.len(),
        "an upload wrote into the scanned directory"
    );

    // A new subdirectory, a rewritten file, a deleted file.
    std::fs::create_dir_all(s.root.join("2025/summer")).unwrap();
    std::fs::write(
        s.root.join("2025/summer/beach.png"),
        media_file("alpha.png"),
    )
    .unwrap();
    wait_scanned(&c, "new subdirectory", |m| {
        m.contains_key("2025/summer/beach.png")
    });
    let new_photo = quadrants(80, 60, image::ImageFormat::Jpeg);
    std::fs::write(s.root.join("photo.jpg"), &new_photo).unwrap();
    let new_sha = sha256_hex(&new_photo);
    wait_scanned(&c, "rewritten file", |m| {
        m.get("photo.jpg")
            .is_some_and(|o| o["sha256"] == new_sha.as_str())
    });
    let rewritten = &scanned(&c)["photo.jpg"];
    assert_eq!(
        id(rewritten),
        id(photo),
        "the same object gets the new content"
    );
    assert_eq!(c.content(&id(photo)).expect(200).body, new_photo);
    let t = c
        .get(&format!("/v1/objects/{}/thumbnail", id(photo)))
        .expect(200);
    assert_eq!(decode(&t, image::ImageFormat::Png).width(), 80);
    std::fs::remove_file(s.root.join("sub/clip.mp4")).unwrap();
    wait_scanned(&c, "deleted file", |m| !m.contains_key("sub/clip.mp4"));
    c.get(&format!("/v1/objects/{}", id(&first["sub/clip.mp4"])))
        .expect_error(404, "not_found");
    // The upload is still there, untouched, after several rescans.
    let runs = metric(&c, "ringbox_scan_runs_total");
    poll(Duration::from_secs(10), || {
        (metric(&c, "ringbox_scan_runs_total") >= runs + 2.0).then_some(())
    })
    .expect("rescans keep running");
    let v = c.object(&id(&up));
    assert_eq!(v["name"], "uploaded.jpg");
    assert_eq!(
        c.content(&id(&up)).expect(200).body,
        media_file("small.webp")
    );
    assert!(s.outside.join("secret.jpg").exists());

    // Offline: check lists the scanned files, gc leaves them alone.
    d.stop();
    let data = d.data_dir().to_str().unwrap().to_string();
    let out = run_cli(&["gc", "--data", &data], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["photo.jpg", "2025/summer/beach.png"] {
        assert!(s.root.join(f).exists(), "gc touched {f}");
    }
    let out = run_cli(
        &["check", "--data", &data, "--hash-scanned"],
        Duration::from_secs(60),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    assert_eq!(report["consistent"], true, "{report}");
    assert_eq!(report["scanned"]["files"], 2, "{report}");
    assert_eq!(report["scanned"]["missing"], json!([]), "{report}");
    assert_eq!(report["scanned"]["hashed"], true, "{report}");
}

#[test]
fn a_vanished_or_changed_scanned_file_is_404_on_the_next_request() {
    let s = scan_dir();
    let mut d = Daemon::start(&["--scan-dir", s.root.to_str().unwrap()]);
    let c = Client::new(&d);
    wait_scanned(&c, "first scan", |m| m.len() == 2);
    let m = scanned(&c);
    let photo = id(&m["photo.jpg"]);
    let clip = id(&m["sub/clip.mp4"]);
    // Served (and its descriptor cached by the worker), then deleted: 404 at once.
    for _ in 0..3 {
        c.content(&clip).expect(200);
    }
    std::fs::remove_file(s.root.join("sub/clip.mp4")).unwrap();
    c.content(&clip).expect_error(404, "not_found");
    // Still 404 (not 410, not "lost").
    c.content(&clip).expect_error(404, "not_found");
    assert_eq!(c.object(&clip)["state"], "stored");
    // Changed behind the index: never served under the old ETag.
    c.content(&photo).expect(200);
    let mut bytes = media_file("photo.jpg");
    bytes.extend_from_slice(b"appended");
    std::fs::write(s.root.join("photo.jpg"), &bytes).unwrap();
    c.content(&photo).expect_error(404, "changed");
    c.get(&format!("/v1/objects/{photo}/thumbnail"))
        .expect_error(404, "changed");
    // check reports both, as the scan's business, not as inconsistencies.
    d.stop();
    let data = d.data_dir().to_str().unwrap().to_string();
    let out = run_cli(&["check", "--data", &data], Duration::from_secs(60));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report}");
    assert_eq!(
        report["scanned"]["missing"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert_eq!(
        report["scanned"]["changed"].as_array().unwrap().len(),
        1,
        "{report}"
    );
}

#[test]
fn scan_roots_inside_the_data_directory_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("photos")).unwrap();
    let out = run_cli(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--scan-dir",
            data.join("photos").to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("inside the data directory"), "{err}");
    let out = run_cli(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--scan-dir",
            tmp.path().join("missing").to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2));
}
