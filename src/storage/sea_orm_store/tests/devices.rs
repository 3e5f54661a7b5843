//! Remembered devices at the store: the cap never ends the device being
//! remembered, and a device revoked before the session's transaction
//! issues nothing.

use time::Duration;

use super::{SeaOrmStore, name, session, store, t0, user};
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{AttemptId, TrustedDeviceId, UserId};
use crate::domain::second_factor::SecondFactorProof;
use crate::domain::store::{
    CompletionError, LoginProof, NewTrustedDevice, SessionStore as _, SettledAttempt,
    TrustedDeviceStore as _,
};

fn settle() -> SettledAttempt {
    SettledAttempt {
        attempt: AttemptId::generate(),
        name: name(),
        gate: None,
    }
}

/// A password login that remembers a device with hash `[tag; 32]`.
async fn remember(store: &SeaOrmStore, user: UserId, tag: u8, cap: u32) -> TrustedDeviceId {
    let id = TrustedDeviceId::generate();
    let mut session = session(user);
    session.token_hash = TokenHash([tag.wrapping_add(100); 32]);
    session.remember = Some(NewTrustedDevice {
        id,
        token_hash: TokenHash([tag; 32]),
        expires_at: t0() + Duration::DAY,
        max_per_user: cap,
    });
    let proof = LoginProof::Password {
        verified_hash: "hash".into(),
    };
    store
        .complete_login(&session, &proof, &settle(), 100)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn remembering_beyond_the_cap_at_one_instant_keeps_the_new_device() {
    let store = store().await;
    let id = user(&store, "hash").await;

    let mut kept_every_new_one = true;
    for tag in 1..=10 {
        let device = remember(&store, id, tag, 3).await;
        let found = store
            .trusted_device_by_hash(&TokenHash([tag; 32]), t0())
            .await
            .unwrap();
        kept_every_new_one &= found.is_some_and(|d| d.id == device);
    }

    assert!(kept_every_new_one, "the device just remembered survives");
    assert_eq!(
        store
            .live_devices(id, super::super::ms(t0()))
            .await
            .unwrap(),
        3
    );
}

#[tokio::test]
async fn a_device_revoked_before_the_session_commits_issues_no_session() {
    let store = store().await;
    let id = user(&store, "hash").await;
    let device = remember(&store, id, 1, 3).await;
    let revoked = store.revoke_trusted_devices(id, t0()).await.unwrap();

    let mut late = session(id);
    late.token_hash = TokenHash([42; 32]);
    let proof = LoginProof::PasswordAnd {
        verified_hash: "hash".into(),
        proof: SecondFactorProof::TrustedDevice(device),
    };
    let answer = store.complete_login(&late, &proof, &settle(), 100).await;

    assert_eq!(revoked, 1);
    assert!(
        matches!(answer, Err(CompletionError::DeviceGone)),
        "{answer:?}"
    );
}
