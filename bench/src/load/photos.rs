//! Photo-like JPEG fixtures for the thumbnail benchmarks: `n` files of `width` x
//! `height` (12 MP by default), each different (no deduplication), made of smooth
//! colour gradients, a few hard-edged discs and low-amplitude noise, so that their
//! JPEG encoding has the size and the coefficient density of camera photos (a flat
//! image would decode unrealistically fast). Quality 90, baseline, 4:2:0.
//!
//! Files are written once per (n, width, height) under the given directory and reused
//! by later runs (generating 12-MP JPEGs takes about half a second each).

use std::path::{Path, PathBuf};

use super::HarnessError;

/// Writes (or finds) the fixture photos; returns their paths in order.
pub fn write_photos(
    dir: &Path,
    n: usize,
    width: u32,
    height: u32,
) -> Result<Vec<PathBuf>, HarnessError> {
    let dir = dir.join(format!("photos-{width}x{height}"));
    std::fs::create_dir_all(&dir)
        .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
    let paths: Vec<PathBuf> = (0..n)
        .map(|i| dir.join(format!("photo-{i:03}.jpg")))
        .collect();
    let missing: Vec<(usize, PathBuf)> = paths
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_file())
        .map(|(i, p)| (i, p.clone()))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "bench: writing {} photo-like {width}x{height} JPEGs into {}",
            missing.len(),
            dir.display()
        );
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = missing.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| -> Result<(), HarnessError> {
        let handles: Vec<_> = missing
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> Result<(), HarnessError> {
                    for (i, path) in part {
                        write_one(path, *i as u64, width, height)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| HarnessError::msg("a fixture thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(paths)
}

fn write_one(path: &Path, seed: u64, width: u32, height: u32) -> Result<(), HarnessError> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base = [next() % 200, next() % 200, next() % 200];
    let discs: Vec<(f32, f32, f32, [u8; 3])> = (0..12)
        .map(|_| {
            (
                (next() % u64::from(width)) as f32,
                (next() % u64::from(height)) as f32,
                (50 + next() % 600) as f32,
                [next() as u8, (next() >> 8) as u8, (next() >> 16) as u8],
            )
        })
        .collect();
    let (w, h) = (width as f32, height as f32);
    let img = image::RgbImage::from_fn(width, height, |px, py| {
        let (fx, fy) = (px as f32, py as f32);
        for &(cx, cy, r, c) in &discs {
            if (fx - cx) * (fx - cx) + (fy - cy) * (fy - cy) < r * r {
                let n = (next() % 16) as u8;
                return image::Rgb([c[0].saturating_add(n), c[1].saturating_add(n), c[2]]);
            }
        }
        let n = (next() % 24) as f32;
        image::Rgb([
            (base[0] as f32 + 55.0 * fx / w + n) as u8,
            (base[1] as f32 + 55.0 * fy / h + n) as u8,
            (base[2] as f32 + 30.0 * (fx + fy) / (w + h) + n) as u8,
        ])
    });
    let tmp = path.with_extension("part");
    let file = std::fs::File::create(&tmp)
        .map_err(|e| HarnessError::io(format!("create {}", tmp.display()), e))?;
    let mut out = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .map_err(|e| HarnessError::msg(format!("encode {}: {e}", path.display())))?;
    drop(out);
    std::fs::rename(&tmp, path)
        .map_err(|e| HarnessError::io(format!("rename {}", tmp.display()), e))
}
