//! What an image says about itself without decoding its pixels: width and height from
//! the header, and from EXIF the capture time, camera, orientation and GPS position.
//!
//! Contract: [`probe_reader`] never panics and never fails; it returns whatever it could
//! read, with [`Probe::error`] saying what it could not. Non-images (by magic bytes)
//! give an empty [`Probe`] without an error. Memory is bounded: dimensions come from
//! `imagesize`, which reads a few header bytes and seeks over the rest; EXIF blocks
//! larger than [`MAX_EXIF_BYTES`](super::exif::MAX_EXIF_BYTES) (64 KiB) are refused, and
//! TIFF files are searched in their first
//! [`MAX_TIFF_HEAD`](super::exif::MAX_TIFF_HEAD) (256 KiB) only. See `exif.rs` for why
//! the EXIF reader is our own.
//!
//! Width and height are as stored; with orientation 5..=8 the picture is shown rotated
//! by 90°, which [`Probe::display_size`] accounts for.
//!
//! Times: `taken_at` is `DateTimeOriginal` exactly as the camera wrote it
//! (`YYYY:MM:DD HH:MM:SS`, local time of unknown zone). `taken_at_ms` is only set when
//! `OffsetTimeOriginal` gives the zone, because guessing the zone (the server's? UTC?)
//! would put photos hours off; `SubSecTimeOriginal` adds milliseconds when present.
//!
//! Not read: EXIF in HEIC/AVIF (dimensions are), XMP, video metadata. Known gap: for
//! HEIF `imagesize` reports the largest `ispe` (image spatial extent) box rather than
//! the primary item's, which is wrong only when a grid's tile is larger than the
//! cropped picture (tiny images; phone photos are grids of 512 × 512 tiles).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use super::exif::{self, Container, ExifTags};
use super::sniff;

/// A GPS position in decimal degrees (south and west negative) and metres above sea
/// level (below is negative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
    pub alt: Option<f64>,
}

/// What [`probe_reader`] found. Every field is optional: a photo without EXIF has only
/// dimensions, a damaged file may have nothing but `error`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Probe {
    /// MIME type from magic bytes (`None` when unknown).
    pub mime: Option<&'static str>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// `DateTimeOriginal` as written, `YYYY:MM:DD HH:MM:SS`, when well-formed.
    pub taken_at: Option<String>,
    /// `taken_at` as Unix milliseconds, only when `OffsetTimeOriginal` is present.
    pub taken_at_ms: Option<i64>,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    /// EXIF orientation 1..=8 (1 = as stored).
    pub orientation: Option<u8>,
    pub gps: Option<Gps>,
    /// What could not be read, for logs (`"; "`-separated when several things failed).
    pub error: Option<String>,
}

impl Probe {
    /// Width and height as displayed, i.e. swapped for orientations 5..=8.
    pub fn display_size(&self) -> Option<(u32, u32)> {
        let (w, h) = (self.width?, self.height?);
        Some(match self.orientation {
            Some(5..=8) => (h, w),
            _ => (w, h),
        })
    }

    fn note(&mut self, what: impl std::fmt::Display) {
        match &mut self.error {
            Some(e) => {
                e.push_str("; ");
                e.push_str(&what.to_string());
            }
            None => self.error = Some(what.to_string()),
        }
    }
}

/// Probe a file on disk. An unreadable file gives an empty probe with `error` set.
pub fn probe_path(path: &Path) -> Probe {
    match File::open(path) {
        Ok(f) => probe_reader(BufReader::new(f)),
        Err(e) => Probe {
            error: Some(format!("cannot open: {e}")),
            ..Probe::default()
        },
    }
}

/// Probe bytes in memory.
pub fn probe_bytes(bytes: &[u8]) -> Probe {
    probe_reader(std::io::Cursor::new(bytes))
}

/// Probe the content of `reader` (positioned anywhere; it is rewound). Reads only
/// headers and the EXIF block (bounded, see the module docs), so no length is needed.
pub fn probe_reader<R: Read + Seek>(mut reader: R) -> Probe {
    let mut p = Probe::default();
    let mut head = [0u8; sniff::SNIFF_LEN];
    let n = match read_head(&mut reader, &mut head) {
        Ok(n) => n,
        Err(e) => {
            p.note(format_args!("cannot read: {e}"));
            return p;
        }
    };
    let Some(mime) = sniff::magic(&head[..n]) else {
        return p;
    };
    p.mime = Some(mime);
    if sniff::media_kind(mime) != sniff::MediaKind::Image {
        return p;
    }

    // Dimensions. imagesize is pure header parsing, but it is third-party code fed
    // hostile bytes: a panic in it must not take down the caller's thread.
    let size = catch_unwind(AssertUnwindSafe(|| {
        reader.seek(SeekFrom::Start(0))?;
        imagesize::reader_size(&mut std::io::BufReader::new(&mut reader))
            .map_err(|e| std::io::Error::other(e.to_string()))
    }));
    match size {
        Ok(Ok(s)) => match (u32::try_from(s.width), u32::try_from(s.height)) {
            (Ok(w), Ok(h)) if w > 0 && h > 0 => {
                p.width = Some(w);
                p.height = Some(h);
            }
            _ => p.note("dimensions out of range"),
        },
        Ok(Err(e)) => p.note(format_args!("dimensions: {e}")),
        Err(_) => p.note("dimensions: header parser failed"),
    }

    if let Some(container) = Container::from_mime(mime) {
        match exif::read(&mut reader, container) {
            Ok(Some(tags)) => apply_exif(&mut p, &tags),
            Ok(None) => {}
            Err(e) => p.note(e),
        }
    }
    p
}

