//! The single-use rules under interleaving: TOTP steps, recovery codes,
//! challenges, and a challenge's tries.

use time::Duration;

use super::{RULE, SeaOrmStore, name, session, store, t0, user};
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{AttemptId, ChallengeId, UserId};
use crate::domain::store::{
    ChallengeStore as _, FailureBudgetStore as _, SecondFactorStore as _, SessionStore as _,
    StepUpStore as _,
};
use crate::domain::store::{
    ChallengeTry, CompletionError, LockRule, LoginProof, Reservation, SettledAttempt, StepUpEffect,
};

/// A sealed value the store treats as opaque bytes.
fn sealed(byte: u8) -> crate::crypto::keyring::Sealed {
    crate::crypto::keyring::Sealed {
        key_id: "k1".into(),
        nonce: vec![byte; 12],
        ciphertext: vec![byte; 36],
    }
}

/// A user with TOTP confirmed at `step` and two recovery codes.
async fn user_with_totp(store: &SeaOrmStore, step: u64) -> UserId {
    let id = user(store, "hash").await;
    store
        .put_pending_totp(id, &sealed(1), t0(), t0() + Duration::minutes(10))
        .await
        .unwrap();
    store
        .confirm_totp(&crate::domain::store::TotpConfirmation {
            user: id,
            pending: &sealed(1),
            active: &sealed(2),
            step,
            recovery_hashes: &["code-a".into(), "code-b".into()],
            now: t0(),
            upgrade: None,
        })
        .await
        .unwrap();
    id
}

async fn challenge(store: &SeaOrmStore, user: UserId, tag: u8) -> crate::domain::ids::ChallengeId {
    let challenge = crate::domain::store::NewChallenge {
        id: crate::domain::ids::ChallengeId::generate(),
        user_id: user,
        token_hash: TokenHash([tag; 32]),
        created_at: t0(),
        expires_at: t0() + Duration::minutes(5),
    };
    store.insert_challenge(&challenge, "hash").await.unwrap();
    challenge.id
}

/// Completes `challenge` with `proof`, as two calls that both passed their
/// checks on the same earlier read would.
async fn complete(
    store: &SeaOrmStore,
    user: UserId,
    challenge: crate::domain::ids::ChallengeId,
    proof: crate::domain::second_factor::SecondFactorProof,
) -> Result<(), CompletionError> {
    let proof = LoginProof::SecondFactor { challenge, proof };
    let settle = SettledAttempt {
        attempt: AttemptId::generate(),
        name: name(),
        gate: None,
    };
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(100);
    let mut session = session(user);
    session.token_hash = TokenHash([NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed); 32]);
    store.complete_login(&session, &proof, &settle, 10).await
}

async fn sessions_of(store: &SeaOrmStore, user: UserId) -> i64 {
    let db = store.connection();
    let row = sea_orm::ConnectionTrait::query_one_raw(
        db,
        sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT count(*) FROM sessions WHERE user_id = '{user}'"),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn a_totp_step_is_spent_once_whichever_challenge_spends_it() {
    use crate::domain::second_factor::SecondFactorProof::TotpStep;
    let store = store().await;
    let id = user_with_totp(&store, 100).await;
    let (a, b, c, d) = (
        challenge(&store, id, 1).await,
        challenge(&store, id, 2).await,
        challenge(&store, id, 3).await,
        challenge(&store, id, 4).await,
    );
    // Both calls read `last_step = 100` and judged step 101 fresh.
    let read = store.second_factor(id, t0()).await.unwrap().last_step;

    let first = complete(&store, id, a, TotpStep(101)).await;
    let second = complete(&store, id, b, TotpStep(101)).await;
    let older = complete(&store, id, c, TotpStep(100)).await;
    let later = complete(&store, id, d, TotpStep(102)).await;

    assert_eq!(read, Some(100));
    assert!(first.is_ok(), "{first:?}");
    assert!(
        matches!(second, Err(CompletionError::StepUsed)),
        "{second:?}"
    );
    assert!(matches!(older, Err(CompletionError::StepUsed)), "{older:?}");
    assert!(later.is_ok(), "{later:?}");
    assert_eq!(
        store.second_factor(id, t0()).await.unwrap().last_step,
        Some(102)
    );
    assert_eq!(sessions_of(&store, id).await, 2, "losers issue no session");
}

#[tokio::test]
async fn the_confirming_step_counts_as_spent_for_logins() {
    use crate::domain::second_factor::SecondFactorProof::TotpStep;
    let store = store().await;
    let id = user_with_totp(&store, 100).await;
    let a = challenge(&store, id, 1).await;

    let replay = complete(&store, id, a, TotpStep(100)).await;

    assert!(
        matches!(replay, Err(CompletionError::StepUsed)),
        "{replay:?}"
    );
    // The loser's transaction rolled back: its challenge is still there.
    assert!(complete(&store, id, a, TotpStep(101)).await.is_ok());
}

#[tokio::test]
async fn a_recovery_code_is_spent_once_whichever_challenge_spends_it() {
    use crate::domain::second_factor::SecondFactorProof::RecoveryCode;
    let store = store().await;
    let id = user_with_totp(&store, 100).await;
    let (a, b) = (
        challenge(&store, id, 1).await,
        challenge(&store, id, 2).await,
    );
    // Both calls read the same unused code and verified it.
    let codes = store.unused_recovery_codes(id).await.unwrap();
    let code = codes[0].0;

    let first = complete(&store, id, a, RecoveryCode(code)).await;
    let second = complete(&store, id, b, RecoveryCode(code)).await;

    assert_eq!(codes.len(), 2);
    assert!(first.is_ok(), "{first:?}");
    assert!(
        matches!(second, Err(CompletionError::CodeUsed)),
        "{second:?}"
    );
    let left = store.unused_recovery_codes(id).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].0, code);
    assert_eq!(sessions_of(&store, id).await, 1);
}

