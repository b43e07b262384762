//! The Media Vault handlers and translations driven directly, with in-memory bodies
//! and no socket.

use serde_json::{json, Value};

use super::realtime::{handle, Reply, State};
use super::{media, page_params, paged, render_envelope, webhooks};
use crate::api::test_support::{call, header, json_of};
use crate::core::test_support::{admin, user, with_services};
use crate::core::{Caller, Local};
use crate::http::errors::ApiError;
use crate::store::{EventObject, EventRecord};

fn form(filename: Option<&str>, fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let b = "XyZbOuNdArY";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some(f) = filename {
        body.extend_from_slice(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{f}\"\r\nContent-Type: text/plain\r\n\r\nhello {f}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (
        format!("Content-Type: multipart/form-data; boundary={b}\r\n"),
        body,
    )
}

async fn upload(svc: &Local, caller: Caller, name: &str, title: &str) -> Value {
    let (ct, body) = form(Some(name), &[("title", title), ("tags", "a, b")]);
    let r = call(
        svc,
        crate::handler!(media::upload),
        "POST /api/v1/media/upload",
        None,
        &ct,
        &body,
        caller,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    json_of(&r)["data"].clone()
}

#[test]
fn errors_are_the_seeds_envelope_with_a_request_id() {
    let mut e = ApiError::bad_request("bad");
    e.details
        .push(("email", "Must be a valid email address".into()));
    let r = render_envelope(e);
    let v = json_of(&r);
    assert_eq!(r.status, 400);
    assert_eq!(v["success"], false);
    assert_eq!(v["error"]["code"], "validation_error");
    assert_eq!(v["error"]["details"][0]["field"], "email");
    assert_eq!(header(&r, "x-request-id"), v["meta"]["request_id"].as_str());
    assert!(v["meta"]["timestamp"].is_string());
    for (status, code) in [
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "not_found"),
        (429, "rate_limited"),
        (500, "internal_error"),
        (413, "payload_too_large"),
    ] {
        let v = json_of(&render_envelope(ApiError::new(
            status,
            "payload_too_large",
            "x",
        )));
        assert_eq!(v["error"]["code"], code);
        assert!(v["error"].get("details").is_none());
    }
}

#[test]
fn pages_have_the_seeds_pagination_block() {
    let q = crate::util::query::Query::parse(Some("page=2&per_page=500")).unwrap();
    assert_eq!(page_params(&q).unwrap(), (2, 100));
    for bad in ["page=0", "per_page=x", "page=-1"] {
        let q = crate::util::query::Query::parse(Some(bad)).unwrap();
        assert_eq!(page_params(&q).unwrap_err().status, 400, "{bad}");
    }
    let r = paged(vec![json!(1); 20], 150, 2, 20, |n| {
        format!("/media?page={n}")
    })
    .unwrap();
    let p = json_of(&r)["meta"]["pagination"].clone();
    assert_eq!(p["total"], 150);
    assert_eq!(p["count"], 20);
    assert_eq!(p["total_pages"], 8);
    assert_eq!(p["links"]["next"], "/media?page=3");
    assert_eq!(p["links"]["prev"], "/media?page=1");
    let last = json_of(&paged(vec![], 150, 8, 20, |n| n.to_string()).unwrap())["meta"]
        ["pagination"]
        .clone();
    assert!(last["links"]["next"].is_null());
    let first =
        json_of(&paged(vec![], 0, 1, 20, |n| n.to_string()).unwrap())["meta"]["pagination"].clone();
    assert!(first["links"]["prev"].is_null() && first["links"]["next"].is_null());
}

#[test]
fn upload_list_get_and_foreign_or_malformed_ids() {
    with_services(|svc| async move {
        let mut ids = Vec::new();
        for i in 0..3 {
            let v = upload(&svc, admin(), &format!("dir/f{i}.txt"), &format!("T{i}")).await;
            assert_eq!(v["filename"], format!("f{i}.txt"));
            assert_eq!(v["type"], "document");
            assert_eq!(v["tags"], json!(["a", "b"]));
            assert_eq!(v["user_id"], "admin");
            ids.push(v["id"].as_str().unwrap().to_string());
        }
        let r = call(
            &svc,
            crate::handler!(media::list),
            "GET /api/v1/media?per_page=2",
            None,
            "",
            b"",
            admin(),
        )
        .await
        .unwrap();
        let v = json_of(&r);
        let got: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
        assert_eq!(v["meta"]["pagination"]["total"], 3);
        let r = call(
            &svc,
            crate::handler!(media::list),
            "GET /api/v1/media?per_page=2&page=9",
            None,
            "",
            b"",
            admin(),
        )
        .await
        .unwrap();
        assert_eq!(json_of(&r)["data"], json!([]));
        for (id, who) in [(ids[0].as_str(), user("someone")), ("not-a-uuid", admin())] {
            let e = call(
                &svc,
                crate::handler!(media::get),
                "GET /api/v1/media/x",
                Some(id),
                "",
                b"",
                who,
            )
            .await
            .unwrap_err();
            assert_eq!((e.status, e.code), (404, "not_found"));
        }
        // The count follows moves out of the namespace and deletions.
        let moved = uuid::Uuid::try_parse(&ids[0]).unwrap();
        svc.change_object(
            &admin(),
            moved,
            crate::core::objects::Change {
                namespace: Some("elsewhere".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let p = svc.owned_page(&admin(), "mediavault", 0, 10).unwrap();
        assert_eq!((p.total, p.objects.len()), (2, 2));
        let gone = uuid::Uuid::try_parse(&ids[1]).unwrap();
        svc.delete_object(&admin(), gone).await.unwrap();
        let p = svc.owned_page(&admin(), "mediavault", 0, 10).unwrap();
        assert_eq!((p.total, p.objects.len()), (1, 1));
        assert_eq!(
            svc.owned_page(&admin(), "elsewhere", 0, 10).unwrap().total,
            1
        );
        let (ct, body) = form(None, &[("title", "x")]);
        let e = call(
            &svc,
            crate::handler!(media::upload),
            "POST /api/v1/media/upload",
            None,
            &ct,
            &body,
            admin(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(e.details[0].0, "file");
    });
}

#[test]
fn realtime_needs_auth_before_subscribe_and_acks_in_order() {
    let mut auth = |t: &str| (t == "good").then(|| "u1".to_string());
    let mut s = State::default();
    assert!(matches!(
        handle(
            &mut s,
            r#"{"type":"subscribe","channel":"media_updates"}"#,
            &mut auth
        ),
        Reply::Refuse(_)
    ));
    let mut s = State::default();
    assert!(matches!(
        handle(&mut s, r#"{"type":"auth","token":"bad"}"#, &mut auth),
        Reply::Refuse(_)
    ));
    let mut s = State::default();
    let Reply::Send(a) = handle(&mut s, r#"{"type":"auth","token":"good"}"#, &mut auth) else {
        panic!()
    };
    assert_eq!(a["type"], "ack");
    let Reply::Send(a) = handle(
        &mut s,
        r#"{"type":"subscribe","channel":"media_updates","resource_id":"m1"}"#,
        &mut auth,
    ) else {
        panic!()
    };
    assert_eq!(
        (a["type"].as_str(), a["resource_id"].as_str()),
        (Some("ack"), Some("m1"))
    );
    let id = uuid::Uuid::now_v7();
    let ev = |owner: &str, id: uuid::Uuid, kind: &str| EventRecord {
        seq: 1,
        kind: kind.into(),
        at_ms: 0,
        actor: owner.into(),
        owner: Some(owner.into()),
        object: Some(EventObject {
            id,
            namespace: "mediavault".into(),
            name: "a.png".into(),
            size: 1,
            sha256: None,
            mime_type: "image/png".into(),
        }),
        subject: None,
        changes_json: None,
    };
    // Subscribed to m1 only: another item's events are not sent.
    assert!(s.message(&ev("u1", id, "object.deleted")).is_none());
    s.subs.push(Some(id.to_string()));
    let m = s.message(&ev("u1", id, "object.deleted")).unwrap();
    assert_eq!(m["type"], "media.deleted");
    assert_eq!(m["data"]["id"], id.to_string());
    assert!(s.message(&ev("u2", id, "object.deleted")).is_none());
}

#[test]
fn webhook_payloads_translate_core_events() {
    let id = uuid::Uuid::now_v7();
    let mut ev = EventRecord {
        seq: 1,
        kind: "object.created".into(),
        at_ms: 0,
        actor: "u1".into(),
        owner: Some("u1".into()),
        object: Some(EventObject {
            id,
            namespace: "mediavault".into(),
            name: "a.png".into(),
            size: 1,
            sha256: None,
            mime_type: "image/png".into(),
        }),
        subject: None,
        changes_json: None,
    };
    let (kind, body) = webhooks::payload(&ev).unwrap();
    assert_eq!(kind, "media.uploaded");
    assert_eq!(body["data"]["id"], id.to_string());
    assert_eq!(body["data"]["type"], "image");
    assert_eq!(body["data"]["user_id"], "u1");
    assert!(body["timestamp"].is_string());
    ev.object.as_mut().unwrap().namespace = "other".into();
    assert!(webhooks::payload(&ev).is_none());
    ev.kind = "collection.created".into();
    ev.object = None;
    ev.subject = Some("c1".into());
    let (kind, body) = webhooks::payload(&ev).unwrap();
    assert_eq!(
        (kind.as_str(), body["data"]["id"].as_str()),
        ("collection.created", Some("c1"))
    );
    ev.kind = "object.updated".into();
    assert!(webhooks::payload(&ev).is_none());
}

#[test]
fn tags_and_file_names() {
    assert_eq!(
        media::parse_tags_field(" a, b ,a,").unwrap(),
        vec!["a", "b"]
    );
    assert_eq!(
        media::parse_tags_field(r#"["x","y"]"#).unwrap(),
        vec!["x", "y"]
    );
    assert!(media::parse_tags_field("[1]").is_err());
    assert_eq!(media::file_name("C:\\pics\\cat.jpg"), "cat.jpg");
    assert_eq!(media::file_name("../"), "upload");
}
