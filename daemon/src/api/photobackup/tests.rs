//! The photobackup handlers driven directly, with in-memory bodies and no socket.

use super::{images, library, render, thumbnails};
use crate::api::test_support::{bytes_of, call, header, json_of};
use crate::core::test_support::{admin, with_services};
use crate::core::Local;
use crate::http::errors::ApiError;
use crate::http::request::HandlerResult;
use crate::util::hex;

const BOUNDARY: &str = "XyZpb0undary";

/// A form with one part `field` (file name `filename`) holding `data`.
fn form(field: &str, filename: Option<&str>, data: &[u8]) -> Vec<u8> {
    let disposition = match filename {
        Some(f) => format!("form-data; name=\"{field}\"; filename=\"{f}\""),
        None => format!("form-data; name=\"{field}\""),
    };
    let mut b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

async fn put(svc: &Local, url_name: &str, part_name: &str, data: &[u8]) -> HandlerResult {
    let line = format!("PUT /image/{url_name}");
    call(
        svc,
        crate::handler!(images::put),
        &line,
        Some(url_name),
        &format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
        &form("file", Some(part_name), data),
        admin(),
    )
    .await
}

async fn get_image(svc: &Local, sha: &str) -> HandlerResult {
    let line = format!("GET /image/{sha}");
    call(
        svc,
        crate::handler!(images::get),
        &line,
        Some(sha),
        "",
        b"",
        admin(),
    )
    .await
}

/// A small real PNG (`w` x `h`, one colour per seed).
fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed, (x % 256) as u8, (y % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn sha_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(data))
}

fn status_of(r: HandlerResult) -> u16 {
    match r {
        Ok(resp) => resp.status,
        Err(e) => e.status,
    }
}

#[test]
fn uploads_are_named_by_day_suffixed_deduplicated_listed_and_served() {
    with_services(|svc| async move {
        let a = png(40, 30, 1);
        let b = png(40, 30, 2);
        // Unknown first (the worker remembers the empty answer until a commit).
        assert_eq!(status_of(get_image(&svc, &sha_hex(&a)).await), 404);
        let r = put(&svc, "image.jpg", "local.png", &a).await.unwrap();
        assert_eq!(r.status, 201);
        let v = json_of(&r);
        assert_eq!(v["message"], "Image uploaded successfully.");
        assert_eq!(v["sha256"], sha_hex(&a));
        assert_eq!(v["filename"], "image.jpg");
        let path = v["file_path"].as_str().unwrap().to_string();
        assert!(
            path.starts_with("uploads/") && path.ends_with("/image.jpg"),
            "{path}"
        );
        assert_eq!(path.len(), "uploads/YYYYMMDD/image.jpg".len());
        assert_eq!(v["thumbnail_file"], format!("{}.png", sha_hex(&a)));
        // Other content, same name: suffixed.
        let r = put(&svc, "image.jpg", "other.png", &b).await.unwrap();
        assert_eq!(r.status, 201);
        let v = json_of(&r);
        assert_eq!(v["filename"], "image_1.jpg");
        assert_eq!(v["file_path"], path.replace("image.jpg", "image_1.jpg"));
        // Known content under another name: 200 with the existing file.
        let r = put(&svc, "again.png", "again.png", &a).await.unwrap();
        assert_eq!(r.status, 200);
        let v = json_of(&r);
        assert_eq!(v["message"], "Image content already exists.");
        assert_eq!(
            (v["filename"].as_str(), v["file_path"].as_str()),
            (Some("image.jpg"), Some(path.as_str()))
        );
        assert!(v.get("thumbnail_file").is_none());
        // The listing has both, keyed by hash.
        let r = call(
            &svc,
            crate::handler!(library::list),
            "GET /list",
            None,
            "",
            b"",
            admin(),
        )
        .await
        .unwrap();
        let listed = json_of(&r);
        let listed = listed.as_object().unwrap();
        assert_eq!(listed.len(), 2);
        let e = &listed[&sha_hex(&a)];
        assert_eq!(e["filename"], "image.jpg");
        assert_eq!(e["file_path"], path.as_str());
        let lm = e["last_modified"].as_f64().unwrap();
        assert!(
            (lm - crate::util::time::now_ms() as f64 / 1000.0).abs() < 60.0,
            "{lm}"
        );
        assert!(e["original_creation_date"].as_f64().is_some());
        // The bytes, with their type.
        let r = get_image(&svc, &sha_hex(&b)).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "content-type"), Some("image/png"));
        assert_eq!(bytes_of(&r), b);
        // Upper-case hex names the same content.
        let r = get_image(&svc, &sha_hex(&b).to_uppercase()).await.unwrap();
        assert_eq!(r.status, 200);
        // The thumbnail: a PNG.
        let sha = sha_hex(&a);
        let r = call(
            &svc,
            crate::handler!(thumbnails::get),
            &format!("GET /thumbnail/{sha}"),
            Some(&sha),
            "",
            b"",
            admin(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "content-type"), Some("image/png"));
        // Deleted (through any API): 404 at once, remembered candidates or not.
        assert_eq!(status_of(get_image(&svc, &sha_hex(&a)).await), 200);
        let ids = svc
            .objects_by_content(
                &admin(),
                &crate::util::hex::decode_sha256(&sha_hex(&a)).unwrap(),
                "photobackup",
            )
            .unwrap();
        assert_eq!(ids.len(), 1);
        svc.delete_object(&admin(), ids[0].rec.id).await.unwrap();
        assert_eq!(status_of(get_image(&svc, &sha_hex(&a)).await), 404);
    });
}

