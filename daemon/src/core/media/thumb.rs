//! Thumbnails: decode an image, shrink it so its longest side is at most `size`, turn it
//! upright per its EXIF orientation, and encode it as PNG, JPEG or WebP.
//!
//! Decodable inputs are the types [`can_thumbnail`](super::can_thumbnail) accepts,
//! decided by magic bytes only (a `.jpg` that is really a PDF is not handed to the JPEG
//! decoder). Everything else is [`ThumbError::Unsupported`].
//!
//! Pipeline and why:
//! 1. The input size is checked against [`DecodeLimits::max_input_bytes`] before any
//!    read (`image`'s JPEG decoder reads the whole file into memory).
//! 2. Width and height come from the header, and are checked against
//!    [`DecodeLimits::max_pixels`] before any pixel buffer exists: a PNG declaring
//!    100,000 × 100,000 in a few KB is refused here in microseconds.
//! 3. JPEG with 8-bit grey or YCbCr/RGB data is decoded by `jpeg-decoder` with DCT
//!    scaling (1/2, 1/4 or 1/8, the smallest that still covers the target): the
//!    decoder then never builds the full-size image, which for a 12-MP photo to 256 px
//!    is most of the time and 98% of the memory. Other JPEGs (CMYK, 12-bit) and the
//!    other formats go through `image` with its allocation limit set to
//!    [`DecodeLimits::max_alloc_bytes`], and the expected buffer size is checked
//!    against it before decoding starts.
//! 4. Animated GIF/WebP: only the first frame is decoded; the decoder stops there, so
//!    a GIF of thousands of frames costs one frame.
//! 5. The shrink is an area average (`image`'s `thumbnail`), which is fast and does not
//!    alias, then the orientation is applied to the small image.
//! 6. Output: PNG (default compression), JPEG (quality 82, transparency flattened on
//!    white), or WebP *lossless* (the only WebP encoder `image` has; fine for the sizes
//!    thumbnails have, about the size of the PNG).
//!
//! The deadline in [`DecodeLimits`] is checked between steps; a single step is bounded
//! by the pixel and memory limits, not interrupted.
//!
//! Decoders are third-party code fed hostile bytes: each call is wrapped in
//! `catch_unwind`, so a decoder panic becomes [`ThumbError::Corrupt`] (the panic hook
//! still logs it). Allocation failure cannot happen inside the limits; our own buffers
//! are sized from checked dimensions.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageDecoder, ImageFormat};

use super::exif::{self, Container};
use super::sniff;

/// Largest thumbnail side we produce; bigger requests are an API misuse.
pub const MAX_THUMB_SIZE: u32 = 4096;

/// Where the image comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Path(&'a Path),
    Bytes(&'a [u8]),
}

impl<'a> From<&'a Path> for Source<'a> {
    fn from(p: &'a Path) -> Self {
        Source::Path(p)
    }
}

impl<'a> From<&'a [u8]> for Source<'a> {
    fn from(b: &'a [u8]) -> Self {
        Source::Bytes(b)
    }
}

/// Output encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThumbFormat {
    Png,
    Jpeg,
    /// Lossless WebP.
    WebP,
}

impl ThumbFormat {
    pub fn mime(self) -> &'static str {
        match self {
            ThumbFormat::Png => "image/png",
            ThumbFormat::Jpeg => "image/jpeg",
            ThumbFormat::WebP => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ThumbFormat::Png => "png",
            ThumbFormat::Jpeg => "jpg",
            ThumbFormat::WebP => "webp",
        }
    }
}

