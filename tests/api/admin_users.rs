//! Admin operations on accounts: what each one changes, seen through the
//! public API at once.

use prost::Message as _;
use tonic::Code;
use warden::grpc::pb;

use crate::helpers::{
    PASSWORD, TestServer, assert_invalid, assert_status, bearer, contains, independent_totp,
};

fn id_of(user: &pb::User) -> &str {
    &user.user_id
}

#[tokio::test]
async fn get_user_shows_the_account_by_id_and_by_name() {
    let mut server = TestServer::start_admin().await;
    let id = server.register("Shown", PASSWORD).await;
    let before = server.admin_user(&id).await;
    assert_eq!(before.username, "shown");
    assert!(before.last_login_at.is_none());
    assert!(before.disabled_at.is_none() && before.locked_until.is_none());
    assert_eq!((before.live_sessions, before.trusted_devices), (0, 0));

    let (token, _) = {
        let s = server.login_session("shown", PASSWORD).await;
        (s.token, s.session_id)
    };
    server.enable_totp(&token, PASSWORD).await;
    let by_name = server
        .admin()
        .await
        .get_user(pb::GetUserRequest {
            user: Some(pb::get_user_request::User::Username("SHOWN".into())),
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(id_of(&by_name), id);
    assert!(by_name.totp_enabled);
    assert_eq!(by_name.remaining_recovery_codes, 10);
    assert_eq!(by_name.live_sessions, 1);
    let login = by_name
        .last_login_at
        .expect("a completed login is recorded");
    assert_eq!(login.seconds, crate::helpers::epoch().unix_timestamp());
    server.stop().await;
}

#[tokio::test]
async fn last_login_is_recorded_after_totp_and_after_a_recovery_code() {
    let mut server = TestServer::start_admin().await;
    let (id, token) = server.signed_in("traveller", PASSWORD).await;
    let (secret, codes) = server.enable_totp(&token, PASSWORD).await;

    server.clock.advance(std::time::Duration::from_secs(60));
    let challenge = server.login_challenge("traveller", PASSWORD).await;
    let code = independent_totp(&secret, server.now());
    server
        .verify_challenge(&challenge.challenge_token, &code)
        .await
        .unwrap();
    let after_totp = server.admin_user(&id).await.last_login_at.unwrap().seconds;
    server.clock.advance(std::time::Duration::from_secs(60));
    let challenge = server.login_challenge("traveller", PASSWORD).await;
    server
        .use_recovery_code(&challenge.challenge_token, &codes[0])
        .await
        .unwrap();
    let after_code = server.admin_user(&id).await.last_login_at.unwrap().seconds;

    let start = crate::helpers::epoch().unix_timestamp();
    assert_eq!(after_totp, start + 60);
    assert_eq!(after_code, start + 120);
    server.stop().await;
}

#[tokio::test]
async fn a_disabled_account_logs_in_like_an_unknown_name_until_enabled() {
    let mut server = TestServer::start_admin().await;
    let (id, token) = server.signed_in("leaver", PASSWORD).await;
    let (_, second) = server.signed_in("leaver2", PASSWORD).await;

    let disabled = server
        .admin()
        .await
        .disable_user(pb::DisableUserRequest {
            user_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    assert!(disabled.disabled_at.is_some());
    assert_eq!(disabled.live_sessions, 0);
    assert!(!server.is_live(&token).await, "the session ended at once");
    assert!(server.is_live(&second).await, "other accounts keep theirs");
    let as_disabled = server.login("leaver", PASSWORD).await.unwrap_err();
    let as_unknown = server.login("never-was", PASSWORD).await.unwrap_err();
    assert_status(&as_disabled, Code::Unauthenticated, "INVALID_CREDENTIALS");
    assert_eq!(as_disabled.code(), as_unknown.code());
    assert_eq!(as_disabled.message(), as_unknown.message());
    assert_eq!(as_disabled.details(), as_unknown.details());
    // The name stays taken.
    let taken = server
        .client
        .register(pb::RegisterRequest {
            username: "leaver".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_status(&taken, Code::AlreadyExists, "USERNAME_TAKEN");

    let enabled = server
        .admin()
        .await
        .enable_user(pb::EnableUserRequest {
            user_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(enabled.disabled_at.is_none());
    // Two failed logins above count against the name, like any other.
    let session = server.login_session("leaver", PASSWORD).await;
    assert!(server.is_live(&session.token).await);
    server.stop().await;
}

#[tokio::test]
async fn an_open_challenge_of_a_disabled_account_cannot_complete() {
    let mut server = TestServer::start_admin().await;
    let (id, token) = server.signed_in("halfway", PASSWORD).await;
    let (secret, codes) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(std::time::Duration::from_secs(60));
    let first = server.login_challenge("halfway", PASSWORD).await;
    let second = server.login_challenge("halfway", PASSWORD).await;

    server
        .admin()
        .await
        .disable_user(pb::DisableUserRequest { user_id: id })
        .await
        .unwrap();

    let code = independent_totp(&secret, server.now());
    let status = server
        .verify_challenge(&first.challenge_token, &code)
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "CHALLENGE_INVALID");
    let status = server
        .use_recovery_code(&second.challenge_token, &codes[0])
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "CHALLENGE_INVALID");
    server.stop().await;
}

/// Fails `username`'s logins until the name is locked.
async fn lock_out(server: &mut TestServer, username: &str) {
    for _ in 0..5 {
        server
            .login(username, "not the password")
            .await
            .unwrap_err();
    }
    let locked = server.login(username, PASSWORD).await.unwrap_err();
    assert_status(&locked, Code::ResourceExhausted, "ACCOUNT_LOCKED");
}

#[tokio::test]
async fn unlock_lets_a_locked_user_in_at_once() {
    let mut server = TestServer::start_admin().await;
    let id = server.register("locked", PASSWORD).await;
    lock_out(&mut server, "locked").await;
    let seen = server.admin_user(&id).await;
    let until = seen.locked_until.expect("the lock shows");
    assert_eq!(
        until.seconds,
        crate::helpers::epoch().unix_timestamp() + 900
    );

    let unlocked = server
        .admin()
        .await
        .unlock_user(pb::UnlockUserRequest {
            user_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    assert!(unlocked.locked_until.is_none());
    let session = server.login_session("locked", PASSWORD).await;
    assert!(server.is_live(&session.token).await);
    // The whole budget is back, not only the lock: four failures do not lock.
    for _ in 0..4 {
        server
            .login("locked", "not the password")
            .await
            .unwrap_err();
    }
    server.login_session("locked", PASSWORD).await;
    server.stop().await;
}

#[tokio::test]
async fn reset_second_factors_lets_a_user_who_lost_everything_in_with_the_password() {
    let mut server = TestServer::start_admin().await;
    let (id, token) = server.signed_in("forgetful", PASSWORD).await;
    let (old_secret, codes) = server.enable_totp(&token, PASSWORD).await;
    server.clock.advance(std::time::Duration::from_secs(60));
    let open = server.login_challenge("forgetful", PASSWORD).await;

    let reset = server
        .admin()
        .await
        .reset_second_factors(pb::ResetSecondFactorsRequest {
            user_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    assert!(!reset.totp_enabled);
    assert_eq!(
        (reset.remaining_recovery_codes, reset.live_sessions),
        (0, 0)
    );
    assert!(!server.is_live(&token).await, "every session ended");
    let status = server
        .use_recovery_code(&open.challenge_token, &codes[0])
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "CHALLENGE_INVALID");
    // The password alone now signs in, and TOTP can be enrolled afresh.
    let session = server.login_session("forgetful", PASSWORD).await;
    let (new_secret, new_codes) = server.enable_totp(&session.token, PASSWORD).await;
    assert_ne!(new_secret, old_secret);
    assert_eq!(new_codes.len(), 10);
    let account = server.account(&session.token).await;
    assert!(account.totp_enabled);
    server.stop().await;
}

#[tokio::test]
async fn list_sessions_shows_live_sessions_and_never_a_token() {
    let mut server = TestServer::start_admin().await;
    let (id, first) = server.signed_in("busy", PASSWORD).await;
    let mut client = server.client.clone();
    let mut request = tonic::Request::new(pb::LoginRequest {
        username: "busy".into(),
        password: PASSWORD.into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("user-agent", "admin-test/1.0".parse().unwrap());
    let Some(pb::login_response::Outcome::Session(second)) =
        client.login(request).await.unwrap().into_inner().outcome
    else {
        panic!("expected a session");
    };
    let logged_out = server.login_session("busy", PASSWORD).await;
    server
        .client
        .logout(bearer(pb::LogoutRequest {}, &logged_out.token))
        .await
        .unwrap();

    let listed = server
        .admin()
        .await
        .list_sessions(pb::ListSessionsRequest { user_id: id })
        .await
        .unwrap()
        .into_inner();

    let ids: Vec<_> = listed
        .sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&second.session_id.as_str()));
    let shown = listed
        .sessions
        .iter()
        .find(|s| s.session_id == second.session_id)
        .unwrap();
    assert_eq!(shown.amr, ["pwd"]);
    assert_eq!(shown.client_address, "127.0.0.1");
    assert!(shown.user_agent.starts_with("admin-test/1.0"), "{shown:?}");
    assert_eq!(shown.expires_at, second.expires_at);
    let bytes = listed.encode_to_vec();
    for token in [&first, &second.token, &logged_out.token] {
        let body = token.split_once('_').unwrap().1;
        assert!(!contains(&bytes, token.as_bytes()), "a token in the answer");
        assert!(
            !contains(&bytes, body.as_bytes()),
            "a token body in the answer"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn revoking_sessions_takes_effect_at_once() {
    let mut server = TestServer::start_admin().await;
    let (id, one) = server.signed_in("revoked", PASSWORD).await;
    let two = server.login_session("revoked", PASSWORD).await;
    let three = server.login_session("revoked", PASSWORD).await;
    let mut admin = server.admin().await;

    admin
        .revoke_session(pb::RevokeSessionRequest {
            session_id: two.session_id.clone(),
        })
        .await
        .unwrap();
    assert!(!server.is_live(&two.token).await);
    assert!(server.is_live(&one).await && server.is_live(&three.token).await);
    let again = admin
        .revoke_session(pb::RevokeSessionRequest {
            session_id: two.session_id.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&again, Code::NotFound, "USER_NOT_FOUND");

    let all = admin
        .revoke_all_sessions(pb::RevokeAllSessionsRequest {
            user_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.revoked, 2);
    assert!(!server.is_live(&one).await && !server.is_live(&three.token).await);
    let none = admin
        .revoke_all_sessions(pb::RevokeAllSessionsRequest { user_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.revoked, 0);
    server.stop().await;
}

#[tokio::test]
async fn list_users_pages_in_name_order_with_a_prefix() {
    let mut server = TestServer::start_admin().await;
    for name in ["carol", "alice", "bob", "alfred", "al_x", "alxx"] {
        server.register(name, PASSWORD).await;
    }
    let mut admin = server.admin().await;
    let page = |size, token: &str, prefix: &str| pb::ListUsersRequest {
        page_size: size,
        page_token: token.into(),
        username_prefix: prefix.into(),
    };

    let first = admin
        .list_users(page(2, "", ""))
        .await
        .unwrap()
        .into_inner();
    let names = |r: &pb::ListUsersResponse| -> Vec<String> {
        r.users.iter().map(|u| u.username.clone()).collect()
    };
    assert_eq!(names(&first), ["al_x", "alfred"]);
    let second = admin
        .list_users(page(2, &first.next_page_token, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&second), ["alice", "alxx"]);
    let last = admin
        .list_users(page(2, &second.next_page_token, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&last), ["bob", "carol"]);
    assert!(last.next_page_token.is_empty(), "no token to an empty page");
    // '_' in a prefix is a character, not a wildcard.
    let prefixed = admin
        .list_users(page(0, "", "AL_"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(&prefixed), ["al_x"]);

    let too_big = admin.list_users(page(501, "", "")).await.unwrap_err();
    assert_invalid(&too_big, "page_size");
    let forged = admin
        .list_users(page(2, "bm90LWEtdG9rZW4", ""))
        .await
        .unwrap_err();
    assert_invalid(&forged, "page_token");
    let odd = admin.list_users(page(2, "", "a%")).await.unwrap_err();
    assert_invalid(&odd, "username_prefix");
    server.stop().await;
}
