//! Usernames, passwords and their Argon2id hashes.
//!
//! Rules:
//! - a username is 3 to 64 characters, each an ASCII letter, digit or one of
//!   `@ . _ + -` (so an e-mail address is a valid username, as Media Vault expects).
//!   It is compared exactly as given: folding case, if wanted, is the caller's policy;
//! - a password is at least 8 characters (Unicode scalar values) and at most 1,024
//!   bytes. No composition rules (NIST SP 800-63B), no Unicode normalization: the
//!   bytes the client sent are the bytes that are hashed.
//!
//! Hashes are Argon2id v1.3 PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`)
//! with a 16-byte random salt and a 32-byte output. The parameters are a
//! [`HashParams`] whose default is OWASP's first recommendation (19 MiB, 2 passes,
//! 1 lane); on this project's 2-core machines one hash or verification takes about
//! 30 ms of CPU (see [`HashParams`]). Verification uses the parameters stored in the hash,
//! so raising the defaults later keeps old hashes valid; [`PasswordHasher::needs_rehash`]
//! tells the caller when to re-hash after a successful login.
//!
//! Timing: [`PasswordHasher::verify_dummy`] runs a full verification against a hash
//! made at start with the current parameters and always fails, so a login for an
//! unknown user costs what a login with a wrong password costs.
//!
//! What this module does not do: run on a worker thread. Every hashing function here
//! burns tens of milliseconds of CPU and allocates `m_cost` KiB; the caller runs it
//! on the blocking pool, and the pool's size bounds the memory (19 MiB per thread).

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::{random_bytes, RandomError};

/// Fewest characters in a username.
pub const USERNAME_MIN_CHARS: usize = 3;
/// Most characters in a username (an e-mail address fits; keys in LMDB stay short).
pub const USERNAME_MAX_CHARS: usize = 64;
/// Fewest characters in a password (NIST SP 800-63B's floor).
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Most bytes in a password: long passphrases fit, while a megabyte "password" is
/// refused before it is hashed.
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// Ceilings on Argon2 parameters, for the ones we set and the ones we read back from a
/// stored hash: a corrupt or hostile hash saying `m=4194304` must be an error, not a
/// 4 GiB allocation on the blocking pool.
pub const MAX_M_COST_KIB: u32 = 256 * 1024;
/// See [`MAX_M_COST_KIB`].
pub const MAX_T_COST: u32 = 32;
/// See [`MAX_M_COST_KIB`].
pub const MAX_P_COST: u32 = 16;

const SALT_LEN: usize = 16;
const OUTPUT_LEN: usize = 32;

/// A username or a new password breaks a rule. The message states the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "a username must be {USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} characters long \
         (this one has {chars})"
    )]
    UsernameLength { chars: usize },
    #[error(
        "a username may contain only ASCII letters, digits and @ . _ + - \
         (found {found:?} at position {position})"
    )]
    UsernameCharacter { found: char, position: usize },
    #[error("a password must be at least {PASSWORD_MIN_CHARS} characters long")]
    PasswordTooShort,
    #[error("a password must be at most {PASSWORD_MAX_BYTES} bytes long")]
    PasswordTooLong,
}

/// Checks a username against the rules above.
pub fn validate_username(name: &str) -> Result<(), CredentialError> {
    // Count characters, not bytes, so a non-ASCII name is told about its length
    // in the unit the rule uses; stop counting early on absurdly long input.
    let chars = name.chars().take(USERNAME_MAX_CHARS + 1).count();
    if !(USERNAME_MIN_CHARS..=USERNAME_MAX_CHARS).contains(&chars) {
        return Err(CredentialError::UsernameLength { chars });
    }
    match name
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '@' | '.' | '_' | '+' | '-')))
    {
        Some((position, found)) => Err(CredentialError::UsernameCharacter { found, position }),
        None => Ok(()),
    }
}