/// Limits for one thumbnail. The defaults suit photos from current phones and cameras
/// (up to 200 MP) on a server with a few GB of memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width × height accepted, from the header, before decoding. Stops
    /// decompression bombs (huge declared dimensions in a tiny file). Default 200 M:
    /// the largest phone sensors are 200 MP.
    pub max_pixels: u64,
    /// Largest decoded buffer (and `image`'s allocation limit). A 200-MP JPEG decoded
    /// at 1/8 needs 9 MB; an RGBA PNG can be up to 128 MP within the default of
    /// 512 MiB.
    pub max_alloc_bytes: u64,
    /// Largest input file. Default 256 MiB.
    pub max_input_bytes: u64,
    /// Give up (with [`ThumbError::DeadlineExceeded`]) when this instant has passed at
    /// the next step boundary. Default none.
    pub deadline: Option<Instant>,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 200_000_000,
            max_alloc_bytes: 512 * 1024 * 1024,
            max_input_bytes: 256 * 1024 * 1024,
            deadline: None,
        }
    }
}

impl DecodeLimits {
    /// The defaults with a deadline `timeout` from now.
    pub fn with_timeout(timeout: Duration) -> Self {
        DecodeLimits {
            deadline: Some(Instant::now() + timeout),
            ..DecodeLimits::default()
        }
    }

    fn check_deadline(&self) -> Result<(), ThumbError> {
        match self.deadline {
            Some(d) if Instant::now() >= d => Err(ThumbError::DeadlineExceeded),
            _ => Ok(()),
        }
    }
}

/// A finished thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// The encoded image.
    pub data: Vec<u8>,
    /// Its dimensions (after orientation).
    pub width: u32,
    pub height: u32,
    pub format: ThumbFormat,
}

/// Why there is no thumbnail. `Display` is a message fit for users.
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// The type has no thumbnail (video, audio, PDF, HEIC, SVG, unknown): not an error
    /// of the file; the caller shows an icon.
    #[error("no thumbnail for this type ({mime})")]
    Unsupported { mime: String },
    /// Declared dimensions over [`DecodeLimits::max_pixels`].
    #[error("image is too large to preview ({width} x {height} pixels)")]
    TooManyPixels { width: u32, height: u32 },
    /// The decode would need more than [`DecodeLimits::max_alloc_bytes`].
    #[error("image needs too much memory to preview")]
    TooMuchMemory,
    /// The file is larger than [`DecodeLimits::max_input_bytes`].
    #[error("file is too large to preview ({bytes} bytes)")]
    InputTooLarge { bytes: u64 },
    /// The file ends before the image does.
    #[error("image file is truncated")]
    Truncated,
    /// The image data is damaged or uses an encoding we do not decode.
    #[error("image file is damaged: {0}")]
    Corrupt(String),
    #[error("preview took too long")]
    DeadlineExceeded,
    /// Reading the source failed (a server-side problem, not the file's).
    #[error("cannot read the image: {0}")]
    Io(String),
    /// `size` outside `1..=MAX_THUMB_SIZE`: a bug in the caller.
    #[error("thumbnail size must be between 1 and {MAX_THUMB_SIZE}")]
    InvalidSize,
    /// Encoding the result failed (should not happen; a bug).
    #[error("cannot encode the preview: {0}")]
    Encode(String),
}

impl ThumbError {
    /// The type simply has no thumbnail.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, ThumbError::Unsupported { .. })
    }

    /// The image was refused for what it is: a bomb, too large, truncated, damaged, or
    /// too slow. Caching this verdict is right; retrying is not.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            ThumbError::TooManyPixels { .. }
                | ThumbError::TooMuchMemory
                | ThumbError::InputTooLarge { .. }
                | ThumbError::Truncated
                | ThumbError::Corrupt(_)
                | ThumbError::DeadlineExceeded
        )
    }
}

impl From<std::io::Error> for ThumbError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::UnexpectedEof => ThumbError::Truncated,
            // Some decoders report bad data as I/O errors of this kind.
            ErrorKind::InvalidData | ErrorKind::InvalidInput => ThumbError::Corrupt(e.to_string()),
            _ => ThumbError::Io(e.to_string()),
        }
    }
}

