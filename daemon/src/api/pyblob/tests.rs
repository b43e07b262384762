//! The pyBlobServer handlers driven directly, with in-memory bodies and no socket.

use ringbox_protocol::head::{parse_request_head, RequestHead, Status};
use serde_json::Value;

use super::{available_space, files, render_detail, upload, users};
use crate::core::identity::CredentialKind;
use crate::core::short_ids::{is_short_id, ShortLinks};
use crate::core::stream::MemoryStream;
use crate::core::test_support::{admin, with_services, with_settings};
use crate::core::users::NewUser;
use crate::core::{Caller, Local, Settings};
use crate::http::errors::ApiError;
use crate::http::request::{Ctx, Handler, HandlerResult, Params, Request};
use crate::http::response::{BlobParts, BlobSource, Body, Response};
use crate::store::{Principal, Role};

const BOUNDARY: &str = "xXpyblobXx";
/// The first bytes of a PNG file (enough for type detection).
const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn head(raw: &str) -> RequestHead {
    let mut h = RequestHead::new();
    let status = parse_request_head(raw.as_bytes(), &ringbox_protocol::Limits::default(), &mut h);
    assert!(
        matches!(status, Ok(Status::Complete(_))),
        "{raw:?}: {status:?}"
    );
    h
}

/// A user as the core knows them: their caller, and their first token's secret and
/// credential.
struct TestUser {
    caller: Caller,
    secret: String,
    credential: CredentialKind,
}

async fn add_user(svc: &Local, name: &str, quota: Option<u64>) -> TestUser {
    let (u, t) = svc
        .create_user(
            &admin(),
            NewUser {
                username: name.into(),
                password: "a long password".into(),
                role: Role::User,
                display_name: None,
                quota_bytes: quota,
            },
        )
        .await
        .unwrap();
    let a = svc.authenticate(t.secret.as_bytes()).unwrap().unwrap();
    TestUser {
        caller: Caller {
            principal: Some(Principal {
                user: u.id,
                role: Role::User,
            }),
            ip: None,
        },
        secret: t.secret,
        credential: a.kind,
    }
}

/// One request to `handler`; `param` is the route's parameter; `auth` the credential
/// (sent as a bearer header too).
#[allow(clippy::too_many_arguments)]
async fn call(
    svc: &Local,
    handler: Handler,
    line: &str,
    param: Option<&str>,
    headers: &str,
    body: &[u8],
    caller: Caller,
    auth: Option<(&str, CredentialKind)>,
) -> HandlerResult {
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let authorization = auth.as_ref().map_or(String::new(), |(s, _)| {
        format!("Authorization: Bearer {s}\r\n")
    });
    let h = head(&format!(
        "{line} HTTP/1.1\r\nHost: files.test\r\n{authorization}{headers}{length}\r\n"
    ));
    let mut p = Params::default();
    if let Some(v) = param {
        p.push(std::borrow::Cow::Owned(v.to_string()));
    }
    let mut stream = MemoryStream::new(body.to_vec(), 7);
    let ctx = Ctx {
        svc,
        req: Request {
            head: &h,
            params: p,
            caller,
            credential: auth.map(|(_, k)| k),
        },
        body: &mut stream,
    };
    handler(ctx).await
}