#[test]
fn refusals_are_400_and_unknown_hashes_404() {
    with_services(|svc| async move {
        let a = png(8, 8, 3);
        // Not multipart.
        let r = call(
            &svc,
            crate::handler!(images::put),
            "PUT /image/a.png",
            Some("a.png"),
            "Content-Type: image/png\r\n",
            &a,
            admin(),
        )
        .await;
        let e = r.unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "No file part in the request.")
        );
        // No part named `file`.
        let r = call(
            &svc,
            crate::handler!(images::put),
            "PUT /image/a.png",
            Some("a.png"),
            &format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
            &form("photo", Some("a.png"), &a),
            admin(),
        )
        .await;
        assert_eq!(status_of(r), 400);
        // A text field named `file` is no file part either.
        let r = call(
            &svc,
            crate::handler!(images::put),
            "PUT /image/a.png",
            Some("a.png"),
            &format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
            &form("file", None, b"hello"),
            admin(),
        )
        .await;
        assert_eq!(status_of(r), 400);
        let e = put(&svc, "a.png", "", &a).await.unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (400, "No selected file."));
        for part in ["notes.txt", "picture.bmp", "noext"] {
            let e = put(&svc, "a.png", part, &a).await.unwrap_err();
            assert_eq!(e.status, 400, "{part}");
            assert!(e.message.starts_with("Invalid file type."), "{}", e.message);
        }
        // The stored name's type counts too.
        assert_eq!(status_of(put(&svc, "evil.txt", "a.png", &a).await), 400);
        // Hashes.
        for bad in ["abc", "zz", &"g".repeat(64), &"a".repeat(65)] {
            let e = get_image(&svc, bad).await.unwrap_err();
            assert_eq!(
                (e.status, e.message.as_str()),
                (400, "Invalid SHA256 format.")
            );
        }
        let e = get_image(&svc, &"0".repeat(64)).await.unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (404, "Image not found."));
        let zero = "0".repeat(64);
        let e = call(
            &svc,
            crate::handler!(thumbnails::get),
            "GET /thumbnail/x",
            Some(&zero),
            "",
            b"",
            admin(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (404, "Thumbnail not found.")
        );
        // Nothing was stored by the refused uploads.
        let r = call(
            &svc,
            crate::handler!(library::list),
            "GET /list",
            None,
            "",
            b"",
            admin(),
        )
        .await
        .unwrap();
        assert_eq!(json_of(&r), serde_json::json!({}));
    });
}

#[test]
fn encoded_slashes_never_leave_the_store() {
    with_services(|svc| async move {
        let a = png(8, 8, 4);
        // The router hands the decoded parameter over.
        let r = put(&svc, "../../evil.png", "x.png", &a).await.unwrap();
        assert_eq!(r.status, 201);
        let v = json_of(&r);
        assert_eq!(v["filename"], "evil.png");
        let path = v["file_path"].as_str().unwrap();
        assert!(
            path.starts_with("uploads/") && !path.contains(".."),
            "{path}"
        );
        // Nothing was written outside the data directory's blob store.
        let data = svc.store.data_dir().to_path_buf();
        assert!(!data.join("evil.png").exists());
        assert!(!data.parent().unwrap().join("evil.png").exists());
    });
}

#[test]
fn errors_render_as_werkzeug_exceptions() {
    let r = render(ApiError::new(400, "invalid_hash", "Invalid SHA256 format."));
    assert_eq!(r.status, 400);
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_eq!(
        json_of(&r),
        serde_json::json!({"code": 400, "name": "Bad Request", "description": "Invalid SHA256 format."})
    );
}
