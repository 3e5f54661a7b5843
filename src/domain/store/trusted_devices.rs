//! The trusted-device aggregate: remembered devices ("remember this
//! device"), each a token that stands in for the second factor at Login.
//!
//! A device is written in the transaction that issues the session it was
//! remembered with (`NewSession::remember`), and its use is checked and
//! recorded in the transaction that issues a session with it (a
//! `SecondFactorProof::TrustedDevice`); this port holds the rest.

use std::future::Future;

use time::OffsetDateTime;

use super::StoreResult;
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{TrustedDeviceId, UserId};

/// A device to remember, stored with the session it comes with.
#[derive(Debug, Clone)]
pub struct NewTrustedDevice {
    /// Row id.
    pub id: TrustedDeviceId,
    /// Keyed hash of the device token.
    pub token_hash: TokenHash,
    /// End of life.
    pub expires_at: OffsetDateTime,
    /// Live devices the user may hold, this one included; storing it ends
    /// the oldest beyond that, serialised per user so the cap holds under
    /// concurrent remembers.
    pub max_per_user: u32,
}

/// A live remembered device, as found by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedDeviceRecord {
    /// Row id.
    pub id: TrustedDeviceId,
    /// The user it was remembered for.
    pub user_id: UserId,
}

/// Remembered devices: found by token, revoked in bulk.
pub trait TrustedDeviceStore: Send + Sync {
    /// Finds a live (unexpired, unrevoked) device by token hash, whoever it
    /// belongs to: one indexed read, the same for every token.
    fn trusted_device_by_hash(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Option<TrustedDeviceRecord>>> + Send;
    /// Revokes every device of `user`; returns how many were live. What
    /// ForgetTrustedDevices does, and what the admin's DisableUser and
    /// ResetSecondFactors call.
    fn revoke_trusted_devices(
        &self,
        user: UserId,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<u64>> + Send;
}
