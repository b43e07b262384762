//! EXIF: find the EXIF (TIFF-structured) block in a JPEG, PNG, WebP or TIFF file and
//! read the handful of tags the catalogue uses.
//!
//! Why not a general EXIF crate: `kamadak-exif` 0.6 follows every Exif/GPS/Interop
//! pointer of IFD0 to a distinct offset and materialises every entry (or error) it finds
//! there, so pointers that land inside IFD0's own entry table give O(n²) work. Measured
//! on `tests/media/exif-huge.jpg` (one 64 KiB APP1 segment of such pointers) with
//! `continue_on_error(true)`, which returning partial results needs: 14.9 million error
//! records, 350 MB resident, 0.4 s of CPU. Its container readers also allocate a PNG `eXIf`
//! or WebP `EXIF` chunk of whatever length it declares, and read all of a TIFF file.
//! What we need is a lookup of about fifteen tags, so this module does exactly that: it
//! visits IFD0, the Exif IFD and the GPS IFD once each (no other IFDs, no recursion),
//! reads only the entries it wants, and allocates nothing beyond the block it was given,
//! one small entry list per IFD and the strings it returns.
//!
//! Limits (and the attack each stops):
//! - [`MAX_EXIF_BYTES`] (64 KiB): the largest EXIF block read into memory. JPEG cannot
//!   carry more in one APP1 segment anyway; a larger PNG/WebP chunk is refused
//!   (`ExifError::TooLarge`) instead of allocated.
//! - [`MAX_TIFF_HEAD`] (256 KiB): for TIFF files the whole file is the EXIF structure;
//!   we read this much of its start. Tags whose data lies beyond are reported missing.
//! - [`MAX_SEGMENTS`]: markers/chunks walked before giving up, so a file made of
//!   millions of empty segments costs bounded time.
//!
//! Not read: EXIF in HEIF/AVIF (`iloc`-addressed items; left for when a HEIF decoder
//! arrives), XMP, MakerNotes, thumbnails inside EXIF, multiple EXIF blocks (the first
//! one counts).

use std::io::{self, Read, Seek, SeekFrom};

/// Largest EXIF block read into memory.
pub const MAX_EXIF_BYTES: usize = 64 * 1024;
/// Bytes read from the start of a TIFF file to find its tags.
pub const MAX_TIFF_HEAD: usize = 256 * 1024;
/// Markers (JPEG) or chunks (PNG, WebP) walked while looking for EXIF.
pub const MAX_SEGMENTS: usize = 4096;

