//! Expiry, for every API: when objects stop existing, and the sweeper that deletes
//! them.
//!
//! - **TTL**: an object may carry `expires_at_ms`, set at upload from a `ttl` (each API
//!   reads it from its own field: native `?ttl=`, form field `ttl`, JSON `"ttl"`), by a
//!   change of `expires_at`, or from a default ([`ExpiryRules`]: `--default-ttl`,
//!   `--namespace-ttl NS=DUR`). An expired object is invisible at once, before any
//!   sweep: every read path of the core checks [`is_expired`] (by id, by alias, by
//!   name, content through the hot cache, listings, collection pages, shares). APIs
//!   that read the store directly must do the same (use [`Local::object_for_read`],
//!   [`Local::object_by_alias`], [`Local::object_by_name`] or [`is_expired`]).
//! - **Not accessed**: `--expire-unaccessed DUR` removes objects not downloaded for
//!   that long, counting from the upload for objects never downloaded; per namespace
//!   with `--namespace-expire-unaccessed NS=DUR` (`NS=off` exempts one), and a dialect
//!   may register a default for its own namespace
//!   ([`ExpiryRules::default_unaccessed_for`], e.g. pyBlobServer's 90 days for
//!   `pyblob`), which applies only when the operator set neither. The last access is
//!   tracked coarsely (`core::stats`), so this rule is enforced by the sweeper, not at
//!   read time: an object stays readable until the sweep that finds it idle (within
//!   about a second of its due time, plus the statistics flush interval).
//! - **The sweeper** ([`Local::lifecycle_tick`], on worker 0 once a second): due
//!   objects and share links come from two time indexes (`store/expiry.rs`), never
//!   from a scan of all objects; each round submits as many as the last round's cost
//!   per item says fit in about 5 ms of the writer (at most `--sweep-batch`, 100) as
//!   one writer command, which re-checks each inside its transaction and
//!   deletes it with its `object.deleted` event (actor `system`, `changes.reason`
//!   `expired` or `not_accessed`); the blobs go when nothing else references them.
//!   Rounds follow each other while there is work, each followed by a pause three
//!   times as long as the round, so other clients' writes find the writer free three
//!   quarters of the time and wait behind at most one small round (measured in
//!   `tuning.md`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::error::{CoreError, CoreResult};
use super::Local;
use crate::store::expiry::{KIND_OBJECT, KIND_SHARE};
use crate::store::{Command, Due, ExpiryCommand, ObjectRecord, Reply, SweepItem, SweepReport};
use crate::util::time::{now_ms, parse_ttl};

/// The default of `--sweep-batch`: most items one sweep round (one writer command, one
/// transaction) deletes; rounds are sized to [`ROUND_TARGET`] below this. It bounds
/// the transaction, so a write of another client queued behind it waits for at most
/// one round (measured in `tuning.md`).
pub const DEFAULT_SWEEP_BATCH: usize = 100;
/// How often the download statistics are written.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How long one lifecycle tick may keep sweeping before it returns (the statistics
/// flush and the shutdown check run between ticks).
const TICK_BUDGET: Duration = Duration::from_secs(1);
/// The sweeper pauses after each round for [`PAUSE_FACTOR`] times as long as the round
/// took (at least this), so it occupies the writer at most about a quarter of the
/// time: other clients' writes rarely meet a round, and wait for at most one.
const MIN_PAUSE: Duration = Duration::from_millis(2);
const PAUSE_FACTOR: u32 = 3;
/// How long one round should hold the writer: the next round's size is what the last
/// one's cost per item says fits in this (never more than `--sweep-batch`). A write
/// of another client then waits behind at most about this much sweeping, whatever a
/// deletion costs on this disk (measured in `tuning.md`).
const ROUND_TARGET: Duration = Duration::from_millis(5);
/// The size of the first round, before any cost is known.
const FIRST_ROUND: usize = 10;

