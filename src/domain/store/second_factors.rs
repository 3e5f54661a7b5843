//! The second-factor aggregate: TOTP secrets (active and pending), the
//! last accepted time step, recovery codes, and how many remembered devices
//! are live.

use std::future::Future;

use time::OffsetDateTime;

use super::{CompletionError, SessionUpgrade, StoreResult};
use crate::crypto::keyring::Sealed;
use crate::domain::ids::{RecoveryCodeId, UserId};

/// What a sealed TOTP secret is for. Part of the secret's associated data,
/// so a ciphertext moved from one purpose to the other does not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SecretPurpose {
    /// The secret of an enabled TOTP.
    Active,
    /// An enrolment not yet confirmed.
    Pending,
}

impl SecretPurpose {
    /// The stable name, as stored and as bound into the associated data.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Pending => "pending",
        }
    }

    /// Reads a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "pending" => Some(Self::Pending),
            _ => None,
        }
    }
}

/// The second-factor state of one user.
#[derive(Debug, Clone, Default)]
pub struct SecondFactorState {
    /// The active secret, when TOTP is enabled.
    pub active: Option<Sealed>,
    /// A pending secret that has not expired.
    pub pending: Option<Sealed>,
    /// The last accepted TOTP time step (kept across re-enrolment).
    pub last_step: Option<u64>,
    /// Unused recovery codes.
    pub unused_recovery_codes: u32,
    /// Live (unexpired, unrevoked) remembered devices.
    pub trusted_devices: u32,
}

/// A TOTP enrolment being confirmed, applied in one transaction.
#[derive(Debug)]
pub struct TotpConfirmation<'a> {
    /// The enrolling account.
    pub user: UserId,
    /// The pending secret the code was checked against.
    pub pending: &'a Sealed,
    /// The same secret, sealed for its active purpose.
    pub active: &'a Sealed,
    /// The time step of the confirming code (spent).
    pub step: u64,
    /// Hashes of the fresh recovery codes.
    pub recovery_hashes: &'a [String],
    /// Confirmation time.
    pub now: OffsetDateTime,
    /// The restricted session that confirmed, lifted in the same write.
    pub upgrade: Option<&'a SessionUpgrade>,
}

/// TOTP enrolment and recovery codes.
pub trait SecondFactorStore: Send + Sync {
    /// The user's second-factor state as of `now`.
    fn second_factor(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<SecondFactorState>> + Send;
    /// Stores a pending secret, replacing any earlier one.
    fn put_pending_totp(
        &self,
        user: UserId,
        sealed: &Sealed,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// In one transaction: removes the pending secret (only if it is still
    /// `pending`), spends the step, stores the active secret, replaces the
    /// recovery codes, and applies the session upgrade when there is one.
    fn confirm_totp(
        &self,
        confirmation: &TotpConfirmation<'_>,
    ) -> impl Future<Output = Result<(), CompletionError>> + Send;
    /// The user's unused recovery codes: row ids and hashes.
    fn unused_recovery_codes(
        &self,
        user: UserId,
    ) -> impl Future<Output = StoreResult<Vec<(RecoveryCodeId, String)>>> + Send;
}