/// The tags we read, as found (validated, but not interpreted beyond types).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExifTags {
    pub make: Option<String>,
    pub model: Option<String>,
    pub orientation: Option<u16>,
    pub date_time_original: Option<String>,
    pub offset_time_original: Option<String>,
    pub subsec_time_original: Option<String>,
    pub gps_lat_ref: Option<String>,
    pub gps_lat: Option<[f64; 3]>,
    pub gps_lon_ref: Option<String>,
    pub gps_lon: Option<[f64; 3]>,
    pub gps_alt_ref: Option<u8>,
    pub gps_alt: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExifError {
    #[error("EXIF block of {0} bytes is larger than the {MAX_EXIF_BYTES}-byte limit")]
    TooLarge(u64),
    #[error("EXIF is malformed: {0}")]
    Malformed(&'static str),
    #[error("reading EXIF failed: {0}")]
    Io(#[from] io::Error),
}

/// Container of the EXIF block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Jpeg,
    Png,
    WebP,
    Tiff,
}

impl Container {
    pub fn from_mime(mime: &str) -> Option<Container> {
        Some(match mime {
            "image/jpeg" => Container::Jpeg,
            "image/png" => Container::Png,
            "image/webp" => Container::WebP,
            "image/tiff"
            | "image/x-adobe-dng"
            | "image/x-nikon-nef"
            | "image/x-sony-arw"
            | "image/x-canon-cr2"
            | "image/x-olympus-orf"
            | "image/x-pentax-pef" => Container::Tiff,
            _ => return None,
        })
    }
}

/// Read the tags from a file of type `container`, reading from its start. `Ok(None)`
/// when the file has no EXIF block.
pub fn read<R: Read + Seek>(
    r: &mut R,
    container: Container,
) -> Result<Option<ExifTags>, ExifError> {
    r.seek(SeekFrom::Start(0))?;
    let block = match container {
        Container::Jpeg => jpeg_block(r)?,
        Container::Png => png_block(r)?,
        Container::WebP => webp_block(r)?,
        Container::Tiff => {
            let mut buf = Vec::new();
            r.take(MAX_TIFF_HEAD as u64).read_to_end(&mut buf)?;
            Some(buf)
        }
    };
    match block {
        Some(b) => parse(&b).map(Some),
        None => Ok(None),
    }
}

fn read_exact_or_eof<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Read `len` bytes into a new buffer, refusing more than [`MAX_EXIF_BYTES`].
fn read_block<R: Read>(r: &mut R, len: u64) -> Result<Option<Vec<u8>>, ExifError> {
    if len > MAX_EXIF_BYTES as u64 {
        return Err(ExifError::TooLarge(len));
    }
    let mut buf = vec![0; len as usize];
    if !read_exact_or_eof(r, &mut buf)? {
        return Err(ExifError::Malformed("EXIF block is truncated"));
    }
    Ok(Some(buf))
}

/// JPEG: walk the marker segments before the first scan; EXIF is an APP1 segment
/// starting `Exif\0\0`.
fn jpeg_block<R: Read + Seek>(r: &mut R) -> Result<Option<Vec<u8>>, ExifError> {
    let mut soi = [0; 2];
    if !read_exact_or_eof(r, &mut soi)? || soi != [0xff, 0xd8] {
        return Err(ExifError::Malformed("not a JPEG"));
    }
    for _ in 0..MAX_SEGMENTS {
        let mut b = [0; 1];
        if !read_exact_or_eof(r, &mut b)? {
            return Ok(None);
        }
        if b[0] != 0xff {
            return Err(ExifError::Malformed("JPEG marker expected"));
        }
        // Fill bytes: any number of 0xff before the marker code.
        let mut code = 0xff;
        for _ in 0..64 {
            if !read_exact_or_eof(r, &mut b)? {
                return Ok(None);
            }
            code = b[0];
            if code != 0xff {
                break;
            }
        }
        match code {
            // Start of scan or end of image: EXIF must come before both.
            0xda | 0xd9 => return Ok(None),
            // Markers without a length.
            0x01 | 0xd0..=0xd7 | 0xff => continue,
            _ => {}
        }
        let mut len = [0; 2];
        if !read_exact_or_eof(r, &mut len)? {
            return Ok(None);
        }
        let len = u16::from_be_bytes(len);
        if len < 2 {
            return Err(ExifError::Malformed("JPEG segment length below 2"));
        }
        let body = u64::from(len - 2);
        if code == 0xe1 && body >= 6 {
            let mut id = [0; 6];
            if !read_exact_or_eof(r, &mut id)? {
                return Ok(None);
            }
            if &id == b"Exif\0\0" {
                return read_block(r, body - 6);
            }
            r.seek(SeekFrom::Current((body - 6) as i64))?;
        } else {
            r.seek(SeekFrom::Current(body as i64))?;
        }
    }
    Ok(None)
}

/// PNG: chunks up to the first IDAT (the PNG EXIF extension requires `eXIf` before
/// the image data; reading on would mean walking every IDAT chunk of a big image).
fn png_block<R: Read + Seek>(r: &mut R) -> Result<Option<Vec<u8>>, ExifError> {
    let mut sig = [0; 8];
    if !read_exact_or_eof(r, &mut sig)? || &sig != b"\x89PNG\r\n\x1a\n" {
        return Err(ExifError::Malformed("not a PNG"));
    }
    for _ in 0..MAX_SEGMENTS {
        let mut head = [0; 8];
        if !read_exact_or_eof(r, &mut head)? {
            return Ok(None);
        }
        let len = u64::from(u32::from_be_bytes([head[0], head[1], head[2], head[3]]));
        match &head[4..8] {
            b"eXIf" => return read_block(r, len),
            b"IDAT" | b"IEND" => return Ok(None),
            _ => {
                // Skip the data and the CRC.
                r.seek(SeekFrom::Current(len as i64 + 4))?;
            }
        }
    }
    Ok(None)
}

/// WebP: RIFF chunks (padded to even length); EXIF is the `EXIF` chunk, sometimes with
/// a JPEG-style `Exif\0\0` prefix.
fn webp_block<R: Read + Seek>(r: &mut R) -> Result<Option<Vec<u8>>, ExifError> {
    let mut head = [0; 12];
    if !read_exact_or_eof(r, &mut head)? || &head[0..4] != b"RIFF" || &head[8..12] != b"WEBP" {
        return Err(ExifError::Malformed("not a WebP"));
    }
    for _ in 0..MAX_SEGMENTS {
        let mut ch = [0; 8];
        if !read_exact_or_eof(r, &mut ch)? {
            return Ok(None);
        }
        let len = u64::from(u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]));
        if &ch[0..4] == b"EXIF" {
            let mut block = match read_block(r, len)? {
                Some(b) => b,
                None => return Ok(None),
            };
            if block.starts_with(b"Exif\0\0") {
                block.drain(..6);
            }
            return Ok(Some(block));
        }
        r.seek(SeekFrom::Current((len + (len & 1)) as i64))?;
    }
    Ok(None)
}