/// Checks a new password against the rules above. Not applied at login, where any
/// password up to [`PASSWORD_MAX_BYTES`] is simply verified: an old password may
/// predate a rule change.
pub fn validate_password(password: &str) -> Result<(), CredentialError> {
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(CredentialError::PasswordTooLong);
    }
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(CredentialError::PasswordTooShort);
    }
    Ok(())
}

/// Argon2id cost parameters.
///
/// The default is OWASP's Password Storage Cheat Sheet recommendation `m=19456 KiB,
/// t=2, p=1`. Measured on this project's 2-core Xeon (AVX2, which the `argon2` crate
/// uses) with `stress_argon2_timing`, median CPU time of the thread, while other
/// builds kept the machine busy (wall time was 3x that, waiting for a CPU):
///
/// | parameters (OWASP's equivalent set) | hash | verify |
/// | --- | --- | --- |
/// | m=19456 t=2 (default) | 32 ms | 31 ms |
/// | m=12288 t=3 | 22 ms | 22 ms |
/// | m=9216 t=4 | 18 ms | 18 ms |
/// | m=7168 t=5 | 20 ms | 22 ms |
/// | m=47104 t=1 | 58 ms | 55 ms |
///
/// The default sits inside the 20-50 ms a login may cost. Each call allocates (and
/// the kernel zeroes) `m_cost_kib` KiB, which is why the large-memory variant costs
/// more than its pass count suggests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Passes over the memory.
    pub t_cost: u32,
    /// Lanes. 1: the blocking pool already runs several hashes in parallel, and
    /// lanes in the `argon2` crate run on one thread anyway.
    pub p_cost: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

impl HashParams {
    fn to_argon2(self) -> Result<Params, PasswordError> {
        if self.m_cost_kib > MAX_M_COST_KIB || self.t_cost > MAX_T_COST || self.p_cost > MAX_P_COST
        {
            return Err(PasswordError::Params(format!(
                "m={} t={} p={} exceeds the ceiling m={MAX_M_COST_KIB} t={MAX_T_COST} p={MAX_P_COST}",
                self.m_cost_kib, self.t_cost, self.p_cost
            )));
        }
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(OUTPUT_LEN))
            .map_err(|e| PasswordError::Params(e.to_string()))
    }

    fn from_argon2(p: &Params) -> Self {
        Self {
            m_cost_kib: p.m_cost(),
            t_cost: p.t_cost(),
            p_cost: p.p_cost(),
        }
    }
}

