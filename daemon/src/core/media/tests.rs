//! Tests over the committed media set in `tests/media/` (see its README for how each
//! file was made).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

fn media(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/media")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(media(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn thumb(name: &str, size: u32, format: ThumbFormat) -> Result<Thumbnail, ThumbError> {
    thumbnail(
        Source::Path(&media(name)),
        size,
        format,
        &DecodeLimits::default(),
    )
}

/// Decode a thumbnail we produced, checking its format.
fn decode(t: &Thumbnail) -> image::DynamicImage {
    let fmt = match t.format {
        ThumbFormat::Png => image::ImageFormat::Png,
        ThumbFormat::Jpeg => image::ImageFormat::Jpeg,
        ThumbFormat::WebP => image::ImageFormat::WebP,
    };
    assert_eq!(image::guess_format(&t.data).unwrap(), fmt);
    let img = image::load_from_memory_with_format(&t.data, fmt).unwrap();
    assert_eq!((img.width(), img.height()), (t.width, t.height));
    img
}

/// Colour of the pixel at a fraction of the width and height.
fn rgb_at(img: &image::DynamicImage, fx: f32, fy: f32) -> [u8; 3] {
    let x = ((img.width() as f32 * fx) as u32).min(img.width() - 1);
    let y = ((img.height() as f32 * fy) as u32).min(img.height() - 1);
    let p = img.to_rgb8().get_pixel(x, y).0;
    [p[0], p[1], p[2]]
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) < 40)
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

#[test]
fn sniffs_the_media_set() {
    let cases = [
        ("photo.jpg", "image/jpeg"),
        ("alpha.png", "image/png"),
        ("still.gif", "image/gif"),
        ("animated-3000.gif", "image/gif"),
        ("small.webp", "image/webp"),
        ("small.heic", "image/heic"),
        ("quadrants.bmp", "image/bmp"),
        ("quadrants.tif", "image/tiff"),
        ("clip.mp4", "video/mp4"),
        ("hello.txt", "text/plain; charset=utf-8"),
        ("bomb-100000x100000.png", "image/png"),
        ("truncated.jpg", "image/jpeg"),
        ("exif-huge.jpg", "image/jpeg"),
    ];
    for (name, want) in cases {
        let data = read(name);
        let head = &data[..data.len().min(SNIFF_LEN)];
        assert_eq!(detect(head, name, None), want, "{name}");
        // Without a name the magic alone decides (text is sniffed as text).
        assert_eq!(detect(head, "", None), want, "{name} without a name");
        // A lying claim and a lying extension change nothing for binary types.
        if want != "text/plain; charset=utf-8" {
            assert_eq!(detect(head, "x.pdf", Some("audio/ogg")), want, "{name}");
        }
    }
}

#[test]
fn probes_the_photo() {
    let p = probe_path(&media("photo.jpg"));
    assert_eq!(p.error, None);
    assert_eq!(p.mime, Some("image/jpeg"));
    assert_eq!((p.width, p.height), (Some(64), Some(48)));
    assert_eq!(p.display_size(), Some((48, 64)));
    assert_eq!(p.taken_at.as_deref(), Some("2024:07:14 18:30:05"));
    // 2024-07-14 18:30:05.25 at -03:00 is 21:30:05.25 UTC.
    assert_eq!(p.taken_at_ms, Some(1_720_992_605_250));
    assert_eq!(p.camera_make.as_deref(), Some("Canon"));
    assert_eq!(p.camera_model.as_deref(), Some("Canon EOS R6"));
    assert_eq!(p.orientation, Some(6));
    let g = p.gps.expect("gps");
    assert!((g.lat - -22.9519).abs() < 1e-4, "{g:?}");
    assert!((g.lon - -43.2105).abs() < 1e-4, "{g:?}");
    assert_eq!(g.alt, Some(700.5));
    // Same answer from memory.
    assert_eq!(probe_bytes(&read("photo.jpg")), p);
}

