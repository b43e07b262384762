//! The media settings: thumbnails (`--thumbnail-*`) and directory scans (`--scan-dir`,
//! `--rescan-interval`, `--scan-owner`, `--scan-extensions`), parsed and validated like
//! every other setting (flag > `RINGBOX_*` > TOML key with `_` > default).
//!
//! Defaults and the attack or accident each limit stops:
//! - `--thumbnail-concurrency 2`: decodes at once (each may use up to
//!   `--thumbnail-max-memory`), so a burst of uploads cannot take every core or much
//!   memory.
//! - `--thumbnail-max-pixels 100000000` (100 MP): decompression bombs (a PNG declaring
//!   100,000 x 100,000 pixels in a few KB) are refused from the header, before any
//!   pixel buffer exists.
//! - `--thumbnail-max-memory 256MiB`: the largest decode buffer (a 12-MP JPEG needs a
//!   few MB thanks to DCT scaling; a 48-MP RGBA PNG 192 MB).
//! - `--thumbnail-max-input 256MiB`: larger files are not decoded at all.
//! - `--thumbnail-timeout 10s`: a decode past its deadline is abandoned at its next
//!   step and the image refused.
//! - `--thumbnail-wait 30s`: how long a request waits for its thumbnail before a 503.
//! - `--thumbnail-nice 10`: decoding threads yield the CPU to the workers under load.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{parse_duration, parse_size, pick_value, ConfigError, FileConfig};
use crate::core::scan::{parse_extensions, ScanSettings, DEFAULT_EXTENSIONS};
use crate::core::thumbs::ThumbSettings;

/// The media flags (flattened into `ringbox serve`).
#[derive(Args, Debug, Default, Clone)]
pub struct MediaArgs {
    /// Index the media files under DIR in place, without copying them (repeatable).
    #[arg(long = "scan-dir", env = "RINGBOX_SCAN_DIR", value_name = "DIR")]
    pub scan_dirs: Vec<PathBuf>,
    /// Rescan the scanned directories this often (e.g. 300 or 5m; 0 = only at start).
    #[arg(long, env = "RINGBOX_RESCAN_INTERVAL", value_name = "SECS")]
    pub rescan_interval: Option<String>,
    /// Username that owns the scanned files' objects (default: the admin).
    #[arg(long, env = "RINGBOX_SCAN_OWNER", value_name = "USERNAME")]
    pub scan_owner: Option<String>,
    /// File extensions a scan indexes (comma-separated).
    #[arg(long, env = "RINGBOX_SCAN_EXTENSIONS", value_name = "LIST")]
    pub scan_extensions: Option<String>,
    /// Thumbnail decodes at once (default 2).
    #[arg(long, env = "RINGBOX_THUMBNAIL_CONCURRENCY")]
    pub thumbnail_concurrency: Option<usize>,
    /// Deadline of one thumbnail decode (e.g. 10s).
    #[arg(long, env = "RINGBOX_THUMBNAIL_TIMEOUT")]
    pub thumbnail_timeout: Option<String>,
    /// How long a request waits for a thumbnail being made (e.g. 30s; then 503).
    #[arg(long, env = "RINGBOX_THUMBNAIL_WAIT")]
    pub thumbnail_wait: Option<String>,
    /// Largest width x height decoded for a thumbnail (default 100000000).
    #[arg(long, env = "RINGBOX_THUMBNAIL_MAX_PIXELS")]
    pub thumbnail_max_pixels: Option<u64>,
    /// Largest decode buffer for a thumbnail (e.g. 256MiB).
    #[arg(long, env = "RINGBOX_THUMBNAIL_MAX_MEMORY")]
    pub thumbnail_max_memory: Option<String>,
    /// Largest image file decoded for a thumbnail (e.g. 256MiB).
    #[arg(long, env = "RINGBOX_THUMBNAIL_MAX_INPUT")]
    pub thumbnail_max_input: Option<String>,
    /// Nice value (0-19) of the thumbnail threads (default 10; 0 = worker priority).
    #[arg(long, env = "RINGBOX_THUMBNAIL_NICE")]
    pub thumbnail_nice: Option<i32>,
    /// Make the default thumbnail right after an image is stored (default true).
    #[arg(long, env = "RINGBOX_THUMBNAIL_EAGER", value_name = "BOOL")]
    pub thumbnail_eager: Option<bool>,
}