// TIFF tag numbers (EXIF 2.32, tables 4-5 and 8-9).
const TAG_MAKE: u16 = 0x010f;
const TAG_MODEL: u16 = 0x0110;
const TAG_ORIENTATION: u16 = 0x0112;
const TAG_EXIF_IFD: u16 = 0x8769;
const TAG_GPS_IFD: u16 = 0x8825;
const TAG_DATE_TIME_ORIGINAL: u16 = 0x9003;
const TAG_OFFSET_TIME_ORIGINAL: u16 = 0x9011;
const TAG_SUBSEC_TIME_ORIGINAL: u16 = 0x9291;
const GPS_LAT_REF: u16 = 1;
const GPS_LAT: u16 = 2;
const GPS_LON_REF: u16 = 3;
const GPS_LON: u16 = 4;
const GPS_ALT_REF: u16 = 5;
const GPS_ALT: u16 = 6;

// TIFF field types.
const T_BYTE: u16 = 1;
const T_ASCII: u16 = 2;
const T_SHORT: u16 = 3;
const T_LONG: u16 = 4;
const T_RATIONAL: u16 = 5;
const T_UNDEFINED: u16 = 7;

/// Longest string we keep (Make, Model, dates); longer values are cut.
const MAX_STRING: usize = 128;

/// A TIFF structure in memory with its byte order.
struct Tiff<'a> {
    data: &'a [u8],
    big_endian: bool,
}

/// One directory entry: tag, type, count and where its value is.
#[derive(Clone, Copy)]
struct Entry {
    tag: u16,
    typ: u16,
    count: u32,
    /// Offset of the value bytes in `data` (inline values point into the entry).
    at: usize,
}