fn form(filename: &str, data: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

async fn upload_as(svc: &Local, who: &Caller, filename: &str, data: &[u8]) -> HandlerResult {
    call(
        svc,
        crate::handler!(upload::create),
        "POST /upload",
        None,
        &format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
        &form(filename, data),
        who.clone(),
        None,
    )
    .await
}

async fn show(svc: &Local, who: &Caller, id: &str, output: &str) -> HandlerResult {
    call(
        svc,
        crate::handler!(files::show),
        &format!("GET /s/{id}?output={output}"),
        Some(id),
        "",
        b"",
        who.clone(),
        None,
    )
    .await
}

fn json_of(r: &Response) -> Value {
    match &r.body {
        Body::Bytes(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("not a JSON body: {other:?}"),
    }
}

fn text_of(r: &Response) -> String {
    match &r.body {
        Body::Bytes(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("not a text body: {other:?}"),
    }
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| std::str::from_utf8(v.as_bytes()).unwrap())
}

fn status_of(r: HandlerResult) -> u16 {
    match r {
        Ok(r) => r.status,
        Err(e) => e.status,
    }
}

fn detail_of(e: ApiError) -> (u16, Value) {
    let r = render_detail(e);
    (r.status, json_of(&r))
}

#[test]
fn available_space_is_formatted_as_pyblobserver_does() {
    assert_eq!(available_space(None), "unlimited");
    assert_eq!(available_space(Some(0)), "0.0 KB");
    assert_eq!(available_space(Some(512)), "0.5 KB");
    assert_eq!(available_space(Some((1 << 20) - 1)), "1024.0 KB");
    assert_eq!(available_space(Some(1 << 20)), "1.0 MB");
    assert_eq!(
        available_space(Some(490 * (1 << 20) + (1 << 19))),
        "490.5 MB"
    );
}

#[test]
fn errors_are_fastapi_details() {
    let (status, v) = detail_of(ApiError::new(404, "not_found", "File not found"));
    assert_eq!(status, 404);
    assert_eq!(v, serde_json::json!({"detail": "File not found"}));
}

#[test]
fn upload_show_list_and_delete() {
    with_services(|svc| async move {
        let alice = add_user(&svc, "alice", Some(3 << 20)).await;
        let bob = add_user(&svc, "bobby", None).await;
        let mut data = PNG.to_vec();
        data.extend_from_slice(&[7u8; 1000]);
        let r = upload_as(&svc, &alice.caller, "<b>x&y</b>.png", &data)
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let v = json_of(&r);
        let id = v["file_id"].as_str().unwrap().to_string();
        assert!(id.len() == 8 && is_short_id(&id), "{id}");
        assert_eq!(v["file_url"], format!("http://files.test/s/{id}"));
        assert_eq!(
            v["show_image"],
            format!("http://files.test/s/{id}?output=html")
        );
        let left = (3u64 << 20) - data.len() as u64;
        assert_eq!(v["available_space"], available_space(Some(left)));
        assert_eq!(v.as_object().unwrap().len(), 4);
        // JSON: the seed's fields.
        let j = json_of(&show(&svc, &alice.caller, &id, "json").await.unwrap());
        assert_eq!(j["file_id"], id.as_str());
        assert_eq!(j["filename"], "<b>x&y</b>.png");
        assert_eq!(j["size"], data.len() as u64);
        assert_eq!(j["content_type"], "image/png");
        assert_eq!(j["downloads"], 0);
        assert!(j["last_downloaded"].is_null());
        assert!(j["upload_date"].as_str().unwrap().ends_with('Z'));
        // HTML: the picture, and the name escaped.
        let r = show(&svc, &alice.caller, &id, "html").await.unwrap();
        assert!(header(&r, "content-type").unwrap().starts_with("text/html"));
        let page = text_of(&r);
        assert!(page.contains(&format!("<img src=\"/s/{id}\"")), "{page}");
        assert!(page.contains("&lt;b&gt;x&amp;y&lt;/b&gt;.png"), "{page}");
        assert!(!page.contains("<b>x"), "{page}");
        // The bytes, with the stored type and the original name; a download counts.
        let r = show(&svc, &alice.caller, &id, "file").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(header(&r, "content-type"), Some("image/png"));
        assert!(header(&r, "content-disposition")
            .unwrap()
            .starts_with("attachment"));
        match &r.body {
            Body::Blob(BlobSource::Memory(b), BlobParts::Full(n)) => {
                assert_eq!((&b[..], *n), (&data[..], data.len() as u64))
            }
            Body::Blob(_, BlobParts::Full(n)) => assert_eq!(*n, data.len() as u64),
            other => panic!("{other:?}"),
        }
        let j = json_of(&show(&svc, &alice.caller, &id, "json").await.unwrap());
        assert_eq!(j["downloads"], 1);
        assert!(j["last_downloaded"].is_string());
        // Other outputs are 400; unknown ids of any shape and other users' files 404.
        assert_eq!(status_of(show(&svc, &alice.caller, &id, "xml").await), 400);
        for bad in ["AAAAAAAA", "..", "a%2Fb", "x"] {
            assert_eq!(status_of(show(&svc, &alice.caller, bad, "json").await), 404);
        }
        for output in ["file", "html", "json"] {
            assert_eq!(status_of(show(&svc, &bob.caller, &id, output).await), 404);
        }
        assert_eq!(status_of(show(&svc, &admin(), &id, "json").await), 200);
        // Without a token (links are not public by default): 401.
        let anon = Caller::anonymous(None);
        let e = show(&svc, &anon, &id, "json").await.unwrap_err();
        assert_eq!(e.status, 401);
        // The list: the caller's own files only, newest first.
        let second = json_of(
            &upload_as(&svc, &alice.caller, "b.txt", b"two")
                .await
                .unwrap(),
        );
        upload_as(&svc, &bob.caller, "c.txt", b"bob's")
            .await
            .unwrap();
        let list = |who: Caller| {
            let svc = &svc;
            async move {
                let r = call(
                    svc,
                    crate::handler!(files::list),
                    "GET /list",
                    None,
                    "",
                    b"",
                    who,
                    None,
                )
                .await
                .unwrap();
                json_of(&r)
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["file_id"].as_str().unwrap().to_string())
                    .collect::<Vec<_>>()
            }
        };
        let mine = list(alice.caller.clone()).await;
        assert_eq!(mine, vec![second["file_id"].as_str().unwrap(), id.as_str()]);
        assert_eq!(list(bob.caller.clone()).await.len(), 1);
        // Deleting: not Bob's (404), Alice's (200), then gone (404).
        let delete = |who: Caller, id: String| {
            let svc = &svc;
            async move {
                call(
                    svc,
                    crate::handler!(files::delete),
                    &format!("DELETE /delete/{id}"),
                    Some(&id),
                    "",
                    b"",
                    who,
                    None,
                )
                .await
            }
        };
        assert_eq!(status_of(delete(bob.caller.clone(), id.clone()).await), 404);
        let r = delete(alice.caller.clone(), id.clone()).await.unwrap();
        assert_eq!(json_of(&r), serde_json::json!({"message": "File deleted"}));
        assert_eq!(
            status_of(delete(alice.caller.clone(), id.clone()).await),
            404
        );
        assert_eq!(status_of(show(&svc, &alice.caller, &id, "json").await), 404);
    });
}

#[test]
fn an_upload_needs_a_file_part() {
    with_services(|svc| async move {
        let alice = add_user(&svc, "alice", None).await;
        let body = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"other\"; filename=\"a\"\r\n\r\nx\r\n--{BOUNDARY}--\r\n"
        );
        let r = call(
            &svc,
            crate::handler!(upload::create),
            "POST /upload",
            None,
            &format!("Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"),
            body.as_bytes(),
            alice.caller.clone(),
            None,
        )
        .await;
        assert_eq!(status_of(r), 422);
        let r = call(
            &svc,
            crate::handler!(upload::create),
            "POST /upload",
            None,
            "Content-Type: application/octet-stream\r\n",
            b"raw",
            alice.caller.clone(),
            None,
        )
        .await;
        assert_eq!(status_of(r), 422);
    });
}

