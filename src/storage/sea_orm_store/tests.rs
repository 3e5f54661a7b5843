//! Store-level interleavings of the failure budget and the conditional
//! writes, on an in-memory SQLite database with the real migrations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use time::{Duration, OffsetDateTime};

use super::SeaOrmStore;
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{AttemptId, ChallengeId, SessionId, UserId};
use crate::domain::store::{
    ChallengeStore as _, FailureBudgetStore as _, SecondFactorStore as _, SessionStore as _,
    StepUpStore as _, UserStore as _,
};
use crate::domain::store::{
    ChallengeTry, ClientInfo, CompletionError, LockRule, LoginProof, NewSession, Reservation,
    SettledAttempt, StepUpEffect, UserRecord,
};
use crate::domain::username::Username;

const RULE: LockRule = LockRule {
    threshold: 2,
    base: Duration::minutes(15),
    doubling: true,
    max: Duration::DAY,
};

async fn store() -> SeaOrmStore {
    let db = crate::storage::connect("sqlite::memory:", 1).await.unwrap();
    crate::storage::migrate(&db).await.unwrap();
    SeaOrmStore::new(db)
}

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn name() -> Username {
    Username::parse("alice").unwrap()
}

async fn reserve(store: &SeaOrmStore, at: OffsetDateTime) -> (AttemptId, Reservation) {
    let id = AttemptId::generate();
    let answer = store
        .reserve_attempt(
            &name(),
            id,
            None,
            at,
            at + Duration::seconds(30),
            RULE.threshold,
        )
        .await
        .unwrap();
    (id, answer)
}

async fn user(store: &SeaOrmStore, hash: &str) -> UserId {
    let user = UserRecord {
        id: UserId::generate(),
        username: name(),
        password_hash: hash.into(),
        created_at: t0(),
        disabled_at: None,
    };
    store.insert_user(&user).await.unwrap();
    user.id
}

fn session(user: UserId) -> NewSession {
    NewSession {
        id: SessionId::generate(),
        user_id: user,
        token_hash: TokenHash([7; 32]),
        created_at: t0(),
        expires_at: t0() + Duration::DAY,
        amr: vec!["pwd".into()],
        client: ClientInfo::default(),
    }
}

#[tokio::test]
async fn checks_in_flight_make_the_budget_busy_not_locked_until_settled_or_leased_out() {
    let store = store().await;
    let (first, a) = reserve(&store, t0()).await;
    let (second, b) = reserve(&store, t0()).await;
    let (_, c) = reserve(&store, t0()).await;
    store.release_attempt(first).await.unwrap();
    let (_never_settled, d) = reserve(&store, t0()).await;
    store
        .record_failure(second, &name(), t0(), RULE)
        .await
        .unwrap();
    // One failure and one check in flight use the budget of two.
    let (_, e) = reserve(&store, t0()).await;
    // The third reservation is never settled (a crashed process): its
    // lease of 30 s ends and it stops counting.
    let (_, f) = reserve(&store, t0() + Duration::seconds(31)).await;

    assert_eq!([a, b], [Reservation::Granted; 2]);
    assert_eq!(c, Reservation::Busy, "two in flight use the budget up");
    assert_eq!(d, Reservation::Granted, "a release frees its attempt");
    assert_eq!(e, Reservation::Busy);
    assert_eq!(
        f,
        Reservation::Granted,
        "an expired lease counts as nothing"
    );
}

#[tokio::test]
async fn reaching_the_threshold_locks_with_an_end_and_the_next_failure_locks_again_longer() {
    let store = store().await;
    for _ in 0..2 {
        let (id, granted) = reserve(&store, t0()).await;
        assert_eq!(granted, Reservation::Granted);
        store.record_failure(id, &name(), t0(), RULE).await.unwrap();
    }
    let (_, during) = reserve(&store, t0() + Duration::minutes(14)).await;
    let after_first = t0() + Duration::minutes(16);
    let (id, after) = reserve(&store, after_first).await;
    let relocked = store
        .record_failure(id, &name(), after_first, RULE)
        .await
        .unwrap();

    assert_eq!(
        during,
        Reservation::Locked {
            until: t0() + Duration::minutes(15)
        }
    );
    assert_eq!(after, Reservation::Granted, "one attempt after the lock");
    assert_eq!(
        relocked,
        Some(after_first + Duration::minutes(30)),
        "second-factor locks double"
    );
}

#[tokio::test]
async fn failures_stored_above_the_threshold_never_refuse_an_unlocked_name() {
    let store = store().await;
    // A row as an older version (or a higher threshold) could leave it:
    // over the threshold, with no lock.
    let db = store.connection();
    sea_orm::ConnectionTrait::execute_unprepared(
        db,
        "INSERT INTO failure_budgets (name, failures, lock_level, locked_until, updated_at) \
         VALUES ('alice', 9, 0, NULL, 0)",
    )
    .await
    .unwrap();

    let (_, answer) = reserve(&store, t0()).await;

    assert_eq!(answer, Reservation::Granted);
}

#[tokio::test]
async fn a_password_login_is_refused_once_a_password_change_committed() {
    let store = store().await;
    let id = user(&store, "old-hash").await;
    let change = [StepUpEffect::SetPasswordHash("new-hash".into())];
    let settle = || SettledAttempt {
        attempt: AttemptId::generate(),
        name: name(),
    };
    store
        .commit_step_up(id, None, &change, AttemptId::generate(), t0())
        .await
        .unwrap();

    let stale = LoginProof::Password {
        verified_hash: "old-hash".into(),
    };
    let current = LoginProof::Password {
        verified_hash: "new-hash".into(),
    };
    let refused = store
        .complete_login(&session(id), &stale, &settle(), 10)
        .await;
    let accepted = store
        .complete_login(&session(id), &current, &settle(), 10)
        .await;

    assert!(matches!(refused, Err(CompletionError::CredentialsChanged)));
    assert!(accepted.is_ok(), "{accepted:?}");
}

#[tokio::test]
async fn a_completed_login_resets_failures_and_the_lock_level() {
    let store = store().await;
    let id = user(&store, "hash").await;
    for _ in 0..2 {
        let (attempt, _) = reserve(&store, t0()).await;
        store
            .record_failure(attempt, &name(), t0(), RULE)
            .await
            .unwrap();
    }
    let later = t0() + Duration::minutes(16);
    let (attempt, _) = reserve(&store, later).await;
    let settle = SettledAttempt {
        attempt,
        name: name(),
    };
    let proof = LoginProof::Password {
        verified_hash: "hash".into(),
    };
    store
        .complete_login(&session(id), &proof, &settle, 10)
        .await
        .unwrap();
    let (next, _) = reserve(&store, later).await;
    let (_, also) = reserve(&store, later).await;
    let lock = store
        .record_failure(next, &name(), later, RULE)
        .await
        .unwrap();

    assert_eq!(also, Reservation::Granted, "the full budget is back");
    assert_eq!(lock, None, "one failure does not lock after a reset");
}

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
        .confirm_totp(
            id,
            &sealed(1),
            &sealed(2),
            step,
            &["code-a".into(), "code-b".into()],
            t0(),
        )
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
