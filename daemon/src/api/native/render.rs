//! The JSON shape of an object in the native API.

use serde_json::{json, Map, Value};

use crate::store::{Kind, MediaInfo, ObjectRecord, State};
use crate::util::{hex, time::rfc3339_ms};

/// `{"id","kind","name","namespace","mime_type","size","sha256","state","created_at",
/// "updated_at","tags","metadata","media","expires_at","downloads","last_accessed_at"}`, plus
/// `"content"` for text objects. The download counters are written in batches every
/// few seconds (`core::stats`), so they lag a download by up to that.
pub fn object_json(r: &ObjectRecord) -> Value {
    let mut v = base_json(r);
    if let (Kind::Text, Some(content), Value::Object(m)) = (r.kind, &r.content, &mut v) {
        m.insert("content".into(), Value::String(content.clone()));
    }
    v
}

/// The object as listed: a text object's `content` is cut to `preview` bytes (at a
/// character boundary) with `"content_truncated": true`, so a page of 1,000 text
/// objects stays small whatever they hold; the whole text is at `GET /v1/objects/{id}`.
pub fn list_json(r: &ObjectRecord, preview: usize) -> Value {
    let mut v = base_json(r);
    if let (Kind::Text, Some(content), Value::Object(m)) = (r.kind, &r.content, &mut v) {
        if content.len() <= preview {
            m.insert("content".into(), Value::String(content.clone()));
        } else {
            let mut cut = preview;
            while !content.is_char_boundary(cut) {
                cut -= 1;
            }
            m.insert("content".into(), Value::String(content[..cut].to_string()));
            m.insert("content_truncated".into(), Value::Bool(true));
        }
    }
    v
}

fn base_json(r: &ObjectRecord) -> Value {
    let metadata: Value =
        serde_json::from_str(&r.metadata_json).unwrap_or_else(|_| Value::Object(Map::new()));
    json!({
        "id": r.id.to_string(),
        "kind": match r.kind { Kind::File => "file", Kind::Text => "text" },
        "name": r.name,
        "namespace": r.namespace,
        "mime_type": r.mime_type,
        "size": r.size,
        "sha256": r.sha256.map(|s| hex::encode(&s)),
        "state": match r.state { State::Stored => "stored", State::Pending => "pending", State::Lost => "lost" },
        "created_at": rfc3339_ms(r.created_at_ms),
        "updated_at": rfc3339_ms(r.updated_at_ms),
        "tags": r.tags,
        "metadata": metadata,
        "media": r.media.as_ref().map(media_json),
        "expires_at": r.expires_at_ms.map(rfc3339_ms),
        "downloads": r.downloads,
        "last_accessed_at": r.last_access_ms.map(rfc3339_ms),
    })
}

/// `{"width","height","taken_at","taken_at_ms"?,"camera","orientation","gps"?,"error"?}`:
/// `null` where the file says nothing, `camera` null when neither make nor model is
/// known; `taken_at_ms` only when the zone is known, `gps` only when present and the
/// core let the caller see it, `error` only when something was refused.
fn media_json(m: &MediaInfo) -> Value {
    let mut v = json!({
        "width": m.width,
        "height": m.height,
        "taken_at": m.taken_at,
        "camera": if m.camera_make.is_none() && m.camera_model.is_none() {
            Value::Null
        } else {
            json!({ "make": m.camera_make, "model": m.camera_model })
        },
        "orientation": m.orientation,
    });
    if let Value::Object(o) = &mut v {
        if let Some(ms) = m.taken_at_ms {
            o.insert("taken_at_ms".into(), json!(ms));
        }
        if let Some(g) = &m.gps {
            o.insert(
                "gps".into(),
                json!({ "lat": g.lat, "lon": g.lon, "alt": g.alt }),
            );
        }
        if let Some(e) = &m.error {
            o.insert("error".into(), json!(e));
        }
    }
    v
}
