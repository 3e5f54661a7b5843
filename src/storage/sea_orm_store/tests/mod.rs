//! Store-level interleavings of the failure budget and the conditional
//! writes, on an in-memory SQLite database with the real migrations. The
//! failure budget's are here; the single-use rules' in [`single_use`].

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cancellation;
mod devices;
mod single_use;

use time::{Duration, OffsetDateTime};

use super::SeaOrmStore;
use crate::crypto::tokens::TokenHash;
use crate::domain::ids::{AttemptId, SessionId, UserId};
use crate::domain::store::{
    ClientInfo, CompletionError, LockRule, LoginProof, NewSession, Reservation, SettledAttempt,
    StepUpEffect, UserRecord,
};
use crate::domain::store::{
    FailureBudgetStore as _, SessionStore as _, StepUpStore as _, UserStore as _,
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
        remember: None,
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
        gate: None,
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
        gate: None,
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

#[tokio::test]
async fn a_gated_check_counts_like_a_reservation_and_is_refused_where_one_would_be() {
    use crate::domain::store::{BudgetGate, Refusal};
    let store = store().await;
    let id = user(&store, "hash").await;
    let gate = BudgetGate {
        challenge: None,
        threshold: RULE.threshold,
    };
    let gated = || SettledAttempt {
        attempt: AttemptId::generate(),
        name: name(),
        gate: Some(gate),
    };
    let password = LoginProof::Password {
        verified_hash: "hash".into(),
    };

    // A check in flight and a gated failure use the budget of two: the next
    // gated verdict, right or wrong, waits (Busy) instead of being judged.
    let (in_flight, granted) = reserve(&store, t0()).await;
    assert_eq!(granted, Reservation::Granted);
    let first = store
        .record_gated_failure(&name(), gate, t0(), RULE)
        .await
        .unwrap();
    assert_eq!(first, Ok(None));
    let busy = store
        .record_gated_failure(&name(), gate, t0(), RULE)
        .await
        .unwrap();
    assert_eq!(busy, Err(Refusal::Busy));
    let refused = store
        .complete_login(&session(id), &password, &gated(), 10)
        .await;
    assert!(matches!(
        refused,
        Err(CompletionError::Refused(Refusal::Busy))
    ));

    // The check in flight fails too: locked, and a gated right answer is
    // refused with the lock's end; nothing was issued.
    store
        .record_failure(in_flight, &name(), t0(), RULE)
        .await
        .unwrap();
    let locked = store
        .complete_login(&session(id), &password, &gated(), 10)
        .await;
    let Err(CompletionError::Refused(Refusal::Locked { until })) = locked else {
        panic!("expected a lock, got {locked:?}");
    };
    assert_eq!(until, t0() + Duration::minutes(15));

    // After the lock, a gated right answer issues the session and resets
    // the budget in the same write.
    let later = t0() + Duration::minutes(16);
    let mut after_lock = session(id);
    after_lock.created_at = later;
    store
        .complete_login(&after_lock, &password, &gated(), 10)
        .await
        .unwrap();
    let (_, fresh) = reserve(&store, later).await;
    assert_eq!(fresh, Reservation::Granted);
    let (_, second) = reserve(&store, later).await;
    assert_eq!(second, Reservation::Granted, "the budget was reset");
}
