//! Every admin action is an audit span naming the account, exported like
//! the end users' events, under the admin call's RPC span.

use std::time::{Duration, Instant};

use warden::grpc::pb;

use crate::helpers::{ExportedSpan, PASSWORD, TestServer, collector, flush_traces, with_admin};

/// Waits (bounded) until the spans naming `user_id` include every name in
/// `names`.
async fn spans_naming(user_id: &str, names: &[&str]) -> Vec<ExportedSpan> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        flush_traces().await;
        let spans: Vec<_> = collector()
            .all_spans()
            .into_iter()
            .filter(|s| s.attributes.get("enduser.id").map(String::as_str) == Some(user_id))
            .collect();
        let all = names.iter().all(|n| spans.iter().any(|s| s.name == *n));
        if all || Instant::now() > deadline {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn each_admin_action_is_audited_with_the_account() {
    let mut server = TestServer::start_with(|c| {
        with_admin(c);
        c.telemetry.otlp_endpoint = Some(collector().url());
    })
    .await;
    let (id, _) = server.signed_in("audited", PASSWORD).await;
    let second = server.login_session("audited", PASSWORD).await;
    let mut admin = server.admin().await;
    let user_id = || id.clone();

    admin
        .revoke_session(pb::RevokeSessionRequest {
            session_id: second.session_id.clone(),
        })
        .await
        .unwrap();
    admin
        .revoke_all_sessions(pb::RevokeAllSessionsRequest { user_id: user_id() })
        .await
        .unwrap();
    admin
        .unlock_user(pb::UnlockUserRequest { user_id: user_id() })
        .await
        .unwrap();
    admin
        .reset_second_factors(pb::ResetSecondFactorsRequest { user_id: user_id() })
        .await
        .unwrap();
    admin
        .disable_user(pb::DisableUserRequest { user_id: user_id() })
        .await
        .unwrap();
    admin
        .enable_user(pb::EnableUserRequest { user_id: user_id() })
        .await
        .unwrap();
    let names = [
        "admin.session_revoked",
        "admin.sessions_revoked",
        "admin.user_unlocked",
        "admin.second_factors_reset",
        "admin.user_disabled",
        "admin.user_enabled",
    ];
    let spans = spans_naming(&id, &names).await;
    server.stop().await;

    for name in names {
        let span = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span: {spans:#?}"));
        assert_eq!(span.attributes["warden.outcome"], "success");
        assert_eq!(span.attributes["rpc.grpc.status_code"], "0");
        assert!(
            !span.parent_span_id.is_empty(),
            "{name} is under the RPC span"
        );
    }
    let bulk = spans
        .iter()
        .find(|s| s.name == "admin.sessions_revoked")
        .unwrap();
    assert_eq!(bulk.attributes["warden.sessions_revoked"], "1");
}