/// Hashing or verification could not be done (a wrong password is not an error:
/// [`PasswordHasher::verify`] returns `Ok(false)`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PasswordError {
    /// The new password breaks a rule.
    #[error(transparent)]
    Rule(#[from] CredentialError),
    /// The configured parameters are out of range.
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    /// A stored hash cannot be used: not a PHC string, not Argon2id v1.3, or with
    /// parameters above the ceilings. The record is corrupt or foreign.
    #[error("the stored password hash is unusable: {0}")]
    BadHash(String),
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Argon2 itself failed (it does not for valid parameters; kept typed anyway).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes and verifies passwords with one set of parameters. Cheap to share
/// (`Arc`) between the threads of the blocking pool: it is immutable.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    argon: Argon2<'static>,
    /// A hash of a random password with the current parameters, for [`Self::verify_dummy`].
    dummy: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Checks the parameters and makes the dummy hash, which costs one hash: call it
    /// once at start (on the blocking pool or before the workers start).
    pub fn new(params: HashParams) -> Result<Self, PasswordError> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.to_argon2()?);
        let mut this = Self {
            params,
            argon,
            dummy: String::new(),
        };
        let secret = random_bytes::<32>()?;
        let dummy_password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        this.dummy = this.hash_unchecked(&dummy_password)?;
        Ok(this)
    }

    /// The parameters new hashes are made with.
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    pub fn params(&self) -> HashParams {
        self.params
    }

    /// Checks `password` against the rules, then hashes it with a fresh random salt.
    /// Returns the PHC string to store.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        validate_password(password)?;
        self.hash_unchecked(password)
    }

    fn hash_unchecked(&self, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::encode_b64(&random_bytes::<SALT_LEN>()?)
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        self.argon
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    /// Whether `password` matches the stored PHC string `phc`. `Ok(false)` for a wrong
    /// password; a password over [`PASSWORD_MAX_BYTES`] is wrong (it cannot have been
    /// set), after the same work as any other. The comparison of the outputs is
    /// constant-time (the `password-hash` crate's `Output`).
    pub fn verify(&self, phc: &str, password: &str) -> Result<bool, PasswordError> {
        let (hash, params) = parse_phc(phc)?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let too_long = password.len() > PASSWORD_MAX_BYTES;
        // An over-long password is replaced by an empty one (which matches no stored
        // hash: every stored password had at least 8 characters), so the work done is
        // that of a normal verification.
        let candidate = if too_long { "" } else { password };
        match argon.verify_password(candidate.as_bytes(), &hash) {
            Ok(()) => Ok(!too_long),
            Err(argon2::password_hash::Error::Password) => Ok(false),
            Err(e) => Err(PasswordError::BadHash(e.to_string())),
        }
    }

    /// Costs what [`Self::verify`] costs with the current parameters, and finds
    /// nothing. Call it when the user does not exist, then answer as for a wrong
    /// password.
    pub fn verify_dummy(&self, password: &str) {
        // The dummy hash was made by `new` with our own parameters, so it parses;
        // whatever the outcome, the caller treats it as a failed login.
        let _ = std::hint::black_box(self.verify(&self.dummy, password));
    }

    /// Whether a stored hash was made with other parameters (or is unusable), so the
    /// caller should store a new hash of the password it has just verified.
    #[allow(dead_code)] // part of the module's API; not every caller uses it yet
    pub fn needs_rehash(&self, phc: &str) -> bool {
        match parse_phc(phc) {
            Ok((_, params)) => HashParams::from_argon2(&params) != self.params,
            Err(_) => true,
        }
    }
}