impl<'a> Tiff<'a> {
    fn u16_at(&self, at: usize) -> Option<u16> {
        let b = self.data.get(at..at.checked_add(2)?)?;
        Some(if self.big_endian {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    }

    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.data.get(at..at.checked_add(4)?)?;
        let a = [b[0], b[1], b[2], b[3]];
        Some(if self.big_endian {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    /// The entries of the IFD at `offset` (bounded by the data: a count larger than
    /// what fits is cut to what fits).
    fn entries(&self, offset: usize) -> Result<Vec<Entry>, &'static str> {
        let count = self.u16_at(offset).ok_or("IFD offset out of range")? as usize;
        let first = offset + 2;
        let fits = self.data.len().saturating_sub(first) / 12;
        let mut out = Vec::with_capacity(count.min(fits).min(64));
        for i in 0..count.min(fits) {
            let e = first + i * 12;
            let (Some(tag), Some(typ), Some(cnt)) =
                (self.u16_at(e), self.u16_at(e + 2), self.u32_at(e + 4))
            else {
                break;
            };
            let unit: u64 = match typ {
                1 | 2 | 6 | 7 => 1,
                3 | 8 => 2,
                4 | 9 | 11 | 13 => 4,
                5 | 10 | 12 => 8,
                _ => continue,
            };
            let size = unit * u64::from(cnt);
            let at = if size <= 4 {
                e + 8
            } else {
                let Some(ofs) = self.u32_at(e + 8) else {
                    continue;
                };
                ofs as usize
            };
            // The whole value must lie inside the block.
            if (at as u64).saturating_add(size) > self.data.len() as u64 {
                continue;
            }
            out.push(Entry {
                tag,
                typ,
                count: cnt,
                at,
            });
        }
        Ok(out)
    }

    fn ascii(&self, e: &Entry) -> Option<String> {
        if e.typ != T_ASCII && e.typ != T_UNDEFINED && e.typ != T_BYTE {
            return None;
        }
        let raw = self.data.get(e.at..e.at + e.count as usize)?;
        let raw = &raw[..raw.len().min(MAX_STRING)];
        // Cut at the first NUL, then trim padding spaces cameras add.
        let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
        let s = String::from_utf8_lossy(raw);
        let s = s.trim();
        (!s.is_empty()).then(|| s.to_string())
    }

    fn short(&self, e: &Entry) -> Option<u16> {
        match e.typ {
            T_SHORT if e.count >= 1 => self.u16_at(e.at),
            T_LONG if e.count >= 1 => self.u32_at(e.at).and_then(|v| u16::try_from(v).ok()),
            T_BYTE if e.count >= 1 => self.data.get(e.at).map(|&b| u16::from(b)),
            _ => None,
        }
    }

    fn long(&self, e: &Entry) -> Option<u32> {
        match e.typ {
            T_LONG | 13 if e.count >= 1 => self.u32_at(e.at),
            T_SHORT if e.count >= 1 => self.u16_at(e.at).map(u32::from),
            _ => None,
        }
    }

    fn rational(&self, e: &Entry, i: usize) -> Option<f64> {
        if e.typ != T_RATIONAL || (e.count as usize) <= i {
            return None;
        }
        let at = e.at + i * 8;
        let (n, d) = (self.u32_at(at)?, self.u32_at(at + 4)?);
        (d != 0).then(|| f64::from(n) / f64::from(d))
    }

    fn rationals3(&self, e: &Entry) -> Option<[f64; 3]> {
        Some([
            self.rational(e, 0)?,
            self.rational(e, 1).unwrap_or(0.0),
            self.rational(e, 2).unwrap_or(0.0),
        ])
    }
}

/// Parse a TIFF-structured EXIF block (starting with `II*\0` or `MM\0*`).
pub fn parse(data: &[u8]) -> Result<ExifTags, ExifError> {
    let big_endian = match data.get(0..4) {
        Some(b"II*\0") => false,
        Some(b"MM\0*") => true,
        _ => return Err(ExifError::Malformed("no TIFF header")),
    };
    let t = Tiff { data, big_endian };
    let ifd0 = t.u32_at(4).ok_or(ExifError::Malformed("no IFD0 offset"))? as usize;
    let mut tags = ExifTags::default();
    let mut exif_ifd = None;
    let mut gps_ifd = None;
    for e in t.entries(ifd0).map_err(ExifError::Malformed)? {
        match e.tag {
            TAG_MAKE => tags.make = t.ascii(&e),
            TAG_MODEL => tags.model = t.ascii(&e),
            TAG_ORIENTATION => tags.orientation = t.short(&e).filter(|o| (1..=8).contains(o)),
            TAG_EXIF_IFD => exif_ifd = t.long(&e),
            TAG_GPS_IFD => gps_ifd = t.long(&e),
            _ => {}
        }
    }
    // Sub-IFDs are read once each; a pointer back to IFD0 or to each other just reads
    // that directory's entries again with a different tag meaning, which is harmless.
    if let Some(ofs) = exif_ifd {
        if let Ok(entries) = t.entries(ofs as usize) {
            for e in entries {
                match e.tag {
                    TAG_DATE_TIME_ORIGINAL => tags.date_time_original = t.ascii(&e),
                    TAG_OFFSET_TIME_ORIGINAL => tags.offset_time_original = t.ascii(&e),
                    TAG_SUBSEC_TIME_ORIGINAL => tags.subsec_time_original = t.ascii(&e),
                    _ => {}
                }
            }
        }
    }
    if let Some(ofs) = gps_ifd {
        if let Ok(entries) = t.entries(ofs as usize) {
            for e in entries {
                match e.tag {
                    GPS_LAT_REF => tags.gps_lat_ref = t.ascii(&e),
                    GPS_LAT => tags.gps_lat = t.rationals3(&e),
                    GPS_LON_REF => tags.gps_lon_ref = t.ascii(&e),
                    GPS_LON => tags.gps_lon = t.rationals3(&e),
                    GPS_ALT_REF => {
                        tags.gps_alt_ref = t.short(&e).and_then(|v| u8::try_from(v).ok())
                    }
                    GPS_ALT => tags.gps_alt = t.rational(&e, 0),
                    _ => {}
                }
            }
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a little-endian TIFF block: IFD0 with `ifd0` entries, then value data.
    /// Each entry is (tag, type, count, value bytes); values over 4 bytes go to the
    /// data area.
    fn tiff_le(ifd0: &[(u16, u16, u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = b"II*\0\x08\0\0\0".to_vec();
        let n = ifd0.len();
        let data_start = 8 + 2 + n * 12 + 4;
        let mut data = Vec::new();
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for (tag, typ, count, val) in ifd0 {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&typ.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            if val.len() <= 4 {
                let mut v = val.clone();
                v.resize(4, 0);
                out.extend_from_slice(&v);
            } else {
                out.extend_from_slice(&((data_start + data.len()) as u32).to_le_bytes());
                data.extend_from_slice(val);
            }
        }
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn reads_ifd0_tags() {
        let block = tiff_le(&[
            (TAG_MAKE, T_ASCII, 8, b"  Canon\0".to_vec()),
            (TAG_MODEL, T_ASCII, 3, b"X1\0".to_vec()),
            (TAG_ORIENTATION, T_SHORT, 1, 6u16.to_le_bytes().to_vec()),
        ]);
        let t = parse(&block).unwrap();
        assert_eq!(t.make.as_deref(), Some("Canon"));
        assert_eq!(t.model.as_deref(), Some("X1"));
        assert_eq!(t.orientation, Some(6));
    }

    #[test]
    fn garbage_never_panics() {
        let base = tiff_le(&[
            (TAG_MAKE, T_ASCII, 8, b"  Canon\0".to_vec()),
            (TAG_EXIF_IFD, T_LONG, 1, 8u32.to_le_bytes().to_vec()),
            (
                TAG_GPS_IFD,
                T_LONG,
                1,
                0xffff_fff0u32.to_le_bytes().to_vec(),
            ),
        ]);
        // Every single-byte corruption and every truncation.
        for i in 0..base.len() {
            for v in [0u8, 0xff, 0x80, 1] {
                let mut b = base.clone();
                b[i] = v;
                let _ = parse(&b);
            }
            let _ = parse(&base[..i]);
        }
    }

    #[test]
    fn self_referencing_pointers_stay_linear() {
        // IFD0 whose entries are all Exif-IFD pointers to offsets inside itself: a
        // quadratic blow-up for a parser that follows every pointer; we follow one.
        let n = 5000usize;
        let mut b = b"II*\0\x08\0\0\0".to_vec();
        b.extend_from_slice(&(n as u16).to_le_bytes());
        for i in 0..n {
            b.extend_from_slice(&TAG_EXIF_IFD.to_le_bytes());
            b.extend_from_slice(&T_LONG.to_le_bytes());
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&((10 + i * 12) as u32).to_le_bytes());
        }
        b.extend_from_slice(&[0; 4]);
        let t = std::time::Instant::now();
        let _ = parse(&b);
        assert!(t.elapsed().as_secs() < 2);
    }
}