#[test]
fn delete_all_needs_confirm_and_touches_only_the_callers_files() {
    with_services(|svc| async move {
        let alice = add_user(&svc, "alice", None).await;
        let bob = add_user(&svc, "bobby", None).await;
        for who in [&alice, &alice, &bob] {
            upload_as(&svc, &who.caller, "f.bin", b"data")
                .await
                .unwrap();
        }
        let delete_all = |query: &'static str| {
            let svc = &svc;
            let who = alice.caller.clone();
            async move {
                call(
                    svc,
                    crate::handler!(files::delete_all),
                    &format!("DELETE /delete_all{query}"),
                    None,
                    "",
                    b"",
                    who,
                    None,
                )
                .await
            }
        };
        assert_eq!(status_of(delete_all("").await), 400);
        assert_eq!(status_of(delete_all("?confirm=no").await), 400);
        assert_eq!(
            status_of(delete_all("?confirm=yes&function=some").await),
            400
        );
        assert_eq!(svc.usage(&alice.caller, "alice").unwrap().objects, 2);
        // Nothing is 90 days idle yet.
        let r = delete_all("?confirm=yes&function=expired").await.unwrap();
        let m = json_of(&r)["message"].as_str().unwrap().to_string();
        assert!(m.starts_with("0 expired files deleted"), "{m}");
        let r = delete_all("?confirm=yes").await.unwrap();
        assert_eq!(
            json_of(&r),
            serde_json::json!({"message": "All files deleted"})
        );
        assert_eq!(svc.usage(&alice.caller, "alice").unwrap().objects, 0);
        assert_eq!(svc.usage(&bob.caller, "bobby").unwrap().objects, 1);
    });
}

