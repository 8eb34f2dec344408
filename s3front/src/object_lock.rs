//! S3 Object Lock (sans-IO): a bucket's default retention, an object version's retention and
//! legal hold, and what they forbid. A version under retention or legal hold cannot be
//! deleted (a delete without a version id only adds a delete marker, which is allowed);
//! a COMPLIANCE retention cannot be shortened or lifted by anyone until it ends; a
//! GOVERNANCE one only by a request that asks to bypass it
//! (`x-amz-bypass-governance-retention: true`).

use crate::error::{ErrorCode, S3Error};
use crate::lifecycle::DAY_MS;

/// Days in a year of default retention, as S3 counts them.
const DAYS_PER_YEAR: u64 = 365;
/// The longest default retention S3 accepts (100 years).
const RETENTION_DAYS_MAX: u64 = 100 * DAYS_PER_YEAR;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Governance,
    Compliance,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Governance => "GOVERNANCE",
            Mode::Compliance => "COMPLIANCE",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "GOVERNANCE" => Some(Mode::Governance),
            "COMPLIANCE" => Some(Mode::Compliance),
            _ => None,
        }
    }
}

/// A bucket's default retention: every new version gets it unless its request names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: Mode,
    /// `Days` or `Years`, as given (read back the same way).
    pub period: Period,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Years(u32),
}

impl DefaultRetention {
    /// Checks the period as S3 does: positive, at most 100 years.
    pub fn new(mode: Mode, period: Period) -> Result<DefaultRetention, S3Error> {
        let days = match period {
            Period::Days(d) => u64::from(d),
            Period::Years(y) => u64::from(y) * DAYS_PER_YEAR,
        };
        if days == 0 || days > RETENTION_DAYS_MAX {
            return Err(S3Error::new(ErrorCode::InvalidRetentionPeriod, "the default retention period must be a positive number of days or years, at most 100 years"));
        }
        Ok(DefaultRetention { mode, period })
    }

    /// The retention a version written at `now_ms` gets.
    pub fn retention_from(&self, now_ms: u64) -> Retention {
        let days = match self.period {
            Period::Days(d) => u64::from(d),
            Period::Years(y) => u64::from(y) * DAYS_PER_YEAR,
        };
        Retention { mode: self.mode, until_ms: now_ms.saturating_add(days * DAY_MS) }
    }
}

/// A bucket's Object Lock configuration (`ObjectLockEnabled` is always `Enabled` once set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockConfiguration {
    pub default: Option<DefaultRetention>,
}

/// One version's retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub mode: Mode,
    pub until_ms: u64,
}

impl Retention {
    pub fn active(&self, now_ms: u64) -> bool {
        self.until_ms > now_ms
    }
}

fn worm() -> S3Error {
    S3Error::new(ErrorCode::AccessDenied, "Object is WORM protected and cannot be overwritten or deleted")
}

/// Whether a version with `retention` and `legal_hold` may be removed at `now_ms`; `bypass`:
/// the request asks to bypass GOVERNANCE retention (and may).
pub fn check_delete(retention: Option<Retention>, legal_hold: bool, now_ms: u64, bypass: bool) -> Result<(), S3Error> {
    if legal_hold {
        return Err(worm());
    }
    match retention.filter(|r| r.active(now_ms)) {
        None => Ok(()),
        Some(Retention { mode: Mode::Governance, .. }) if bypass => Ok(()),
        Some(_) => Err(worm()),
    }
}

/// Whether a version's retention may go from `old` to `new` at `now_ms` (PutObjectRetention):
/// an active COMPLIANCE retention may only be extended; an active GOVERNANCE one may be
/// extended, and shortened, lifted or changed to COMPLIANCE only with `bypass` (s3-tests'
/// `test_object_lock_changing_mode_from_governance_without_bypass`).
pub fn check_change(old: Option<Retention>, new: Option<Retention>, now_ms: u64, bypass: bool) -> Result<(), S3Error> {
    let Some(old) = old.filter(|r| r.active(now_ms)) else { return Ok(()) };
    let extends = new.is_some_and(|n| n.mode == old.mode && n.until_ms >= old.until_ms);
    match old.mode {
        Mode::Compliance if extends => Ok(()),
        Mode::Compliance => Err(worm()),
        Mode::Governance if extends || bypass => Ok(()),
        Mode::Governance => Err(worm()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000 * DAY_MS;

    fn r(mode: Mode, days_from_now: i64) -> Option<Retention> {
        Some(Retention { mode, until_ms: (NOW as i64 + days_from_now * DAY_MS as i64) as u64 })
    }

    #[test]
    fn deletes_wait_for_retention_and_legal_hold() {
        assert!(check_delete(None, false, NOW, false).is_ok());
        assert!(check_delete(None, true, NOW, true).is_err(), "a legal hold has no bypass");
        assert!(check_delete(r(Mode::Governance, 1), false, NOW, false).is_err());
        assert!(check_delete(r(Mode::Governance, 1), false, NOW, true).is_ok());
        assert!(check_delete(r(Mode::Compliance, 1), false, NOW, true).is_err());
        assert!(check_delete(r(Mode::Compliance, -1), false, NOW, false).is_ok(), "ended");
    }

    #[test]
    fn retention_changes() {
        let (g, c) = (Mode::Governance, Mode::Compliance);
        assert!(check_change(r(c, 2), r(c, 3), NOW, false).is_ok());
        assert!(check_change(r(c, 2), r(c, 1), NOW, true).is_err());
        assert!(check_change(r(c, 2), r(g, 3), NOW, true).is_err());
        assert!(check_change(r(c, 2), None, NOW, true).is_err());
        assert!(check_change(r(g, 2), r(g, 3), NOW, false).is_ok());
        assert!(check_change(r(g, 2), r(c, 3), NOW, false).is_err(), "a mode change overrides GOVERNANCE");
        assert!(check_change(r(g, 2), r(c, 2), NOW, true).is_ok());
        assert!(check_change(r(g, 2), r(g, 1), NOW, false).is_err());
        assert!(check_change(r(g, 2), r(g, 1), NOW, true).is_ok());
        assert!(check_change(r(g, 2), None, NOW, true).is_ok());
        assert!(check_change(r(c, -2), r(g, 1), NOW, false).is_ok(), "an ended retention binds nothing");
    }

    #[test]
    fn default_periods() {
        assert!(DefaultRetention::new(Mode::Governance, Period::Days(0)).is_err());
        assert!(DefaultRetention::new(Mode::Governance, Period::Years(101)).is_err());
        let d = DefaultRetention::new(Mode::Compliance, Period::Years(1)).expect("valid");
        assert_eq!(d.retention_from(NOW), Retention { mode: Mode::Compliance, until_ms: NOW + 365 * DAY_MS });
    }
}