/// Make a thumbnail of at most `size` × `size` (aspect kept, never upscaled) of the
/// image at `src`. See the module docs for the steps and limits.
pub fn thumbnail(
    src: Source<'_>,
    size: u32,
    format: ThumbFormat,
    limits: &DecodeLimits,
) -> Result<Thumbnail, ThumbError> {
    if size == 0 || size > MAX_THUMB_SIZE {
        return Err(ThumbError::InvalidSize);
    }
    match src {
        Source::Path(p) => {
            let f = File::open(p)?;
            let len = f.metadata()?.len();
            check_input_len(len, limits)?;
            run(BufReader::new(f), size, format, limits)
        }
        Source::Bytes(b) => {
            check_input_len(b.len() as u64, limits)?;
            run(Cursor::new(b), size, format, limits)
        }
    }
}

fn check_input_len(len: u64, limits: &DecodeLimits) -> Result<(), ThumbError> {
    if len > limits.max_input_bytes {
        return Err(ThumbError::InputTooLarge { bytes: len });
    }
    Ok(())
}

fn run<R: BufRead + Seek>(
    mut r: R,
    size: u32,
    format: ThumbFormat,
    limits: &DecodeLimits,
) -> Result<Thumbnail, ThumbError> {
    let mut head = Vec::with_capacity(sniff::SNIFF_LEN);
    (&mut r)
        .take(sniff::SNIFF_LEN as u64)
        .read_to_end(&mut head)?;
    let mime = sniff::magic(&head).unwrap_or(sniff::OCTET_STREAM);
    if !sniff::can_thumbnail(mime) {
        return Err(ThumbError::Unsupported {
            mime: mime.to_string(),
        });
    }
    // Orientation from EXIF; a broken EXIF block only costs the rotation.
    let orientation = Container::from_mime(mime)
        .and_then(|c| exif::read(&mut r, c).ok().flatten())
        .and_then(|t| t.orientation)
        .and_then(|o| image::metadata::Orientation::from_exif(o as u8))
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    r.seek(SeekFrom::Start(0))?;
    limits.check_deadline()?;

    let img = guarded(|| {
        if mime == "image/jpeg" {
            if let Some(img) = decode_jpeg_scaled(&mut r, size, limits)? {
                return Ok(img);
            }
            r.seek(SeekFrom::Start(0))?;
        }
        decode_with_image(&mut r, mime, limits)
    })?;
    limits.check_deadline()?;

    let (w, h) = (img.width(), img.height());
    let (tw, th) = fit(w, h, size);
    let mut small = if (tw, th) == (w, h) {
        img
    } else {
        guarded(|| Ok(img.thumbnail_exact(tw, th)))?
    };
    small.apply_orientation(orientation);
    limits.check_deadline()?;

    let data = guarded(|| encode(&small, format))?;
    Ok(Thumbnail {
        data,
        width: small.width(),
        height: small.height(),
        format,
    })
}

/// Run decoder code, turning a panic into [`ThumbError::Corrupt`].
fn guarded<T>(f: impl FnOnce() -> Result<T, ThumbError>) -> Result<T, ThumbError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(ThumbError::Corrupt("decoder failed".into())))
}

/// Dimensions within `size` × `size` keeping the aspect ratio, at least 1 × 1, never
/// larger than the original.
fn fit(w: u32, h: u32, size: u32) -> (u32, u32) {
    if w <= size && h <= size {
        return (w, h);
    }
    let (w64, h64, s) = (u64::from(w), u64::from(h), u64::from(size));
    if w >= h {
        (size, ((h64 * s + w64 / 2) / w64).max(1) as u32)
    } else {
        (((w64 * s + h64 / 2) / h64).max(1) as u32, size)
    }
}

fn check_pixels(w: u32, h: u32, limits: &DecodeLimits) -> Result<(), ThumbError> {
    if w == 0 || h == 0 {
        return Err(ThumbError::Corrupt("image has no pixels".into()));
    }
    if u64::from(w) * u64::from(h) > limits.max_pixels {
        return Err(ThumbError::TooManyPixels {
            width: w,
            height: h,
        });
    }
    Ok(())
}

