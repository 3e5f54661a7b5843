//! The admin listener: only there, only with the token, never on the main
//! listener; a weak token refused at start; statuses for unknown and
//! malformed ids. The account operations are in `admin_users`, races and
//! replicas in `admin_races`.

use tonic::Code;
use tonic::transport::Channel;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};
use warden::app::Application;
use warden::grpc::pb;
use warden::grpc::pb::admin_service_client::AdminServiceClient;

use crate::helpers::{
    ADMIN_TOKEN, AdminBearer, TestDatabase, TestServer, admin_client_on, admin_race,
    assert_invalid, assert_status, test_config, with_admin,
};

fn by_id(id: &str) -> pb::GetUserRequest {
    pb::GetUserRequest {
        user: Some(pb::get_user_request::User::UserId(id.into())),
    }
}

/// One reflection request's answer on `channel`, presenting `token`.
async fn reflect(
    channel: Channel,
    token: Option<&str>,
    request: MessageRequest,
) -> Result<ServerReflectionResponse, tonic::Status> {
    let mut client =
        ServerReflectionClient::with_interceptor(channel, AdminBearer(token.map(str::to_owned)));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await?
        .into_inner();
    Ok(stream.message().await?.expect("one response"))
}

async fn services(channel: Channel, token: Option<&str>) -> Vec<String> {
    let response = reflect(channel, token, MessageRequest::ListServices(String::new()))
        .await
        .expect("reflection answers");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    list.service.into_iter().map(|s| s.name).collect()
}

