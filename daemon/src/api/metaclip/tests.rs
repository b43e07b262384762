//! The Metaclip handlers driven directly, with in-memory bodies and no socket.

use serde_json::{json, Value};

use super::{files, items, render_detail};
use crate::api::test_support::{self, bytes_of, header, json_of};
use crate::core::test_support::{admin, user, with_services};
use crate::core::{Caller, Local};
use crate::http::request::{Handler, HandlerResult};

/// The shared call, with the body in pieces of 5 bytes.
async fn call(
    svc: &Local,
    handler: Handler,
    line: &str,
    param: Option<&str>,
    headers: &str,
    body: &[u8],
    caller: Caller,
) -> HandlerResult {
    test_support::call_chunked(svc, handler, line, param, headers, body, caller, 5).await
}

async fn create(svc: &Local, body: Value) -> HandlerResult {
    let body = body.to_string();
    call(
        svc,
        crate::handler!(items::create),
        "POST /items",
        None,
        "Content-Type: application/json\r\n",
        body.as_bytes(),
        admin(),
    )
    .await
}

#[test]
fn items_are_created_listed_in_creation_order_and_deleted() {
    with_services(|svc| async move {
        let mut ids = Vec::new();
        // Names that sort against creation order: the listing must not follow names.
        for (kind, content) in [
            ("file", "z.pdf"),
            ("text", "Hello world"),
            ("file", "a.pdf"),
        ] {
            let r = create(&svc, json!({"type": kind, "content": content}))
                .await
                .unwrap();
            assert_eq!(r.status, 201);
            let v = json_of(&r);
            assert_eq!(
                (v["type"].as_str(), v["content"].as_str()),
                (Some(kind), Some(content))
            );
            ids.push(v["id"].as_str().unwrap().to_string());
        }
        let r = call(
            &svc,
            crate::handler!(items::list),
            "GET /items",
            None,
            "",
            b"",
            admin(),
        )
        .await
        .unwrap();
        let listed: Vec<String> = json_of(&r)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, ids);
        let path = format!("DELETE /items/{}", ids[1]);
        let r = call(
            &svc,
            crate::handler!(items::delete),
            &path,
            Some(&ids[1]),
            "",
            b"",
            admin(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 204);
        let e = call(
            &svc,
            crate::handler!(items::get),
            "GET /items/x",
            Some(&ids[1]),
            "",
            b"",
            admin(),
        )
        .await
        .unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (404, "Item not found"));
        let e = call(
            &svc,
            crate::handler!(items::get),
            "GET /items/x",
            Some("nope"),
            "",
            b"",
            admin(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, 404);
    });
}

#[test]
fn create_refusals_follow_the_seed() {
    with_services(|svc| async move {
        let status = |r: HandlerResult| r.map(|r| r.status).unwrap_or_else(|e| e.status);
        assert_eq!(status(create(&svc, json!({"type": "text"})).await), 400);
        assert_eq!(
            status(create(&svc, json!({"type": "text", "content": ""})).await),
            400
        );
        assert_eq!(status(create(&svc, json!({"type": "file"})).await), 400);
        assert_eq!(
            status(create(&svc, json!({"type": "image", "content": "x"})).await),
            422
        );
        assert_eq!(status(create(&svc, json!({"content": "x"})).await), 422);
        assert_eq!(
            status(create(&svc, json!({"type": "text", "content": 5})).await),
            422
        );
        assert_eq!(status(create(&svc, json!(["text"])).await), 422);
        let bad = call(
            &svc,
            crate::handler!(items::create),
            "POST /items",
            None,
            "",
            b"{\"type\":",
            admin(),
        )
        .await;
        assert_eq!(status(bad), 400);
        // The rendered shape is FastAPI's.
        let e = create(&svc, json!({"type": "image", "content": "x"}))
            .await
            .unwrap_err();
        let r = render_detail(e);
        assert_eq!(
            json_of(&r),
            json!({"detail": "Type must be 'text' or 'file'"})
        );
    });
}