/// The scan settings from flags, the file and defaults.
pub(super) fn scan_settings(a: &MediaArgs, file: &FileConfig) -> Result<ScanSettings, ConfigError> {
    let roots = if a.scan_dirs.is_empty() {
        file.scan_dirs.clone().unwrap_or_default()
    } else {
        a.scan_dirs.clone()
    };
    let interval = match pick_value(&a.rescan_interval, &file.rescan_interval, "rescan_interval")? {
        None => Duration::ZERO,
        Some(s) => parse_duration(&s).map_err(|e| ConfigError(format!("rescan_interval: {e}")))?,
    };
    let extensions = parse_extensions(
        a.scan_extensions
            .as_deref()
            .or(file.scan_extensions.as_deref())
            .unwrap_or(DEFAULT_EXTENSIONS),
    );
    if !roots.is_empty() && extensions.is_empty() {
        return Err(ConfigError("scan_extensions lists no extension".into()));
    }
    Ok(ScanSettings {
        roots,
        interval,
        owner: a.scan_owner.clone().or_else(|| file.scan_owner.clone()),
        extensions,
    })
}

/// The thumbnail settings from flags, the file and defaults.
pub(super) fn thumb_settings(
    a: &MediaArgs,
    file: &FileConfig,
) -> Result<ThumbSettings, ConfigError> {
    let d = ThumbSettings::default();
    let dur = |flag: &Option<String>, f: &Option<toml::Value>, name: &str, def: Duration| {
        pick_value(flag, f, name)?.map_or(Ok(def), |s| {
            parse_duration(&s).map_err(|e| ConfigError(format!("{name}: {e}")))
        })
    };
    let size = |flag: &Option<String>, f: &Option<toml::Value>, name: &str, def: u64| {
        pick_value(flag, f, name)?.map_or(Ok(def), |s| {
            parse_size(&s).map_err(|e| ConfigError(format!("{name}: {e}")))
        })
    };
    let s = ThumbSettings {
        concurrency: a
            .thumbnail_concurrency
            .or(file.thumbnail_concurrency)
            .unwrap_or(d.concurrency),
        timeout: dur(
            &a.thumbnail_timeout,
            &file.thumbnail_timeout,
            "thumbnail_timeout",
            d.timeout,
        )?,
        wait: dur(
            &a.thumbnail_wait,
            &file.thumbnail_wait,
            "thumbnail_wait",
            d.wait,
        )?,
        max_pixels: a
            .thumbnail_max_pixels
            .or(file.thumbnail_max_pixels)
            .unwrap_or(d.max_pixels),
        max_memory: size(
            &a.thumbnail_max_memory,
            &file.thumbnail_max_memory,
            "thumbnail_max_memory",
            d.max_memory,
        )?,
        max_input: size(
            &a.thumbnail_max_input,
            &file.thumbnail_max_input,
            "thumbnail_max_input",
            d.max_input,
        )?,
        nice: a.thumbnail_nice.or(file.thumbnail_nice).unwrap_or(d.nice),
        eager: a
            .thumbnail_eager
            .or(file.thumbnail_eager)
            .unwrap_or(d.eager),
    };
    let bad = |m: &str| Err(ConfigError(m.to_string()));
    if !(1..=64).contains(&s.concurrency) {
        return bad("thumbnail_concurrency must be between 1 and 64");
    }
    if s.timeout.is_zero() || s.wait.is_zero() {
        return bad("thumbnail_timeout and thumbnail_wait must be greater than zero");
    }
    if s.max_pixels == 0 || s.max_memory < 1 << 20 || s.max_input == 0 {
        return bad("thumbnail_max_pixels and thumbnail_max_input must be positive, thumbnail_max_memory at least 1MiB");
    }
    if !(0..=19).contains(&s.nice) {
        return bad("thumbnail_nice must be between 0 and 19");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let file = FileConfig {
            thumbnail_concurrency: Some(3),
            rescan_interval: Some(toml::Value::Integer(5)),
            ..FileConfig::default()
        };
        let args = MediaArgs {
            thumbnail_timeout: Some("2s".into()),
            scan_dirs: vec!["/srv/photos".into()],
            ..MediaArgs::default()
        };
        let t = thumb_settings(&args, &file).unwrap();
        assert_eq!(t.concurrency, 3);
        assert_eq!(t.timeout, Duration::from_secs(2));
        assert_eq!(t.wait, ThumbSettings::default().wait);
        let s = scan_settings(&args, &file).unwrap();
        assert_eq!(s.interval, Duration::from_secs(5));
        assert_eq!(s.roots, vec![PathBuf::from("/srv/photos")]);
        assert!(
            s.extensions.contains(&"jpg".to_string()) && s.extensions.contains(&"mkv".to_string())
        );
        let bad = MediaArgs {
            thumbnail_concurrency: Some(0),
            ..MediaArgs::default()
        };
        assert!(thumb_settings(&bad, &FileConfig::default()).is_err());
        let bad = MediaArgs {
            thumbnail_nice: Some(20),
            ..MediaArgs::default()
        };
        assert!(thumb_settings(&bad, &FileConfig::default()).is_err());
    }
}