#[tokio::test]
async fn admin_calls_without_the_token_or_with_a_wrong_one_are_refused() {
    let mut server = TestServer::start_admin().await;
    let id = server.register("someone", crate::helpers::PASSWORD).await;
    let wrong = ADMIN_TOKEN.replace('q', "r");
    let prefix = &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1];
    let longer = format!("{ADMIN_TOKEN}x");

    for token in [
        None,
        Some(""),
        Some(wrong.as_str()),
        Some(prefix),
        Some(&longer),
    ] {
        let mut admin = admin_client_on(server.admin_channel().await, token);
        let refused = admin.get_user(by_id(&id)).await.unwrap_err();
        assert_status(&refused, Code::Unauthenticated, "ADMIN_UNAUTHENTICATED");
        // Reflection on the admin port is behind the token too.
        let listed = reflect(
            server.admin_channel().await,
            token,
            MessageRequest::ListServices(String::new()),
        )
        .await
        .unwrap_err();
        assert_status(&listed, Code::Unauthenticated, "ADMIN_UNAUTHENTICATED");
    }
    // Another scheme with the right value is no Bearer.
    let mut basic = AdminServiceClient::new(server.admin_channel().await);
    let mut request = tonic::Request::new(by_id(&id));
    request.metadata_mut().insert(
        "authorization",
        format!("Basic {ADMIN_TOKEN}").parse().unwrap(),
    );
    let refused = basic.get_user(request).await.unwrap_err();
    assert_status(&refused, Code::Unauthenticated, "ADMIN_UNAUTHENTICATED");

    // The scheme is case-insensitive.
    let mut lower = AdminServiceClient::new(server.admin_channel().await);
    let mut request = tonic::Request::new(by_id(&id));
    request.metadata_mut().insert(
        "authorization",
        format!("bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    assert_eq!(
        lower.get_user(request).await.unwrap().into_inner().user_id,
        id
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admin_calls_with_right_and_wrong_tokens_are_each_judged_alone() {
    let mut server = TestServer::start_with(|c| {
        with_admin(c);
        c.admin.admin_max_in_flight = 64;
    })
    .await;
    let id = server.register("watched", crate::helpers::PASSWORD).await;
    let mut channels = Vec::new();
    for _ in 0..24 {
        channels.push(server.admin_channel().await);
    }
    let wrong = ADMIN_TOKEN.replace('q', "r");

    // Even calls carry the token, odd ones a near miss.
    let answers = admin_race(
        channels,
        move |i| {
            if i % 2 == 0 {
                Some(ADMIN_TOKEN.to_owned())
            } else {
                Some(wrong.clone())
            }
        },
        move |mut admin, _| {
            let id = id.clone();
            async move {
                admin
                    .get_user(by_id(&id))
                    .await
                    .map(tonic::Response::into_inner)
            }
        },
    )
    .await;

    let (mut right, mut refused) = (0, 0);
    for (i, answer) in answers.into_iter().enumerate() {
        match answer {
            Ok(user) => {
                assert_eq!(i % 2, 0, "a wrong token got through: {user:?}");
                right += 1;
            }
            Err(status) => {
                assert_eq!(i % 2, 1, "the right token was refused: {status:?}");
                assert_status(&status, Code::Unauthenticated, "ADMIN_UNAUTHENTICATED");
                refused += 1;
            }
        }
    }
    assert_eq!((right, refused), (12, 12));
    server.stop().await;
}

#[tokio::test]
async fn the_main_listener_neither_serves_nor_advertises_the_admin_service() {
    let mut server = TestServer::start_admin().await;
    let id = server.register("someone", crate::helpers::PASSWORD).await;

    // The right token on the main listener: no such service there.
    let mut on_main = admin_client_on(server.channel().await, Some(ADMIN_TOKEN));
    let status = on_main.get_user(by_id(&id)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    let main = services(server.channel().await, None).await;
    assert!(
        main.contains(&"warden.v1.AuthService".to_owned()),
        "{main:?}"
    );
    assert!(!main.iter().any(|s| s.contains("Admin")), "{main:?}");
    // Nor can its descriptor be fetched there by name.
    let lookup = reflect(
        server.channel().await,
        None,
        MessageRequest::FileContainingSymbol("warden.v1.AdminService".into()),
    )
    .await;
    match lookup {
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        Ok(response) => assert!(
            matches!(
                response.message_response,
                Some(MessageResponse::ErrorResponse(_))
            ),
            "{response:?}"
        ),
    }

    // The admin listener advertises AdminService only.
    let admin = services(server.admin_channel().await, Some(ADMIN_TOKEN)).await;
    assert!(
        admin.contains(&"warden.v1.AdminService".to_owned()),
        "{admin:?}"
    );
    assert!(
        !admin.contains(&"warden.v1.AuthService".to_owned()),
        "{admin:?}"
    );
    // And does not serve AuthService.
    let mut auth_on_admin =
        warden::grpc::pb::auth_service_client::AuthServiceClient::with_interceptor(
            server.admin_channel().await,
            AdminBearer(Some(ADMIN_TOKEN.to_owned())),
        );
    let status = auth_on_admin
        .login(pb::LoginRequest {
            username: "someone".into(),
            password: crate::helpers::PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    server.stop().await;
}

#[tokio::test]
async fn without_an_admin_listener_there_is_no_admin_port() {
    let mut server = TestServer::start().await;
    let id = server.register("someone", crate::helpers::PASSWORD).await;

    assert_eq!(server.admin_addr, None);
    let mut on_main = admin_client_on(server.channel().await, Some(ADMIN_TOKEN));
    let status = on_main.get_user(by_id(&id)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    server.stop().await;
}

/// Builds a server with `adjust` and returns the refusal's text.
async fn refused_start(adjust: impl FnOnce(&mut warden::config::Config)) -> String {
    let db = TestDatabase::create().await;
    let mut config = test_config(&db);
    adjust(&mut config);
    let clock = std::sync::Arc::new(warden::domain::clock::ManualClock::new(
        crate::helpers::epoch(),
    ));
    match Application::build(config, clock).await {
        Ok(_) => panic!("the server started"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_weak_or_missing_admin_token_is_refused_at_start() {
    let short = "tooshort-but-not-empty";
    let message = refused_start(|c| {
        with_admin(c);
        c.admin.admin_token = Some(short.to_owned().into());
    })
    .await;
    assert!(message.contains("WARDEN_ADMIN_TOKEN"), "{message}");
    assert!(message.contains("256 bits"), "{message}");
    assert!(
        !message.contains(short),
        "the refusal echoes the token: {message}"
    );

    // 43 characters, but one repeated: no entropy at all.
    let message = refused_start(|c| {
        with_admin(c);
        c.admin.admin_token = Some("a".repeat(64).into());
    })
    .await;
    assert!(message.contains("repeats"), "{message}");

    // From a file: the same rule, naming the file setting.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, format!("{short}\n")).unwrap();
    let message = refused_start(|c| {
        with_admin(c);
        c.admin.admin_token = None;
        c.admin.admin_token_file = Some(file.clone());
    })
    .await;
    assert!(message.contains("WARDEN_ADMIN_TOKEN_FILE"), "{message}");

    let message = refused_start(|c| {
        with_admin(c);
        c.admin.admin_token = None;
    })
    .await;
    assert!(message.contains("WARDEN_ADMIN_LISTEN needs"), "{message}");
}

#[tokio::test]
async fn a_token_file_with_a_trailing_newline_works() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("admin-token");
    std::fs::write(&file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let mut server = TestServer::start_with(|c| {
        with_admin(c);
        c.admin.admin_token = None;
        c.admin.admin_token_file = Some(file.clone());
    })
    .await;
    let id = server.register("someone", crate::helpers::PASSWORD).await;

    assert_eq!(server.admin_user(&id).await.username, "someone");
    server.stop().await;
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_malformed_ones_invalid() {
    let server = TestServer::start_admin().await;
    let mut admin = server.admin().await;
    let unknown = uuid::Uuid::new_v4().to_string();

    let status = admin.get_user(by_id(&unknown)).await.unwrap_err();
    assert_status(&status, Code::NotFound, "USER_NOT_FOUND");
    let by_name = pb::GetUserRequest {
        user: Some(pb::get_user_request::User::Username("Nobody".into())),
    };
    let status = admin.get_user(by_name).await.unwrap_err();
    assert_status(&status, Code::NotFound, "USER_NOT_FOUND");
    let status = admin
        .disable_user(pb::DisableUserRequest {
            user_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&status, Code::NotFound, "USER_NOT_FOUND");
    let status = admin
        .list_sessions(pb::ListSessionsRequest {
            user_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&status, Code::NotFound, "USER_NOT_FOUND");
    let status = admin
        .revoke_session(pb::RevokeSessionRequest {
            session_id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&status, Code::NotFound, "USER_NOT_FOUND");
    assert_eq!(status.message(), "session not found");

    for bad in ["", "not-a-uuid"] {
        let status = admin
            .unlock_user(pb::UnlockUserRequest {
                user_id: bad.into(),
            })
            .await
            .unwrap_err();
        assert_invalid(&status, "user_id");
        let status = admin
            .revoke_session(pb::RevokeSessionRequest {
                session_id: bad.into(),
            })
            .await
            .unwrap_err();
        assert_invalid(&status, "session_id");
    }
    let status = admin
        .get_user(pb::GetUserRequest { user: None })
        .await
        .unwrap_err();
    assert_invalid(&status, "user");
    let bad_name = pb::GetUserRequest {
        user: Some(pb::get_user_request::User::Username("no spaces".into())),
    };
    assert_invalid(&admin.get_user(bad_name).await.unwrap_err(), "username");
    server.stop().await;
}