#[test]
fn probes_other_images_and_non_images() {
    for (name, w, h) in [
        ("alpha.png", 40, 30),
        ("still.gif", 16, 12),
        ("animated-3000.gif", 16, 12),
        ("small.webp", 64, 48),
        // A grid image of one 64x64 tile cropped to 64x48: imagesize reports the largest
        // `ispe` box, here the tile's (see probe.rs); for phone photos (grids of 512x512
        // tiles) the largest is the picture's.
        ("small.heic", 64, 64),
        ("quadrants.bmp", 64, 48),
        ("quadrants.tif", 64, 48),
        ("truncated.jpg", 64, 48),
        // Probing reads the header only, so the bomb's declared size is reported.
        ("bomb-100000x100000.png", 100_000, 100_000),
    ] {
        let p = probe_path(&media(name));
        assert_eq!((p.width, p.height), (Some(w), Some(h)), "{name}: {p:?}");
        // The truncated photo keeps its EXIF, which comes before the scan.
        let has_exif = name == "truncated.jpg";
        assert_eq!(p.taken_at.is_some(), has_exif, "{name}");
    }
    let p = probe_path(&media("clip.mp4"));
    assert_eq!(p.mime, Some("video/mp4"));
    assert_eq!((p.width, p.error), (None, None));
    let p = probe_path(&media("hello.txt"));
    assert_eq!(p, Probe::default());
    let p = probe_path(&media("does-not-exist.jpg"));
    assert!(p.error.unwrap().contains("cannot open"));
}

#[test]
fn hostile_exif_is_bounded() {
    // Two 64 KiB APP1 blocks of self-referencing IFD pointers before the real EXIF.
    let t = Instant::now();
    let p = probe_path(&media("exif-huge.jpg"));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!((p.width, p.height), (Some(64), Some(48)));
    // The first EXIF block counts; it has none of our tags.
    assert_eq!(p.camera_make, None);

    // A PNG eXIf chunk declaring 2 GiB is refused, not allocated.
    let p = probe_path(&media("exif-length-2g.png"));
    assert!(
        p.error.as_deref().unwrap_or("").contains("larger than"),
        "{p:?}"
    );
}

#[test]
fn thumbnails_the_photo_upright_in_every_format() {
    for format in [ThumbFormat::Png, ThumbFormat::Jpeg, ThumbFormat::WebP] {
        let t = thumb("photo.jpg", 32, format).unwrap();
        // Stored 64x48, orientation 6 (rotate 90° clockwise): shown 24x32.
        assert_eq!((t.width, t.height), (24, 32), "{format:?}");
        let img = decode(&t);
        assert!(close(rgb_at(&img, 0.2, 0.2), BLUE), "{format:?} top-left");
        assert!(close(rgb_at(&img, 0.8, 0.2), RED), "{format:?} top-right");
        assert!(
            close(rgb_at(&img, 0.2, 0.8), WHITE),
            "{format:?} bottom-left"
        );
        assert!(
            close(rgb_at(&img, 0.8, 0.8), GREEN),
            "{format:?} bottom-right"
        );
    }
}

#[test]
fn thumbnails_other_formats_without_upscaling() {
    for name in ["alpha.png", "still.gif", "small.webp", "quadrants.bmp"] {
        let p = probe_path(&media(name));
        let t = thumb(name, 256, ThumbFormat::Png).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (Some(t.width), Some(t.height)),
            (p.width, p.height),
            "{name}"
        );
        let img = decode(&t);
        assert!(close(rgb_at(&img, 0.1, 0.1), RED), "{name} top-left");
        assert!(close(rgb_at(&img, 0.1, 0.9), BLUE), "{name} bottom-left");
        // And shrunk.
        let t = thumb(name, 8, ThumbFormat::Jpeg).unwrap();
        assert_eq!(t.width.max(t.height), 8, "{name}");
    }
}

#[test]
fn alpha_survives_png_and_webp_and_is_flattened_for_jpeg() {
    let t = thumb("alpha.png", 20, ThumbFormat::Png).unwrap();
    assert_eq!((t.width, t.height), (20, 15));
    let img = decode(&t);
    assert!(img.color().has_alpha());
    let rgba = img.to_rgba8();
    assert!(rgba.get_pixel(0, 0).0[3] > 200);
    assert!(rgba.get_pixel(19, 0).0[3] < 50);
    let img = decode(&thumb("alpha.png", 20, ThumbFormat::WebP).unwrap());
    assert!(img.color().has_alpha());
    // JPEG: the transparent right edge turns white, not black.
    let img = decode(&thumb("alpha.png", 20, ThumbFormat::Jpeg).unwrap());
    assert!(close(rgb_at(&img, 0.99, 0.9), WHITE));
}

