//! Public identifiers: random UUIDs, shown as lower-case hyphenated strings,
//! never reused.

use std::fmt;
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> Self {
                Self(Uuid::new_v4())
            }

            /// Reads an id from its string form.
            pub fn parse(s: &str) -> Option<Self> {
                Uuid::parse_str(s).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// An account's immutable id; backends key on it.
    UserId
);
uuid_id!(
    /// A session's public id (not a secret).
    SessionId
);
uuid_id!(
    /// A login challenge's internal id.
    ChallengeId
);
uuid_id!(
    /// A recovery code's row id (not the code).
    RecoveryCodeId
);
uuid_id!(
    /// A remembered device's row id (not its token).
    TrustedDeviceId
);
uuid_id!(
    /// A reserved attempt of a failure budget (one credential check in flight).
    AttemptId
);
