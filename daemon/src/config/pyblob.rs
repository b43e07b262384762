//! The pyBlobServer settings (`--pyblob-*`), parsed and validated like every other
//! setting (flag > `RINGBOX_*` > TOML key with `_` > default):
//!
//! - `--pyblob-public-links` (default off): `GET /s/{file_id}` serves anyone who has
//!   the id. Off, it needs the owner's or an admin's token like every other route:
//!   ids are 48 random bits, but a link that needs no token is a download for whoever
//!   sees it (logs, chat, referrers).
//! - `--pyblob-id-length 8` (`DEFAULT_SHORT_PATH_LENGTH`): characters of a new file id,
//!   4 to 32; shorter ids are guessable.
//! - `--pyblob-expire-after 90d`: a file not downloaded for this long (counting from
//!   its upload) is "expired": `delete_all?function=expired` deletes it, and it is the
//!   not-accessed expiry of pyBlobServer's files when the operator set no such rule
//!   (`--expire-unaccessed`, `--namespace-expire-unaccessed pyblob=...`).

use clap::Args;

use super::{parse_expiry, pick_value, ConfigError, FileConfig};
use crate::core::short_ids::{ShortLinks, MAX_LEN, MIN_LEN};

/// The pyBlobServer flags (flattened into `ringbox serve`).
#[derive(Args, Debug, Default, Clone)]
pub struct PyblobArgs {
    /// pyBlobServer's `/s/{file_id}` is a public link: anyone with the id may download
    /// it (default: only with the owner's or an admin's token).
    #[arg(long, env = "RINGBOX_PYBLOB_PUBLIC_LINKS")]
    pub pyblob_public_links: bool,
    /// Characters of a new pyBlobServer file id (4 to 32; default 8).
    #[arg(long, env = "RINGBOX_PYBLOB_ID_LENGTH")]
    pub pyblob_id_length: Option<usize>,
    /// A pyBlobServer file not downloaded for this long is expired (default 90d):
    /// `delete_all?function=expired`, and its files' not-accessed expiry unless
    /// --expire-unaccessed or --namespace-expire-unaccessed says otherwise.
    #[arg(long, env = "RINGBOX_PYBLOB_EXPIRE_AFTER")]
    pub pyblob_expire_after: Option<String>,
}

/// The short-link settings from flags, the file and defaults.
pub(super) fn settings(a: &PyblobArgs, file: &FileConfig) -> Result<ShortLinks, ConfigError> {
    let d = ShortLinks::default();
    let id_len = a
        .pyblob_id_length
        .or(file.pyblob_id_length)
        .unwrap_or(d.id_len);
    if !(MIN_LEN..=MAX_LEN).contains(&id_len) {
        return Err(ConfigError(format!(
            "pyblob_id_length must be between {MIN_LEN} and {MAX_LEN}"
        )));
    }
    let idle_after = match pick_value(
        &a.pyblob_expire_after,
        &file.pyblob_expire_after,
        "pyblob_expire_after",
    )? {
        None => d.idle_after,
        Some(s) => parse_expiry(&s, "pyblob_expire_after")?,
    };
    let public = a.pyblob_public_links || file.pyblob_public_links.unwrap_or(false);
    Ok(ShortLinks {
        id_len,
        public_schemes: if public {
            vec![crate::api::pyblob::SCHEME.to_string()]
        } else {
            Vec::new()
        },
        idle_after,
    })
}