/// The size of the round after one that handled `items` in `took`, with `prev` the size
/// of that round: the cost per item scaled to [`ROUND_TARGET`], averaged with `prev`
/// so one slow round (a disk hiccup) does not swing the size, within `1..=max`.
fn next_round_size(prev: usize, items: u64, took: Duration, max: usize) -> usize {
    if items == 0 {
        return prev.clamp(1, max);
    }
    let per_item = took.as_secs_f64() / items as f64;
    let fits = (ROUND_TARGET.as_secs_f64() / per_item.max(1e-9)).min(max as f64) as usize;
    (prev + fits.max(1)).div_ceil(2).clamp(1, max)
}

/// When objects expire by default, and the not-accessed rules.
#[derive(Clone, Debug, Default)]
pub struct ExpiryRules {
    /// `--default-ttl`: objects created without a ttl expire this long after upload.
    pub default_ttl: Option<Duration>,
    /// `--namespace-ttl NS=DUR`: wins over `default_ttl` in its namespace.
    pub namespace_ttl: HashMap<String, Duration>,
    /// `--expire-unaccessed`: objects not downloaded for this long are deleted.
    pub unaccessed: Option<Duration>,
    /// `--namespace-expire-unaccessed NS=DUR|off`: the operator's rule for one
    /// namespace (`None` = exempt), winning over everything else.
    pub namespace_unaccessed: HashMap<String, Option<Duration>>,
    /// Defaults registered by dialects for their namespaces: used only where the
    /// operator set no rule at all (neither global nor for the namespace).
    pub api_unaccessed: HashMap<String, Duration>,
    /// `--sweep-batch`: most items per sweep round (0 = [`DEFAULT_SWEEP_BATCH`]).
    pub sweep_batch: usize,
}

impl ExpiryRules {
    /// The ttl a new object of namespace `ns` gets when its creator gave none.
    pub fn ttl_for(&self, ns: &str) -> Option<Duration> {
        self.namespace_ttl.get(ns).copied().or(self.default_ttl)
    }

    /// How long objects of namespace `ns` may go without a download.
    pub fn unaccessed_for(&self, ns: &str) -> Option<Duration> {
        match self.namespace_unaccessed.get(ns) {
            Some(rule) => *rule,
            None => self
                .unaccessed
                .or_else(|| self.api_unaccessed.get(ns).copied()),
        }
    }

    /// Register a dialect's default for its own namespace (see the module docs).
    #[allow(dead_code)] // for the dialects (pyBlobServer's 90 days); tests use it now
    pub fn default_unaccessed_for(&mut self, ns: &str, after: Duration) {
        self.api_unaccessed.insert(ns.to_string(), after);
    }

    /// Items per sweep round.
    pub fn sweep_batch(&self) -> usize {
        match self.sweep_batch {
            0 => DEFAULT_SWEEP_BATCH,
            n => n,
        }
    }

    /// Whether any not-accessed rule is on (else the sweeper skips that index).
    pub fn any_unaccessed(&self) -> bool {
        self.unaccessed.is_some()
            || self.namespace_unaccessed.values().any(Option::is_some)
            || !self.api_unaccessed.is_empty()
    }
}

/// Whether `rec` has expired at `now_ms` (its `expires_at_ms` has passed).
pub fn is_expired(rec: &ObjectRecord, now_ms: i64) -> bool {
    rec.expires_at_ms.is_some_and(|t| t <= now_ms)
}

/// The expiry time of a `ttl` given by a client (`30s`, `10m`, `7d`, or seconds),
/// from `now_ms`. `invalid_ttl` (400) for anything else.
pub fn expires_at_from_ttl(ttl: &str, now_ms: i64) -> CoreResult<i64> {
    let d = parse_ttl(ttl).ok_or_else(|| {
        let mut e = CoreError::new(
            super::ErrorKind::Invalid,
            "invalid_ttl",
            format!(
                "ttl `{ttl}` is not a duration: use a number with a unit s, m, h or d (30s, 10m, 7d), at most ten years"
            ),
        );
        e.field = Some("ttl");
        e
    })?;
    Ok(now_ms.saturating_add(d.as_millis() as i64))
}

