//! The admin API and remembered devices: the operator sees how many a user
//! has, and DisableUser and ResetSecondFactors revoke them at once.

use warden::grpc::pb::{self, login_response::Outcome};

use crate::devices::{enrolled, login_with, remember};
use crate::helpers::{PASSWORD, TestServer};

#[tokio::test]
async fn the_operator_sees_remembered_devices_and_a_reset_revokes_them() {
    let mut server = TestServer::start_admin().await;
    let user = enrolled(&mut server, "nora").await;
    let (_, device) = remember(&mut server, "nora", &user.secret).await;
    assert_eq!(server.admin_user(&user.user_id).await.trusted_devices, 1);

    let reset = server
        .admin()
        .await
        .reset_second_factors(pb::ResetSecondFactorsRequest {
            user_id: user.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(reset.trusted_devices, 0);
    // TOTP is gone too, so the password alone signs in; the device token
    // is ignored, not used (a device login would say trusted_device).
    let Outcome::Session(session) = login_with(&mut server, "nora", PASSWORD, &device)
        .await
        .unwrap()
    else {
        panic!("a reset account signs in with the password alone");
    };
    let view = server
        .client
        .validate_session(pb::ValidateSessionRequest {
            token: session.token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(view.amr, ["pwd"]);
}

#[tokio::test]
async fn a_disable_revokes_remembered_devices_for_good() {
    let mut server = TestServer::start_admin().await;
    let user = enrolled(&mut server, "otto").await;
    let (_, device) = remember(&mut server, "otto", &user.secret).await;
    let mut admin = server.admin().await;
    admin
        .disable_user(pb::DisableUserRequest {
            user_id: user.user_id.clone(),
        })
        .await
        .unwrap();
    let enabled = admin
        .enable_user(pb::EnableUserRequest {
            user_id: user.user_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    assert_eq!(enabled.trusted_devices, 0);
    // Enabled again, the account still has TOTP: the old device token no
    // longer skips it.
    let outcome = login_with(&mut server, "otto", PASSWORD, &device)
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::MfaRequired(_)), "{outcome:?}");
}
