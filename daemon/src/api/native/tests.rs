//! The upload and content handlers driven directly, with in-memory bodies and no
//! socket: what a handler answers depends only on the request, the body stream and
//! the core.

use ringbox_protocol::head::{parse_request_head, RequestHead, Status};
use serde_json::Value;

use super::{content, upload};
use crate::core::stream::MemoryStream;
use crate::core::test_support::{admin, with_services};
use crate::core::{Caller, Local};
use crate::http::request::{Ctx, Handler, HandlerResult, Params, Request};
use crate::http::response::{BlobParts, BlobSource, Body, Response};

fn head(raw: &str) -> RequestHead {
    let mut h = RequestHead::new();
    let status = parse_request_head(raw.as_bytes(), &ringbox_protocol::Limits::default(), &mut h);
    assert!(
        matches!(status, Ok(Status::Complete(_))),
        "{raw:?}: {status:?}"
    );
    h
}

async fn call(
    svc: &Local,
    handler: Handler,
    raw_head: &str,
    params: &[&str],
    caller: Caller,
    body: Vec<u8>,
    chunk: usize,
) -> HandlerResult {
    let h = head(raw_head);
    let mut p = Params::default();
    for v in params {
        p.push(std::borrow::Cow::Owned(v.to_string()));
    }
    let mut stream = MemoryStream::new(body, chunk);
    let ctx = Ctx {
        svc,
        req: Request {
            head: &h,
            params: p,
            caller,
            credential: None,
        },
        body: &mut stream,
    };
    handler(ctx).await
}

fn json(r: &Response) -> Value {
    match &r.body {
        Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("not a JSON body: {other:?}"),
    }
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| std::str::from_utf8(v.as_bytes()).unwrap())
}

/// The bytes a content response would send (small blobs live in memory).
fn content_bytes(r: &Response) -> Vec<u8> {
    match &r.body {
        Body::Blob(BlobSource::Memory(data), BlobParts::Full(_)) => data.to_vec(),
        Body::Blob(BlobSource::Memory(data), BlobParts::Single(range)) => {
            data[range.start as usize..range.end as usize].to_vec()
        }
        other => panic!("unexpected body {other:?}"),
    }
}

#[test]
fn raw_upload_then_ranges_and_conditionals() {
    with_services(|svc| async move {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
        let r = call(
            &svc,
            crate::handler!(upload::create),
            "POST /v1/objects?name=a.bin&namespace=t HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
            &[],
            admin(),
            data.clone(),
            333,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201);
        let obj = json(&r);
        assert_eq!(obj["size"], 5000);
        assert_eq!(obj["namespace"], "t");
        let id = obj["id"].as_str().unwrap().to_string();

        let get = |extra: &str| {
            format!("GET /v1/objects/{id}/content HTTP/1.1\r\nHost: x\r\n{extra}\r\n")
        };
        let r = call(
            &svc,
            crate::handler!(content::object),
            &get(""),
            &[&id],
            admin(),
            vec![],
            1,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(content_bytes(&r), data);
        let etag = header(&r, "etag").unwrap().to_string();
        assert_eq!(header(&r, "accept-ranges"), Some("bytes"));

        let r = call(
            &svc,
            crate::handler!(content::object),
            &get("Range: bytes=-10\r\n"),
            &[&id],
            admin(),
            vec![],
            1,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 206);
        assert_eq!(header(&r, "content-range"), Some("bytes 4990-4999/5000"));
        assert_eq!(content_bytes(&r), data[4990..]);

        let r = call(
            &svc,
            crate::handler!(content::object),
            &get(&format!("If-None-Match: {etag}\r\n")),
            &[&id],
            admin(),
            vec![],
            1,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 304);

        let e = call(
            &svc,
            crate::handler!(content::object),
            &get("Range: bytes=9000-\r\n"),
            &[&id],
            admin(),
            vec![],
            1,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, 416);

        // Another user may not read it: it does not exist for them.
        let other = crate::core::test_support::user("mallory");
        let e = call(
            &svc,
            crate::handler!(content::object),
            &get(""),
            &[&id],
            other,
            vec![],
            1,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, 404);
    });
}

#[test]
fn multipart_fields_apply_to_the_files_after_them() {
    with_services(|svc| async move {
        let body = concat!(
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\nAAAA\r\n",
            "--XX\r\nContent-Disposition: form-data; name=\"namespace\"\r\n\r\nphotos\r\n",
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.txt\"\r\n\r\nCCCC\r\n",
            "--XX--\r\n"
        );
        let raw = format!(
            "POST /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let r = call(
            &svc,
            crate::handler!(upload::create),
            &raw,
            &[],
            admin(),
            body.as_bytes().to_vec(),
            7,
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201);
        let v = json(&r);
        let got: Vec<(&str, &str)> = v["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["name"].as_str().unwrap(),
                    o["namespace"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, [("a.txt", "default"), ("c.txt", "photos")]);
        // A bad name anywhere refuses the whole form: nothing more is stored.
        let bad = body.replace("c.txt", "../c.txt");
        let e = call(
            &svc,
            crate::handler!(upload::create),
            &raw,
            &[],
            admin(),
            bad.into_bytes(),
            64,
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, 400);
        let page = svc
            .list_objects(
                &admin(),
                &crate::core::objects::ListSpec {
                    limit: 100,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(page.objects.len(), 2);
    });
}

#[test]
fn put_content_replaces_the_bytes() {
    with_services(|svc| async move {
        let r = call(
            &svc,
            crate::handler!(upload::create),
            "POST /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 31\r\n\r\n",
            &[],
            admin(),
            br#"{"type":"file","name":"p.txt"}"#.to_vec(),
            4,
        )
        .await
        .unwrap();
        let id = json(&r)["id"].as_str().unwrap().to_string();
        let e = call(
            &svc,
            crate::handler!(content::object),
            &format!("GET /v1/objects/{id}/content HTTP/1.1\r\nHost: x\r\n\r\n"),
            &[&id],
            admin(),
            vec![],
            1,
        )
        .await
        .unwrap_err();
        assert_eq!((e.status, e.code), (409, "pending"));
        let r = call(
            &svc,
            crate::handler!(upload::put_content),
            &format!(
                "PUT /v1/objects/{id}/content HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
            ),
            &[&id],
            admin(),
            b"hello".to_vec(),
            2,
        )
        .await
        .unwrap();
        assert_eq!(json(&r)["state"], "stored");
        let r = call(
            &svc,
            crate::handler!(content::object),
            &format!("GET /v1/objects/{id}/content HTTP/1.1\r\nHost: x\r\n\r\n"),
            &[&id],
            admin(),
            vec![],
            1,
        )
        .await
        .unwrap();
        assert_eq!(content_bytes(&r), b"hello");
        assert_eq!(
            header(&r, "content-type"),
            Some("text/plain; charset=utf-8")
        );
    });
}