/// JPEG through `jpeg-decoder` with DCT scaling. `Ok(None)` when this JPEG is one the
/// fast path does not handle (CMYK, 12-bit); the caller then uses `image`.
fn decode_jpeg_scaled<R: BufRead>(
    r: &mut R,
    size: u32,
    limits: &DecodeLimits,
) -> Result<Option<DynamicImage>, ThumbError> {
    use jpeg_decoder::PixelFormat;
    let mut dec = jpeg_decoder::Decoder::new(r);
    dec.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX));
    dec.read_info().map_err(jpeg_error)?;
    let Some(info) = dec.info() else {
        return Err(ThumbError::Corrupt("no JPEG frame header".into()));
    };
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    check_pixels(w, h, limits)?;
    let channels: u64 = match info.pixel_format {
        PixelFormat::L8 => 1,
        PixelFormat::RGB24 => 3,
        PixelFormat::L16 | PixelFormat::CMYK32 => return Ok(None),
    };
    let (tw, th) = fit(w, h, size);
    // tw, th <= MAX_THUMB_SIZE fit u16.
    let (sw, sh) = dec.scale(tw as u16, th as u16).map_err(jpeg_error)?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    // The output, plus for progressive JPEGs the full-resolution DCT coefficients the
    // decoder keeps between scans (2 bytes per sample, up to 3 components).
    let mut need = u64::from(sw) * u64::from(sh) * channels;
    if info.coding_process == jpeg_decoder::CodingProcess::DctProgressive {
        need += u64::from(w) * u64::from(h) * 2 * channels;
    }
    if need > limits.max_alloc_bytes {
        return Err(ThumbError::TooMuchMemory);
    }
    let pixels = dec.decode().map_err(jpeg_error)?;
    let img = match info.pixel_format {
        PixelFormat::L8 => image::GrayImage::from_raw(sw, sh, pixels).map(DynamicImage::ImageLuma8),
        _ => image::RgbImage::from_raw(sw, sh, pixels).map(DynamicImage::ImageRgb8),
    };
    img.map(Some)
        .ok_or_else(|| ThumbError::Corrupt("decoded JPEG has the wrong size".into()))
}

fn jpeg_error(e: jpeg_decoder::Error) -> ThumbError {
    match e {
        jpeg_decoder::Error::Io(io) => io.into(),
        jpeg_decoder::Error::Format(m) if m.contains("exceeds maximum allowed size") => {
            ThumbError::TooMuchMemory
        }
        jpeg_decoder::Error::Format(m) => ThumbError::Corrupt(m),
        jpeg_decoder::Error::Unsupported(u) => {
            ThumbError::Corrupt(format!("unsupported JPEG: {u:?}"))
        }
        jpeg_decoder::Error::Internal(e) => ThumbError::Corrupt(e.to_string()),
    }
}

fn decode_with_image<R: BufRead + Seek>(
    r: &mut R,
    mime: &str,
    limits: &DecodeLimits,
) -> Result<DynamicImage, ThumbError> {
    let format = match mime {
        "image/jpeg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        "image/bmp" => ImageFormat::Bmp,
        other => {
            return Err(ThumbError::Unsupported {
                mime: other.to_string(),
            })
        }
    };
    let mut reader = image::ImageReader::with_format(r, format);
    // `image`'s own memory cap; its width/height caps stay unset because our pixel
    // check right after reading the header is more precise (the product, not each side).
    let mut lim = image::Limits::default();
    lim.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(lim);
    let dec = reader.into_decoder().map_err(image_error)?;
    let (w, h) = dec.dimensions();
    check_pixels(w, h, limits)?;
    if dec.total_bytes() > limits.max_alloc_bytes {
        return Err(ThumbError::TooMuchMemory);
    }
    // `from_decoder` reads one image: for GIF and animated WebP, the first frame.
    DynamicImage::from_decoder(dec).map_err(image_error)
}