impl Local {
    /// The expiry a new object of namespace `ns` gets: `explicit` if the client gave
    /// one, else the namespace's (or the global) default ttl.
    pub fn default_expiry(&self, ns: &str, explicit: Option<i64>, now_ms: i64) -> Option<i64> {
        explicit.or_else(|| {
            self.settings
                .expiry
                .ttl_for(ns)
                .map(|d| now_ms.saturating_add(d.as_millis() as i64))
        })
    }

    /// One sweep round: at most `batch` due objects and shares, deleted in one writer
    /// command. Returns what it did and whether it found a full batch (more may be
    /// due).
    pub async fn sweep_round(&self, batch: usize) -> CoreResult<(SweepReport, bool)> {
        let now = now_ms();
        let mut items = Vec::new();
        for e in self.store.due_expiries(now, batch)? {
            items.push(match e.kind {
                KIND_SHARE => SweepItem::Share {
                    id: e.id,
                    at_ms: e.at_ms,
                },
                KIND_OBJECT => SweepItem::Object {
                    id: e.id,
                    due: Due::Expired { at_ms: e.at_ms },
                    namespace: String::new(),
                },
                other => {
                    tracing::error!(
                        kind = other,
                        "unknown expiry index kind; run `ringbox check`"
                    );
                    continue;
                }
            });
        }
        let rules = &self.settings.expiry;
        let mut skipped_recent = 0usize;
        if items.len() < batch && rules.any_unaccessed() {
            let cutoff_of = |ns: &str| {
                rules
                    .unaccessed_for(ns)
                    .map(|d| now.saturating_sub(d.as_millis() as i64))
            };
            for e in self.store.idle_objects(&cutoff_of, batch - items.len())? {
                // Downloaded since the last statistics flush: not idle.
                if self
                    .access
                    .pending_access(&e.id)
                    .is_some_and(|t| t > e.cutoff_ms)
                {
                    skipped_recent += 1;
                    continue;
                }
                items.push(SweepItem::Object {
                    id: e.id,
                    due: Due::Idle {
                        cutoff_ms: e.cutoff_ms,
                        at_ms: e.at_ms,
                    },
                    namespace: e.namespace,
                });
            }
        }
        if items.is_empty() {
            return Ok((SweepReport::default(), false));
        }
        // Full when the indexes had more than this round took (entries skipped as
        // recently downloaded stay in the index until the flush moves them: they do
        // not count as "more", or the sweeper would spin on them).
        let full = items.len() + skipped_recent >= batch && items.len() >= batch.div_ceil(2);
        let n = items.len();
        let reply = self
            .store
            .writer()
            .submit(Command::Expiry(ExpiryCommand::Sweep { items, now_ms: now }))
            .await?;
        let report = match reply {
            Reply::Swept(r) => r,
            other => {
                return Err(CoreError::internal(format!(
                    "unexpected writer reply {other:?}"
                )))
            }
        };
        crate::metrics::get().expiry_round(n as u64, report.objects, report.shares);
        if report.objects + report.shares > 0 {
            tracing::debug!(
                objects = report.objects,
                shares = report.shares,
                stale = report.stale,
                "swept expired items"
            );
        }
        Ok((report, full))
    }