#[test]
fn file_bytes_with_ranges_and_the_seed_statuses() {
    with_services(|svc| async move {
        let file = json_of(
            &create(&svc, json!({"type": "file", "content": "doc.pdf"}))
                .await
                .unwrap(),
        );
        let id = file["id"].as_str().unwrap().to_string();
        let text = json_of(
            &create(&svc, json!({"type": "text", "content": "hi"}))
                .await
                .unwrap(),
        );
        let tid = text["id"].as_str().unwrap().to_string();
        let get = |id: String, headers: String| {
            let svc = &svc;
            async move {
                call(
                    svc,
                    crate::handler!(files::get),
                    "GET /file/x",
                    Some(&id),
                    &headers,
                    b"",
                    admin(),
                )
                .await
            }
        };
        // No bytes yet: 404.
        assert_eq!(get(id.clone(), "".into()).await.unwrap_err().status, 404);
        // Text: 415 to read, 400 to write.
        let e = get(tid.clone(), "".into()).await.unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (415, "Not a file"));
        let e = call(
            &svc,
            crate::handler!(files::put),
            "PUT /file/x",
            Some(&tid),
            "",
            b"abc",
            admin(),
        )
        .await
        .unwrap_err();
        assert_eq!((e.status, e.message.as_str()), (400, "Not a file"));
        // A raw body, then a multipart one replaces it.
        let r = call(
            &svc,
            crate::handler!(files::put),
            "PUT /file/x",
            Some(&id),
            "",
            b"0123456789",
            admin(),
        )
        .await
        .unwrap();
        assert_eq!((r.status, r.body.len()), (201, 0));
        let r = get(id.clone(), "".into()).await.unwrap();
        assert_eq!(bytes_of(&r), b"0123456789");
        assert_eq!(header(&r, "content-type"), Some("application/octet-stream"));
        let form = "--B\r\nContent-Disposition: form-data; name=\"other\"; filename=\"o\"\r\n\r\nNO\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"doc.pdf\"\r\nContent-Type: application/pdf\r\n\r\nabcdefghij\r\n--B--\r\n";
        let r = call(
            &svc,
            crate::handler!(files::put),
            "PUT /file/x",
            Some(&id),
            "Content-Type: multipart/form-data; boundary=B\r\n",
            form.as_bytes(),
            admin(),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201);
        let r = get(id.clone(), "Range: bytes=2-4\r\n".into())
            .await
            .unwrap();
        assert_eq!(r.status, 206);
        assert_eq!(bytes_of(&r), b"cde");
        assert_eq!(header(&r, "content-range"), Some("bytes 2-4/10"));
        assert_eq!(header(&r, "content-type"), Some("application/octet-stream"));
        let e = get(id.clone(), "Range: bytes=abc\r\n".into())
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.message.as_str()),
            (400, "Invalid range format")
        );
        for unsatisfiable in ["Range: bytes=10-\r\n", "Range: bytes=5-2\r\n"] {
            let e = get(id.clone(), unsatisfiable.into()).await.unwrap_err();
            assert_eq!(e.status, 416, "{unsatisfiable}");
            assert!(e
                .headers
                .iter()
                .any(|(n, v)| *n == "Content-Range" && v == "bytes */10"));
        }
        // Conditionals still come first: a matching If-None-Match is 304 even then.
        let full = get(id.clone(), String::new()).await.unwrap();
        let tag = header(&full, "etag").unwrap().to_string();
        let r = get(
            id.clone(),
            format!("If-None-Match: {tag}\r\nRange: bytes=5-2\r\n"),
        )
        .await
        .unwrap();
        assert_eq!(r.status, 304);
        // Another user does not see the item at all.
        let e = call(
            &svc,
            crate::handler!(files::get),
            "GET /file/x",
            Some(&id),
            "",
            b"",
            user("mallory"),
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, 404);
    });
}

#[test]
fn a_listing_of_several_pages_is_in_creation_order() {
    with_services(|svc| async move {
        // Names in reverse creation order, over three pages of the core's listing.
        let n = 2100;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let new = crate::core::upload::NewObject {
                namespace: super::NAMESPACE.into(),
                name: format!("f{:05}.bin", n - i),
                ..Default::default()
            };
            ids.push(
                svc.create_pending(&admin(), new)
                    .await
                    .unwrap()
                    .id
                    .to_string(),
            );
        }
        let r = call(
            &svc,
            crate::handler!(items::list),
            "GET /items",
            None,
            "",
            b"",
            admin(),
        )
        .await
        .unwrap();
        assert!(header(&r, "x-ringbox-truncated").is_none());
        let listed: Vec<String> = json_of(&r)
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, ids);
        // The cap keeps the newest, oldest first.
        let mut recs: Vec<_> = ids
            .iter()
            .rev()
            .map(|id| svc.get_object(&admin(), id.parse().unwrap()).unwrap())
            .collect();
        items::keep_newest(&mut recs, 10);
        let kept: Vec<String> = recs.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(kept, ids[n - 10..]);
    });
}
