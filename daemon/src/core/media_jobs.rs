//! What happens to an image after its upload is acknowledged: it is probed (width,
//! height, EXIF: capture time, camera, orientation, GPS) on the blocking pool and the
//! result committed to the object (`Command::SetMedia`), then its default thumbnail
//! (256 px PNG) is made in the background, so the first request for it finds it ready.
//!
//! Contract: [`Local::after_content_commit`] is called by the core's create and
//! set-content paths once the writer acknowledged the record; it never delays the
//! answer (the work runs in a task of its own), never fails the upload (a probe that
//! cannot run is logged and skipped), and commits nothing if the object's content
//! changed meanwhile (the writer checks the hash). Files indexed in place are probed by
//! the scanner, on its own thread, before their record is committed.
//!
//! Not done: video and audio metadata (duration, codec), EXIF of HEIC/AVIF (the
//! library reads their dimensions only).

use std::sync::atomic::Ordering::Relaxed;

use super::media::{self, MediaKind, Probe};
use super::thumbs::{Input, Priority, DEFAULT_FORMAT, DEFAULT_SIZE};
use super::Local;
use crate::metrics;
use crate::store::{Command, Gps, Kind, MediaInfo, ObjectRecord, Reply, Source, State};

/// The stored form of a probe. Width and height are as displayed: swapped when the
/// EXIF orientation turns the picture by 90° (what a viewer and our thumbnails show).
pub fn media_info(p: &Probe) -> MediaInfo {
    let (width, height) = match p.display_size() {
        Some((w, h)) => (Some(w), Some(h)),
        None => (p.width, p.height),
    };
    MediaInfo {
        width,
        height,
        taken_at: p.taken_at.clone(),
        taken_at_ms: p.taken_at_ms,
        camera_make: p.camera_make.clone(),
        camera_model: p.camera_model.clone(),
        orientation: p.orientation.map(u16::from),
        gps: p.gps.map(|g| Gps {
            lat: g.lat,
            lon: g.lon,
            alt: g.alt,
        }),
        error: p.error.clone(),
    }
}

/// Whether content of this type is worth probing (images; the rest has no EXIF we read).
pub fn is_probed(mime: &str) -> bool {
    media::media_kind(mime) == MediaKind::Image
}

impl Local {
    /// Probe and thumbnail a freshly stored image in the background (see the module
    /// docs). Anything else is ignored.
    pub fn after_content_commit(&self, rec: &ObjectRecord) {
        if rec.kind != Kind::File || rec.state != State::Stored || !is_probed(&rec.mime_type) {
            return;
        }
        let (Some(sha), Source::Managed) = (rec.sha256, &rec.source) else {
            return;
        };
        let core = self.core.clone();
        let path = self.store.blob_path(&sha);
        let id = rec.id;
        let thumbnail = self.thumbs.settings().eager && media::can_thumbnail(&rec.mime_type);
        monoio::spawn(async move {
            let probe_path = path.clone();
            let probe = match core.pool.run(move || media::probe_path(&probe_path)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "cannot probe an image; it keeps no media details");
                    return;
                }
            };
            metrics::get().media.probes.fetch_add(1, Relaxed);
            let media = media_info(&probe);
            // The committed change is an `object.updated` event (see `set_media`).
            let rec = match core
                .store
                .writer()
                .submit(Command::SetMedia {
                    id,
                    sha256: sha,
                    media,
                })
                .await
            {
                Ok(Reply::Object(rec)) => rec,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "cannot record media details");
                    return;
                }
            };
            if !thumbnail || rec.sha256 != Some(sha) {
                return;
            }
            let rx = match core.thumbs.submit(
                sha,
                DEFAULT_SIZE,
                DEFAULT_FORMAT,
                Input::Managed(path),
                Priority::Background,
            ) {
                Ok(Some(rx)) => rx,
                // Queue full: made when first asked for.
                Ok(None) | Err(_) => return,
            };
            if let Ok(Err(super::thumbs::Failure::Refused(why))) = rx.await {
                if let Some(cmd) = super::thumbs::refusal_command(&rec, &why) {
                    if let Err(e) = core.store.writer().submit(cmd).await {
                        tracing::warn!(%id, error = %e, "cannot record a thumbnail refusal");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_size_and_fields() {
        let p = Probe {
            mime: Some("image/jpeg"),
            width: Some(64),
            height: Some(48),
            orientation: Some(6),
            taken_at: Some("2024:07:14 18:30:05".into()),
            camera_make: Some("Canon".into()),
            gps: Some(media::Gps {
                lat: 1.5,
                lon: -2.0,
                alt: None,
            }),
            ..Probe::default()
        };
        let m = media_info(&p);
        assert_eq!((m.width, m.height), (Some(48), Some(64)));
        assert_eq!(m.orientation, Some(6));
        assert_eq!(m.camera_make.as_deref(), Some("Canon"));
        assert_eq!(m.gps.map(|g| (g.lat, g.lon)), Some((1.5, -2.0)));
        assert!(is_probed("image/heic") && !is_probed("video/mp4"));
    }
}