#[tokio::test]
async fn a_challenge_is_spent_once_and_the_loser_spends_no_factor() {
    use crate::domain::second_factor::SecondFactorProof::{RecoveryCode, TotpStep};
    let store = store().await;
    let id = user_with_totp(&store, 100).await;
    let a = challenge(&store, id, 1).await;
    let code = store.unused_recovery_codes(id).await.unwrap()[0].0;

    // A TOTP code and a recovery code answer one challenge at once.
    let by_totp = complete(&store, id, a, TotpStep(101)).await;
    let by_code = complete(&store, id, a, RecoveryCode(code)).await;
    let step_again = complete(&store, id, a, TotpStep(102)).await;

    assert!(by_totp.is_ok(), "{by_totp:?}");
    assert!(
        matches!(by_code, Err(CompletionError::ChallengeGone)),
        "{by_code:?}"
    );
    assert!(matches!(step_again, Err(CompletionError::ChallengeGone)));
    assert_eq!(
        store.unused_recovery_codes(id).await.unwrap().len(),
        2,
        "the losing recovery code was not spent"
    );
    assert_eq!(
        store.second_factor(id, t0()).await.unwrap().last_step,
        Some(101)
    );
    assert_eq!(sessions_of(&store, id).await, 1);
}

#[tokio::test]
async fn a_step_up_with_a_spent_step_applies_nothing() {
    use crate::domain::second_factor::SecondFactorProof::TotpStep;
    let store = store().await;
    let id = user_with_totp(&store, 100).await;
    let regenerate = [StepUpEffect::ReplaceRecoveryCodes(vec!["new-code".into()])];

    let replay = store
        .commit_step_up(
            id,
            Some(&TotpStep(100)),
            &regenerate,
            AttemptId::generate(),
            t0(),
        )
        .await;
    let codes_after_replay = store.unused_recovery_codes(id).await.unwrap().len();
    let fresh = store
        .commit_step_up(
            id,
            Some(&TotpStep(101)),
            &regenerate,
            AttemptId::generate(),
            t0(),
        )
        .await;

    assert!(
        matches!(replay, Err(CompletionError::StepUsed)),
        "{replay:?}"
    );
    assert_eq!(
        codes_after_replay, 2,
        "the refused step-up replaced nothing"
    );
    assert!(fresh.is_ok(), "{fresh:?}");
    assert_eq!(store.unused_recovery_codes(id).await.unwrap().len(), 1);
}

/// Reserves a budget attempt (a loose budget of 100) holding a try of
/// `challenge`.
async fn reserve_try(store: &SeaOrmStore, challenge: ChallengeId) -> (AttemptId, Reservation) {
    let id = AttemptId::generate();
    let try_ = ChallengeTry {
        challenge,
        max_failures: 5,
    };
    let answer = store
        .reserve_attempt(
            &name(),
            id,
            Some(try_),
            t0(),
            t0() + Duration::seconds(30),
            100,
        )
        .await
        .unwrap();
    (id, answer)
}

#[tokio::test]
async fn a_challenge_gives_at_most_five_tries_judged_or_in_flight() {
    let store = store().await;
    let id = user_with_totp(&store, 100).await;
    let judged = challenge(&store, id, 1).await;
    let in_flight = challenge(&store, id, 2).await;
    let loose = LockRule {
        threshold: 100,
        ..RULE
    };
    for _ in 0..5 {
        let (attempt, granted) = reserve_try(&store, judged).await;
        assert_eq!(granted, Reservation::Granted);
        store
            .record_failure(attempt, &name(), t0(), loose)
            .await
            .unwrap();
    }
    let (_, sixth) = reserve_try(&store, judged).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(reserve_try(&store, in_flight).await.0);
    }
    let (_, while_held) = reserve_try(&store, in_flight).await;
    store.release_attempt(held[0]).await.unwrap();
    let (_, after_release) = reserve_try(&store, in_flight).await;

    assert_eq!(
        sixth,
        Reservation::ChallengeGone,
        "five wrong codes kill it"
    );
    assert_eq!(
        while_held,
        Reservation::ChallengeGone,
        "tries in flight count"
    );
    assert_eq!(
        after_release,
        Reservation::Granted,
        "an unjudged check gives its try back"
    );
}