    /// Worker 0's lifecycle task calls this: write the download statistics every
    /// [`FLUSH_EVERY`], and sweep while there is work, for about a second at most,
    /// pausing after each round three times as long as it took. Returns whether more may be due
    /// (the caller then calls again without waiting).
    pub async fn lifecycle_tick(&self, last_flush: &mut Instant) -> bool {
        if last_flush.elapsed() >= FLUSH_EVERY {
            *last_flush = Instant::now();
            self.flush_access().await;
        }
        let started = Instant::now();
        let max = self.settings.expiry.sweep_batch();
        loop {
            let size = match self.sweep_size.get() {
                0 => FIRST_ROUND.min(max),
                n => n.min(max),
            };
            let round = Instant::now();
            let result = self.sweep_round(size).await;
            if let Ok((report, _)) = &result {
                let items = report.objects + report.shares + report.stale;
                self.sweep_size
                    .set(next_round_size(size, items, round.elapsed(), max));
            }
            match result {
                Ok((_, true)) => {
                    // Leave the writer to the other clients for a while.
                    monoio::time::sleep((round.elapsed() * PAUSE_FACTOR).max(MIN_PAUSE)).await;
                    if started.elapsed() >= TICK_BUDGET {
                        return true;
                    }
                    if last_flush.elapsed() >= FLUSH_EVERY {
                        *last_flush = Instant::now();
                        self.flush_access().await;
                    }
                }
                Ok(_) => return false,
                Err(e) => {
                    tracing::warn!(error = %e, "expiry sweep failed; retrying on the next tick");
                    return false;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_sized_to_the_target() {
        // 1 ms an item: 5 fit; from 100 the size halves towards that, and stays there.
        let ms = Duration::from_millis;
        assert_eq!(next_round_size(100, 100, ms(100), 100), 53);
        assert_eq!(next_round_size(5, 5, ms(5), 100), 5);
        // Cheap items grow the round, never past the setting.
        assert_eq!(next_round_size(10, 10, Duration::from_micros(100), 100), 55);
        assert_eq!(
            next_round_size(100, 100, Duration::from_micros(10), 100),
            100
        );
        // A very slow round still leaves one item per round.
        assert_eq!(next_round_size(1, 1, Duration::from_secs(5), 100), 1);
        // Nothing done: the size stays.
        assert_eq!(next_round_size(40, 0, ms(3), 100), 40);
    }

    #[test]
    fn rules_and_precedence() {
        let mut r = ExpiryRules::default();
        assert_eq!(r.ttl_for("a"), None);
        assert!(!r.any_unaccessed());
        r.default_unaccessed_for("pyblob", Duration::from_secs(90 * 86_400));
        assert!(r.any_unaccessed());
        assert_eq!(
            r.unaccessed_for("pyblob"),
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(r.unaccessed_for("other"), None);
        // The operator's global rule wins over the dialect's default...
        r.unaccessed = Some(Duration::from_secs(60));
        assert_eq!(r.unaccessed_for("pyblob"), Some(Duration::from_secs(60)));
        assert_eq!(r.unaccessed_for("other"), Some(Duration::from_secs(60)));
        // ...and the operator's namespace rule over both (off included).
        r.namespace_unaccessed.insert("pyblob".into(), None);
        assert_eq!(r.unaccessed_for("pyblob"), None);
        r.default_ttl = Some(Duration::from_secs(5));
        r.namespace_ttl.insert("tmp".into(), Duration::from_secs(1));
        assert_eq!(r.ttl_for("tmp"), Some(Duration::from_secs(1)));
        assert_eq!(r.ttl_for("x"), Some(Duration::from_secs(5)));
    }

    #[test]
    fn ttl_values() {
        assert_eq!(expires_at_from_ttl("30s", 1000).unwrap(), 31_000);
        assert_eq!(expires_at_from_ttl("7d", 0).unwrap(), 7 * 86_400_000);
        let e = expires_at_from_ttl("soon", 0).unwrap_err();
        assert_eq!((e.code, e.field), ("invalid_ttl", Some("ttl")));
        let rec = ObjectRecord {
            expires_at_ms: Some(10),
            ..ObjectRecord::blank()
        };
        assert!(is_expired(&rec, 10) && !is_expired(&rec, 9));
        assert!(!is_expired(&ObjectRecord::blank(), i64::MAX));
    }
}
