//! Admin actions overlapping with logins: no session survives a disable,
//! an unlock never corrupts checks in flight, a cancelled admin call is
//! all or nothing, and a replica sees what another one's admin did.

use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use warden::grpc::pb::{self, auth_service_client::AuthServiceClient};

use crate::helpers::{PASSWORD, TestServer, assert_status, count, race, test_config, with_admin};

fn login_request(username: &str, password: &str) -> pb::LoginRequest {
    pb::LoginRequest {
        username: username.into(),
        password: password.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_session_survives_a_disable_racing_with_logins() {
    let mut server = TestServer::start_admin().await;
    // The disable is sent later and later after the logins, so across the
    // rounds some logins lose to it and some finish first and have their
    // session ended by it.
    for (round, delay_ms) in [0u64, 2, 5, 15, 40].into_iter().enumerate() {
        let name = format!("racer{round}");
        let id = server.register(&name, PASSWORD).await;
        let logins = 8;
        let barrier = Arc::new(tokio::sync::Barrier::new(logins + 1));
        let mut tasks = Vec::new();
        for channel in server.channels(logins).await {
            let (barrier, name) = (barrier.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                let mut client = AuthServiceClient::new(channel);
                barrier.wait().await;
                client.login(login_request(&name, PASSWORD)).await
            }));
        }
        let mut admin = server.admin().await;
        let disable = {
            let (barrier, id) = (barrier.clone(), id.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                admin
                    .disable_user(pb::DisableUserRequest { user_id: id })
                    .await
            })
        };

        let mut issued = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(response) => match response.into_inner().outcome {
                    Some(pb::login_response::Outcome::Session(s)) => issued.push(s.token),
                    other => panic!("unexpected outcome {other:?}"),
                },
                // A login that loses to the disable answers like an unknown
                // name: a failure, and past five of them the name's lock,
                // as for any unknown name.
                Err(status) if status.code() == Code::ResourceExhausted => {
                    assert_status(&status, Code::ResourceExhausted, "ACCOUNT_LOCKED");
                }
                Err(status) => {
                    assert_status(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
                }
            }
        }
        disable.await.unwrap().expect("disable");

        println!(
            "disable {delay_ms} ms after: {} of {logins} logins won first",
            issued.len()
        );
        for token in &issued {
            assert!(
                !server.is_live(token).await,
                "a session outlived the disable"
            );
        }
        let user = server.admin_user(&id).await;
        assert_eq!(user.live_sessions, 0);
        assert!(user.disabled_at.is_some());
        let sessions = count(
            &server.db,
            &format!("SELECT count(*) FROM sessions WHERE user_id = '{id}'"),
        )
        .await;
        assert_eq!(sessions, 0);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unlocking_while_wrong_guesses_are_in_flight_leaves_every_check_settled() {
    let mut server = TestServer::start_admin().await;
    let id = server.register("guessed", PASSWORD).await;
    let guesses = 12;
    let barrier = Arc::new(tokio::sync::Barrier::new(guesses + 1));
    let mut tasks = Vec::new();
    for (i, channel) in server.channels(guesses).await.into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = AuthServiceClient::new(channel);
            barrier.wait().await;
            client
                .login(login_request("guessed", &format!("wrong guess {i}")))
                .await
        }));
    }
    let mut admin = server.admin().await;
    let unlocks = {
        let (barrier, id) = (barrier.clone(), id.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            for _ in 0..4 {
                admin
                    .unlock_user(pb::UnlockUserRequest {
                        user_id: id.clone(),
                    })
                    .await
                    .expect("unlock");
                tokio::task::yield_now().await;
            }
        })
    };

    for task in tasks {
        let status = task.await.unwrap().unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::Unauthenticated | Code::ResourceExhausted
            ),
            "{status:?}"
        );
    }
    unlocks.await.unwrap();

    // Every reservation was settled: none is left counting against the name.
    let pending = count(
        &server.db,
        "SELECT count(*) FROM budget_reservations WHERE name = 'guessed'",
    )
    .await;
    assert_eq!(pending, 0);
    server
        .admin()
        .await
        .unlock_user(pb::UnlockUserRequest { user_id: id })
        .await
        .unwrap();
    server.login_session("guessed", PASSWORD).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_call_cut_short_by_its_deadline_is_all_or_nothing() {
    let mut server = TestServer::start_admin().await;
    let mut cut = Vec::new();
    for round in 0..6 {
        let (id, _) = server.signed_in(&format!("cut{round}"), PASSWORD).await;
        let mut request = tonic::Request::new(pb::DisableUserRequest {
            user_id: id.clone(),
        });
        // From "already over" to "probably enough": some calls are cut
        // before the transaction, some during, some not at all.
        request.set_timeout(Duration::from_micros(1 << (round * 3)));
        let answer = server.admin().await.disable_user(request).await;
        // The server's TIMEOUT, or the client giving up first.
        if let Err(status) = &answer {
            assert!(
                matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
                "{status:?}"
            );
        }
        cut.push((id, answer.is_ok()));
    }
    // A graceful stop waits for every call still running on the server, so
    // what the database holds afterwards is each call's final effect.
    let db = server.stop().await;

    for (id, answered) in cut {
        let disabled = count(
            &db,
            &format!("SELECT count(*) FROM users WHERE id = '{id}' AND disabled_at IS NOT NULL"),
        )
        .await;
        let sessions = count(
            &db,
            &format!("SELECT count(*) FROM sessions WHERE user_id = '{id}'"),
        )
        .await;
        println!("answered {answered}: disabled {disabled}, sessions {sessions}");
        assert_eq!(
            disabled == 1,
            sessions == 0,
            "disabled and sessions ended together, or neither"
        );
        if answered {
            assert_eq!((disabled, sessions), (1, 0));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_one_replicas_admin_does_holds_on_another_at_once() {
    let mut server = TestServer::start_admin().await;
    let mut config = test_config(&server.db);
    with_admin(&mut config);
    let replica = server.replica(config).await;
    let mut on_replica = AuthServiceClient::new(replica.channel().await);
    let id = server.register("shared", PASSWORD).await;
    let Some(pb::login_response::Outcome::Session(session)) = on_replica
        .login(login_request("shared", PASSWORD))
        .await
        .unwrap()
        .into_inner()
        .outcome
    else {
        panic!("expected a session");
    };

    server
        .admin()
        .await
        .revoke_all_sessions(pb::RevokeAllSessionsRequest {
            user_id: id.clone(),
        })
        .await
        .unwrap();
    let status = on_replica
        .validate_session(pb::ValidateSessionRequest {
            token: session.token.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "SESSION_INVALID");

    // Locked through the replica, unlocked through the first server.
    for _ in 0..5 {
        on_replica
            .login(login_request("shared", "not the password"))
            .await
            .unwrap_err();
    }
    let locked = on_replica
        .login(login_request("shared", PASSWORD))
        .await
        .unwrap_err();
    assert_status(&locked, Code::ResourceExhausted, "ACCOUNT_LOCKED");
    server
        .admin()
        .await
        .unlock_user(pb::UnlockUserRequest {
            user_id: id.clone(),
        })
        .await
        .unwrap();
    on_replica
        .login(login_request("shared", PASSWORD))
        .await
        .expect("unlocked everywhere at once");

    // Many logins across both replicas racing with a disable through one.
    let mut channels = server.channels(6).await;
    for _ in 0..6 {
        channels.push(replica.channel().await);
    }
    let answers = race(channels, |mut client, _| async move {
        client
            .login(login_request("shared", PASSWORD))
            .await
            .map(|r| r.into_inner().outcome)
    });
    let mut admin = server.admin().await;
    let disable = admin.disable_user(pb::DisableUserRequest {
        user_id: id.clone(),
    });
    let (answers, disabled) = tokio::join!(answers, disable);
    disabled.unwrap();
    for answer in answers {
        if let Ok(Some(pb::login_response::Outcome::Session(s))) = answer {
            assert!(
                !server.is_live(&s.token).await,
                "a session outlived the disable"
            );
        }
    }
    replica.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_while_accounts_are_added_neither_repeats_nor_skips() {
    let mut server = TestServer::start_admin().await;
    // Names spread over the alphabet, so new ones land before, between and
    // after the pages already read.
    let name = |i: usize| format!("{}{:03}", (b'a' + u8::try_from(i % 26).unwrap()) as char, i);
    let existing: Vec<String> = (0..40).map(name).collect();
    for n in &existing {
        server.register(n, PASSWORD).await;
    }
    let mut adder = server.client.clone();
    let adding = tokio::spawn(async move {
        for i in 40..80 {
            adder
                .register(pb::RegisterRequest {
                    username: name(i),
                    password: PASSWORD.into(),
                })
                .await
                .expect("register");
        }
    });

    let mut admin = server.admin().await;
    let (mut seen, mut token) = (Vec::new(), String::new());
    loop {
        let page = admin
            .list_users(pb::ListUsersRequest {
                page_size: 7,
                page_token: token.clone(),
                username_prefix: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.users.into_iter().map(|u| u.username));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        tokio::task::yield_now().await;
    }
    adding.await.unwrap();

    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats: {seen:?}"
    );
    for n in &existing {
        assert!(seen.contains(n), "{n} was skipped");
    }
    println!("{} accounts seen while 40 were added", seen.len());
}