#[test]
fn animated_gif_costs_one_frame() {
    let t = Instant::now();
    let th = thumb("animated-3000.gif", 256, ThumbFormat::Png).unwrap();
    assert_eq!((th.width, th.height), (16, 12));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn refuses_bombs_and_broken_files_quickly() {
    let t = Instant::now();
    let e = thumb("bomb-100000x100000.png", 256, ThumbFormat::Png).unwrap_err();
    assert!(
        matches!(
            e,
            ThumbError::TooManyPixels {
                width: 100_000,
                height: 100_000
            }
        ),
        "{e:?}"
    );
    assert!(e.is_refused() && !e.is_unsupported());
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );

    let e = thumb("truncated.jpg", 256, ThumbFormat::Png).unwrap_err();
    assert!(matches!(e, ThumbError::Truncated), "{e:?}");
    assert!(e.is_refused());
    assert_eq!(e.to_string(), "image file is truncated");

    // The huge EXIF blocks are skipped over, the image itself is fine.
    let t = Instant::now();
    let th = thumb("exif-huge.jpg", 256, ThumbFormat::Png).unwrap();
    assert_eq!(th.width.max(th.height), 64);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn types_without_thumbnails_say_so() {
    for (name, mime) in [
        ("clip.mp4", "video/mp4"),
        ("small.heic", "image/heic"),
        // Recognised and probed (dimensions), never decoded: no TIFF decoder is built.
        ("quadrants.tif", "image/tiff"),
        ("hello.txt", "application/octet-stream"),
    ] {
        let e = thumb(name, 256, ThumbFormat::Png).unwrap_err();
        assert!(e.is_unsupported() && !e.is_refused(), "{name}: {e:?}");
        assert_eq!(
            e.to_string(),
            format!("no thumbnail for this type ({mime})")
        );
    }
    // HEIC is recognised but not decodable.
    let heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x00\x08free";
    let e = thumbnail(
        Source::Bytes(heic),
        64,
        ThumbFormat::Png,
        &DecodeLimits::default(),
    )
    .unwrap_err();
    assert!(e.is_unsupported(), "{e:?}");
}

#[test]
fn limits_apply() {
    let photo = read("photo.jpg");
    let run = |l: DecodeLimits| thumbnail(Source::Bytes(&photo), 32, ThumbFormat::Png, &l);
    let e = run(DecodeLimits {
        max_input_bytes: 100,
        ..DecodeLimits::default()
    })
    .unwrap_err();
    assert!(matches!(e, ThumbError::InputTooLarge { bytes } if bytes == photo.len() as u64));
    let e = run(DecodeLimits {
        max_pixels: 64 * 48 - 1,
        ..DecodeLimits::default()
    })
    .unwrap_err();
    assert!(matches!(e, ThumbError::TooManyPixels { .. }), "{e:?}");
    let e = run(DecodeLimits {
        max_alloc_bytes: 100,
        ..DecodeLimits::default()
    })
    .unwrap_err();
    assert!(matches!(e, ThumbError::TooMuchMemory), "{e:?}");
    let e = run(DecodeLimits {
        deadline: Some(Instant::now()),
        ..DecodeLimits::default()
    })
    .unwrap_err();
    assert!(matches!(e, ThumbError::DeadlineExceeded), "{e:?}");
    // The PNG path honours the memory limit too.
    let png = read("alpha.png");
    let e = thumbnail(
        Source::Bytes(&png),
        32,
        ThumbFormat::Png,
        &DecodeLimits {
            max_alloc_bytes: 100,
            ..DecodeLimits::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, ThumbError::TooMuchMemory), "{e:?}");
}

/// Every prefix and many single-byte corruptions of every image in the set: never a
/// panic, never a hang; errors are fine.
#[test]
fn damaged_inputs_never_panic() {
    let limits = DecodeLimits::with_timeout(Duration::from_secs(60));
    for name in [
        "photo.jpg",
        "alpha.png",
        "still.gif",
        "small.webp",
        "quadrants.bmp",
        "quadrants.tif",
    ] {
        let data = read(name);
        let step = (data.len() / 97).max(1);
        let mut variants: Vec<Vec<u8>> = (0..data.len())
            .step_by(step)
            .map(|n| data[..n].to_vec())
            .collect();
        for i in (0..data.len()).step_by(step) {
            for v in [0x00, 0xff, 0x7f] {
                let mut d = data.clone();
                d[i] = v;
                variants.push(d);
            }
        }
        for v in &variants {
            let _ = probe_bytes(v);
            // Damage is the file's fault: refused, or not recognised at all.
            if let Err(e) = thumbnail(Source::Bytes(v), 16, ThumbFormat::Png, &limits) {
                assert!(e.is_refused() || e.is_unsupported(), "{name}: {e:?}");
            }
        }
    }
}