/// Parses a stored PHC string and checks that it is Argon2id v1.3 with parameters
/// under the ceilings.
fn parse_phc(phc: &str) -> Result<(PasswordHash<'_>, Params), PasswordError> {
    let hash = PasswordHash::new(phc).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if hash.algorithm != argon2::ARGON2ID_IDENT {
        return Err(PasswordError::BadHash(format!(
            "algorithm {} is not argon2id",
            hash.algorithm
        )));
    }
    if hash.version != Some(Version::V0x13.into()) {
        return Err(PasswordError::BadHash(
            "Argon2 version is not 19 (1.3)".into(),
        ));
    }
    let params = Params::try_from(&hash).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    let hp = HashParams::from_argon2(&params);
    if hp.m_cost_kib > MAX_M_COST_KIB || hp.t_cost > MAX_T_COST || hp.p_cost > MAX_P_COST {
        return Err(PasswordError::BadHash(format!(
            "parameters m={} t={} p={} exceed the ceiling",
            hp.m_cost_kib, hp.t_cost, hp.p_cost
        )));
    }
    Ok((hash, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Small parameters keep the unit tests fast; the timing tests use the defaults.
    fn fast() -> PasswordHasher {
        PasswordHasher::new(HashParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        })
        .unwrap()
    }

    #[test]
    fn usernames() {
        use CredentialError::*;
        let cases: &[(&str, Result<(), CredentialError>)] = &[
            ("bob", Ok(())),
            ("user@example.com", Ok(())),
            ("a.b_c+d-e", Ok(())),
            ("ABC123", Ok(())),
            (&"x".repeat(64), Ok(())),
            ("", Err(UsernameLength { chars: 0 })),
            ("ab", Err(UsernameLength { chars: 2 })),
            (&"x".repeat(65), Err(UsernameLength { chars: 65 })),
            (&"x".repeat(1000), Err(UsernameLength { chars: 65 })),
            (
                "bo b",
                Err(UsernameCharacter {
                    found: ' ',
                    position: 2,
                }),
            ),
            (
                "bob/",
                Err(UsernameCharacter {
                    found: '/',
                    position: 3,
                }),
            ),
            (
                "jösé",
                Err(UsernameCharacter {
                    found: 'ö',
                    position: 1,
                }),
            ),
            (
                "a\0bc",
                Err(UsernameCharacter {
                    found: '\0',
                    position: 1,
                }),
            ),
            ("é€", Err(UsernameLength { chars: 2 })),
        ];
        for (name, want) in cases {
            assert_eq!(&validate_username(name), want, "{name:?}");
        }
    }

    #[test]
    fn passwords() {
        use CredentialError::*;
        let cases: &[(String, Result<(), CredentialError>)] = &[
            ("12345678".into(), Ok(())),
            ("1234567".into(), Err(PasswordTooShort)),
            ("".into(), Err(PasswordTooShort)),
            // 8 characters, 16 bytes.
            ("éééééééé".into(), Ok(())),
            // 7 characters however many bytes.
            ("€€€€€€€".into(), Err(PasswordTooShort)),
            ("x".repeat(1024), Ok(())),
            ("x".repeat(1025), Err(PasswordTooLong)),
            // 342 three-byte characters = 1,026 bytes.
            ("€".repeat(342), Err(PasswordTooLong)),
        ];
        for (pw, want) in cases {
            assert_eq!(&validate_password(pw), want, "{} bytes", pw.len());
        }
    }

    #[test]
    fn error_messages_state_the_rule() {
        let m = validate_username("a").unwrap_err().to_string();
        assert!(m.contains("3 to 64 characters"), "{m}");
        let m = validate_username("a b").unwrap_err().to_string();
        assert!(m.contains("ASCII letters, digits and @ . _ + -"), "{m}");
        let m = validate_password("short").unwrap_err().to_string();
        assert!(m.contains("at least 8 characters"), "{m}");
        let m = validate_password(&"x".repeat(2000))
            .unwrap_err()
            .to_string();
        assert!(m.contains("at most 1024 bytes"), "{m}");
    }

    #[test]
    fn hash_and_verify() {
        let h = fast();
        let phc = h.hash("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(h.verify(&phc, "correct horse").unwrap());
        assert!(!h.verify(&phc, "correct horsf").unwrap());
        assert!(!h.verify(&phc, "").unwrap());
        assert!(!h.verify(&phc, &"x".repeat(5000)).unwrap());
        // Fresh salt each time.
        assert_ne!(phc, h.hash("correct horse").unwrap());
        assert!(!h.needs_rehash(&phc));
    }

    #[test]
    fn hash_refuses_rule_breakers() {
        let h = fast();
        assert!(matches!(
            h.hash("short"),
            Err(PasswordError::Rule(CredentialError::PasswordTooShort))
        ));
        assert!(matches!(
            h.hash(&"x".repeat(1025)),
            Err(PasswordError::Rule(CredentialError::PasswordTooLong))
        ));
    }

    #[test]
    fn old_parameters_still_verify_and_ask_for_rehash() {
        let old = fast();
        let phc = old.hash("password one").unwrap();
        let new = PasswordHasher::new(HashParams {
            m_cost_kib: 128,
            t_cost: 2,
            p_cost: 1,
        })
        .unwrap();
        assert!(new.verify(&phc, "password one").unwrap());
        assert!(new.needs_rehash(&phc));
        assert!(new.needs_rehash("garbage"));
    }

    #[test]
    fn unusable_stored_hashes_are_errors() {
        let h = fast();
        let good = h.hash("password one").unwrap();
        let cases = [
            String::new(),
            "not a hash".into(),
            good.replace("argon2id", "argon2i"),
            good.replace("v=19", "v=16"),
            good.replace("m=64", "m=4194304"),
            good.replace("t=1", "t=1000"),
            "$2b$12$abcdefghijklmnopqrstuv".into(),
        ];
        for phc in &cases {
            assert!(
                matches!(
                    h.verify(phc, "password one"),
                    Err(PasswordError::BadHash(_))
                ),
                "{phc:?}"
            );
        }
    }

    #[test]
    fn parameters_are_checked() {
        let cases = [
            HashParams {
                m_cost_kib: 1,
                t_cost: 1,
                p_cost: 1,
            },
            HashParams {
                m_cost_kib: MAX_M_COST_KIB + 1,
                t_cost: 1,
                p_cost: 1,
            },
            HashParams {
                m_cost_kib: 64,
                t_cost: 0,
                p_cost: 1,
            },
            HashParams {
                m_cost_kib: 64,
                t_cost: 1,
                p_cost: 0,
            },
        ];
        for p in cases {
            assert!(
                matches!(PasswordHasher::new(p), Err(PasswordError::Params(_))),
                "{p:?}"
            );
        }
    }

    #[test]
    fn dummy_verification_never_matches() {
        let h = fast();
        h.verify_dummy("anything at all");
        h.verify_dummy("");
        // It matches no hash we hand out: the dummy's password is never returned.
        assert!(!h.verify(&h.dummy, "anything at all").unwrap());
    }

    fn median(mut v: Vec<Duration>) -> Duration {
        v.sort();
        v[v.len() / 2]
    }

    /// Unknown user and wrong password cost the same because the dummy is a full
    /// verification against a hash made with exactly the parameters of real hashes
    /// (timing itself is measured by `stress_argon2_timing`, not asserted here).
    #[test]
    fn dummy_costs_what_a_verification_costs() {
        let h = PasswordHasher::new(HashParams::default()).unwrap();
        let phc = h.hash("the real password").unwrap();
        let (_, real) = parse_phc(&phc).unwrap();
        let (_, dummy) = parse_phc(&h.dummy).unwrap();
        assert_eq!(
            HashParams::from_argon2(&real),
            HashParams::from_argon2(&dummy)
        );
        assert!(!h.needs_rehash(&h.dummy));
        assert_eq!(h.dummy.len(), phc.len(), "same salt and output lengths");
    }

    /// Timing of the default parameters, for the docs:
    /// `cargo test -p ringbox --release stress_argon2 -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn stress_argon2_timing() {
        use super::super::thread_cpu_time;
        use std::io::Write as _;
        let mut err = std::io::stderr().lock();
        let candidates = [
            (19 * 1024, 2),
            (12 * 1024, 3),
            (9 * 1024, 4),
            (7 * 1024, 5),
            (46 * 1024, 1),
            (64 * 1024, 3),
        ];
        for (m, t) in candidates {
            let h = PasswordHasher::new(HashParams {
                m_cost_kib: m,
                t_cost: t,
                p_cost: 1,
            })
            .unwrap();
            let mut hash_t = Vec::new();
            let mut verify_t = Vec::new();
            let mut verify_wall = Vec::new();
            let mut phc = String::new();
            for _ in 0..15 {
                let t0 = thread_cpu_time();
                phc = h.hash("a password for timing").unwrap();
                hash_t.push(thread_cpu_time() - t0);
                let (t0, w0) = (thread_cpu_time(), Instant::now());
                assert!(h.verify(&phc, "a password for timing").unwrap());
                verify_t.push(thread_cpu_time() - t0);
                verify_wall.push(w0.elapsed());
            }
            let _ = writeln!(
                err,
                "m={m} t={t} p=1: CPU time median: hash {:.1?}, verify {:.1?} (verify wall {:.1?}) {phc}",
                median(hash_t),
                median(verify_t),
                median(verify_wall),
            );
        }
    }
}
