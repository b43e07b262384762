//! Media handling as a plain synchronous library: what a file is ([`sniff`]), what an
//! image says about itself ([`probe`]), and small previews of it ([`thumb`]).
//!
//! Contract: no async, no I/O other than reading the one file or buffer handed in, no
//! database, no HTTP. Decoding is CPU-heavy (tens of milliseconds per photo), so the
//! daemon calls these functions on its blocking thread pool, never on an io_uring
//! worker. Every function takes untrusted bytes: none panics on garbage (third-party
//! decoders are additionally wrapped in `catch_unwind`), and memory and time are bounded
//! by the limits documented in each module — [`DecodeLimits`] for thumbnails, fixed
//! EXIF limits (64 KiB block, 256 KiB of a TIFF head) for probing.
//!
//! Not here: video/PDF/HEIC/TIFF thumbnails (no decoder compiled in; they report
//! "no thumbnail for this type"), caching of thumbnails, directory walking.

pub mod exif;
pub mod probe;
pub mod sniff;
pub mod thumb;

// The daemon does not use every re-export yet; they are the module's API.
#[allow(unused_imports)]
pub use probe::{probe_bytes, probe_path, probe_reader, Gps, Probe};
#[allow(unused_imports)]
pub use sniff::{can_thumbnail, detect, magic, media_kind, MediaKind, SNIFF_LEN};
#[allow(unused_imports)]
pub use thumb::{thumbnail, DecodeLimits, Source, ThumbError, ThumbFormat, Thumbnail};

#[cfg(test)]
mod tests;