fn read_head<R: Read + Seek>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    r.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn apply_exif(p: &mut Probe, t: &ExifTags) {
    p.camera_make = t.make.clone();
    p.camera_model = t.model.clone();
    p.orientation = t.orientation.and_then(|o| u8::try_from(o).ok());
    if let Some(dt) = t.date_time_original.as_deref() {
        match parse_exif_datetime(dt) {
            Some(local) => {
                p.taken_at = Some(dt.to_string());
                if let Some(offset_min) = t.offset_time_original.as_deref().and_then(parse_offset) {
                    let ms = t
                        .subsec_time_original
                        .as_deref()
                        .map(subsec_ms)
                        .unwrap_or(0);
                    p.taken_at_ms = Some(local * 1000 + ms - offset_min * 60_000);
                }
            }
            None => p.note("EXIF: DateTimeOriginal malformed"),
        }
    }
    if let (Some(lat), Some(lon)) = (t.gps_lat, t.gps_lon) {
        let lat = dms(lat) * hemisphere(t.gps_lat_ref.as_deref(), 'S');
        let lon = dms(lon) * hemisphere(t.gps_lon_ref.as_deref(), 'W');
        if lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0 {
            let alt = t.gps_alt.filter(|a| a.is_finite()).map(|a| {
                if t.gps_alt_ref == Some(1) {
                    -a
                } else {
                    a
                }
            });
            p.gps = Some(Gps { lat, lon, alt });
        } else {
            p.note("EXIF: GPS position out of range");
        }
    }
}

fn dms(v: [f64; 3]) -> f64 {
    v[0] + v[1] / 60.0 + v[2] / 3600.0
}

/// -1 when the reference is the negative hemisphere; a missing reference counts as
/// positive (some writers omit it for the northern/eastern case).
fn hemisphere(r: Option<&str>, negative: char) -> f64 {
    match r.and_then(|s| s.chars().next()) {
        Some(c) if c.eq_ignore_ascii_case(&negative) => -1.0,
        _ => 1.0,
    }
}

/// `YYYY:MM:DD HH:MM:SS` to seconds since the epoch as if it were UTC. `None` for
/// anything else, including the all-zero and all-blank placeholders cameras write when
/// their clock is unset.
pub fn parse_exif_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b':'
        || b[7] != b':'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = &b[r];
        if !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(d.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if y == 0 || d < 1 || d > days_in_month || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// `+HH:MM` / `-HH:MM` to minutes east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let two = |i: usize| -> Option<i64> {
        (b[i].is_ascii_digit() && b[i + 1].is_ascii_digit())
            .then(|| i64::from(b[i] - b'0') * 10 + i64::from(b[i + 1] - b'0'))
    };
    let (h, m) = (two(1)?, two(4)?);
    (h <= 14 && m <= 59).then_some(sign * (h * 60 + m))
}

/// Fractional seconds as written ("5" is 500 ms, "123456" is 123 ms).
fn subsec_ms(s: &str) -> i64 {
    let digits: Vec<u8> = s.bytes().take_while(u8::is_ascii_digit).take(3).collect();
    let mut ms = 0;
    for i in 0..3 {
        ms = ms * 10 + digits.get(i).map_or(0, |&d| i64::from(d - b'0'));
    }
    ms
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_exif_datetime("1970:01:01 00:00:00"), Some(0));
        assert_eq!(
            parse_exif_datetime("2024:02:29 12:34:56"),
            Some(1_709_210_096)
        );
        assert_eq!(parse_exif_datetime("2023:02:29 12:34:56"), None);
        assert_eq!(parse_exif_datetime("0000:00:00 00:00:00"), None);
        assert_eq!(parse_exif_datetime("    :  :     :  :  "), None);
        assert_eq!(parse_exif_datetime("2024-02-29T12:34:56"), None);
        assert_eq!(parse_offset("+02:00"), Some(120));
        assert_eq!(parse_offset("-09:30"), Some(-570));
        assert_eq!(parse_offset("02:00"), None);
        assert_eq!(subsec_ms("5"), 500);
        assert_eq!(subsec_ms("123456"), 123);
        assert_eq!(subsec_ms(""), 0);
    }

    #[test]
    fn gps_signs() {
        let mut p = Probe::default();
        let t = ExifTags {
            gps_lat_ref: Some("S".into()),
            gps_lat: Some([33.0, 51.0, 36.0]),
            gps_lon_ref: Some("W".into()),
            gps_lon: Some([70.0, 30.0, 0.0]),
            gps_alt_ref: Some(1),
            gps_alt: Some(12.5),
            ..ExifTags::default()
        };
        apply_exif(&mut p, &t);
        let g = p.gps.unwrap();
        assert!((g.lat + 33.86).abs() < 1e-9);
        assert!((g.lon + 70.5).abs() < 1e-9);
        assert_eq!(g.alt, Some(-12.5));
    }
}
