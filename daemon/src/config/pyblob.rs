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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RhinoboxEnv, ServeArgs};
    use std::time::Duration;

    fn load(a: PyblobArgs) -> Result<Config, ConfigError> {
        let args = ServeArgs {
            pyblob: a,
            ..ServeArgs::default()
        };
        Config::load_with(&args, &RhinoboxEnv::default())
    }

    #[test]
    fn defaults_bounds_and_public_links() {
        let c = load(PyblobArgs::default()).unwrap();
        assert_eq!(c.pyblob.id_len, 8);
        assert!(c.pyblob.public_schemes.is_empty());
        assert_eq!(c.pyblob.idle_after, Duration::from_secs(90 * 86_400));
        let c = load(PyblobArgs {
            pyblob_public_links: true,
            pyblob_id_length: Some(12),
            pyblob_expire_after: Some("7d".into()),
        })
        .unwrap();
        assert_eq!(c.pyblob.public_schemes, vec!["pb".to_string()]);
        assert_eq!(c.pyblob.id_len, 12);
        assert_eq!(c.pyblob.idle_after, Duration::from_secs(7 * 86_400));
        for bad in [3, 33] {
            let e = load(PyblobArgs {
                pyblob_id_length: Some(bad),
                ..PyblobArgs::default()
            })
            .unwrap_err();
            assert!(e.to_string().contains("pyblob_id_length"), "{e}");
        }
        assert!(load(PyblobArgs {
            pyblob_expire_after: Some("soon".into()),
            ..PyblobArgs::default()
        })
        .is_err());
    }
}
