//! Property checks run by the fuzz targets and by the corpus-replay test. Each function
//! takes arbitrary input bytes and panics only if a parser property is violated (no
//! panic alone is not enough: each checks split-invariance, bounds or round-trips).
pub mod chunked;
pub mod multipart;
pub mod percent;
pub mod range;
pub mod request_head;
pub mod websocket;