#[test]
fn user_info_and_token_change() {
    with_services(|svc| async move {
        let alice = add_user(&svc, "alice", Some(10 << 20)).await;
        let bob = add_user(&svc, "bobby", None).await;
        upload_as(&svc, &alice.caller, "a.bin", &[1u8; 2048])
            .await
            .unwrap();
        let get = |who: &TestUser, target: &str, query: &str| {
            let svc = &svc;
            let line = format!("GET /user/{target}{query}");
            let target = target.to_string();
            let caller = who.caller.clone();
            let auth = (who.secret.clone(), who.credential.clone());
            async move {
                call(
                    svc,
                    crate::handler!(users::get),
                    &line,
                    Some(&target),
                    "",
                    b"",
                    caller,
                    Some((&auth.0, auth.1)),
                )
                .await
            }
        };
        let v = json_of(&get(&alice, "alice", "").await.unwrap());
        assert_eq!(v["username"], "alice");
        assert_eq!(v["total_size"], 2048);
        assert_eq!(v["file_count"], 1);
        assert_eq!(v["quota"], 10u64 << 20);
        assert_eq!(v["available_space"], "10.0 MB");
        let masked = v["token"].as_str().unwrap();
        assert!(masked.ends_with("***") && alice.secret.starts_with(&masked[..6]));
        // Another user: 403; an unknown one too (no existence leak); bad function 400.
        assert_eq!(status_of(get(&bob, "alice", "").await), 403);
        assert_eq!(status_of(get(&bob, "nobody", "").await), 403);
        assert_eq!(status_of(get(&alice, "alice", "?function=x").await), 400);
        // change_token: a new token, the presented one revoked.
        let v = json_of(
            &get(&alice, "alice", "?function=change_token")
                .await
                .unwrap(),
        );
        let new = v["token"].as_str().unwrap();
        assert_ne!(new, alice.secret);
        assert!(svc.authenticate(new.as_bytes()).unwrap().is_some());
        assert!(svc.authenticate(alice.secret.as_bytes()).unwrap().is_none());
        // Bob's token is untouched.
        assert!(svc.authenticate(bob.secret.as_bytes()).unwrap().is_some());
    });
}

#[test]
fn public_links_serve_anyone_but_refuse_bad_tokens() {
    let settings = Settings {
        short_links: ShortLinks {
            public_schemes: vec![super::SCHEME.into()],
            ..ShortLinks::default()
        },
        ..Settings::default()
    };
    with_settings(settings, |svc| async move {
        let alice = add_user(&svc, "alice", None).await;
        let v = json_of(
            &upload_as(&svc, &alice.caller, "p.txt", b"public")
                .await
                .unwrap(),
        );
        let id = v["file_id"].as_str().unwrap().to_string();
        let anon = Caller::anonymous(None);
        assert_eq!(status_of(show(&svc, &anon, &id, "json").await), 200);
        assert_eq!(status_of(show(&svc, &anon, &id, "file").await), 200);
        // A bad token is refused, not taken as anonymous.
        let r = call(
            &svc,
            crate::handler!(files::show),
            &format!("GET /s/{id}"),
            Some(&id),
            "Authorization: Bearer wrong\r\n",
            b"",
            anon,
            None,
        )
        .await;
        assert_eq!(status_of(r), 401);
    });
}