fn image_error(e: image::ImageError) -> ThumbError {
    use image::error::ImageError;
    match e {
        ImageError::Limits(_) => ThumbError::TooMuchMemory,
        ImageError::IoError(io) => io.into(),
        ImageError::Unsupported(u) => ThumbError::Corrupt(u.to_string()),
        ImageError::Decoding(d) => {
            let msg = d.to_string();
            let lower = msg.to_ascii_lowercase();
            if lower.contains("eof") || lower.contains("end of file") || lower.contains("truncat") {
                ThumbError::Truncated
            } else {
                ThumbError::Corrupt(msg)
            }
        }
        other => ThumbError::Corrupt(other.to_string()),
    }
}

fn encode(img: &DynamicImage, format: ThumbFormat) -> Result<Vec<u8>, ThumbError> {
    use image::codecs::{jpeg::JpegEncoder, png, webp::WebPEncoder};
    use image::ImageEncoder;
    let mut out = Vec::new();
    let alpha = img.color().has_alpha();
    let grey = !img.color().has_color();
    let res = match format {
        ThumbFormat::Png | ThumbFormat::WebP => {
            // 8 bits per channel, in the smallest layout that keeps the content.
            let (buf, ct) = match (grey, alpha) {
                (true, false) => (img.to_luma8().into_raw(), image::ExtendedColorType::L8),
                (true, true) => (
                    img.to_luma_alpha8().into_raw(),
                    image::ExtendedColorType::La8,
                ),
                (false, false) => (img.to_rgb8().into_raw(), image::ExtendedColorType::Rgb8),
                (false, true) => (img.to_rgba8().into_raw(), image::ExtendedColorType::Rgba8),
            };
            if format == ThumbFormat::Png {
                png::PngEncoder::new_with_quality(
                    &mut out,
                    png::CompressionType::Default,
                    png::FilterType::Adaptive,
                )
                .write_image(&buf, img.width(), img.height(), ct)
            } else {
                WebPEncoder::new_lossless(&mut out).write_image(&buf, img.width(), img.height(), ct)
            }
        }
        ThumbFormat::Jpeg => {
            let enc = JpegEncoder::new_with_quality(&mut out, 82);
            if grey && !alpha {
                let buf = img.to_luma8();
                enc.write_image(
                    &buf,
                    img.width(),
                    img.height(),
                    image::ExtendedColorType::L8,
                )
            } else {
                let buf = flatten_on_white(img);
                enc.write_image(
                    &buf,
                    img.width(),
                    img.height(),
                    image::ExtendedColorType::Rgb8,
                )
            }
        }
    };
    res.map_err(|e| ThumbError::Encode(e.to_string()))?;
    Ok(out)
}

/// RGB with transparency composited over white (JPEG has no alpha; black behind
/// transparent logos looks broken).
fn flatten_on_white(img: &DynamicImage) -> Vec<u8> {
    if !img.color().has_alpha() {
        return img.to_rgb8().into_raw();
    }
    let rgba = img.to_rgba8();
    let mut out = Vec::with_capacity(rgba.as_raw().len() / 4 * 3);
    for px in rgba.as_raw().chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            out.push(((u32::from(c) * a + 255 * (255 - a) + 127) / 255) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_aspect_and_never_upscales() {
        assert_eq!(fit(4000, 3000, 256), (256, 192));
        assert_eq!(fit(3000, 4000, 256), (192, 256));
        assert_eq!(fit(100, 50, 256), (100, 50));
        assert_eq!(fit(100_000, 1, 256), (256, 1));
        assert_eq!(fit(1, 100_000, 256), (1, 256));
    }

    #[test]
    fn size_is_validated() {
        let l = DecodeLimits::default();
        for s in [0, MAX_THUMB_SIZE + 1] {
            let e = thumbnail(Source::Bytes(b"x"), s, ThumbFormat::Png, &l).unwrap_err();
            assert!(matches!(e, ThumbError::InvalidSize));
        }
    }

    #[test]
    fn white_flattening() {
        let mut img = image::RgbaImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        img.put_pixel(1, 0, image::Rgba([10, 20, 30, 255]));
        let out = flatten_on_white(&DynamicImage::ImageRgba8(img));
        assert_eq!(out, vec![255, 255, 255, 10, 20, 30]);
    }
}
