//! Property tests: arbitrary bytes and arbitrary field values sent to every
//! RPC get a status from the contract, and the server keeps serving.

use proptest::prelude::*;
use prost::Message as _;
use tonic::Code;
use warden::grpc::pb;

use crate::helpers::{TestServer, raw_call, serving};

const RPCS: [&str; 12] = [
    "Register",
    "Login",
    "EnrollTotp",
    "VerifyTotp",
    "UseRecoveryCode",
    "DisableTotp",
    "RegenerateRecoveryCodes",
    "ChangePassword",
    "DeleteAccount",
    "GetAccount",
    "ValidateSession",
    "Logout",
];

fn allowed(code: Code) -> bool {
    matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::AlreadyExists
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::Unavailable
            | Code::DeadlineExceeded
    )
}

/// Field values that stress the shape checks: any string, including
/// control characters, non-ASCII and long values.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[0-9]{0,8}",
        "[A-Za-z0-9 -]{0,24}",
        ".{0,300}"
    ]
}

fn request(rpc: usize, a: String, b: String, c: String) -> Vec<u8> {
    match rpc {
        0 => pb::RegisterRequest {
            username: a,
            password: b,
        }
        .encode_to_vec(),
        1 => pb::LoginRequest {
            username: a,
            password: b,
        }
        .encode_to_vec(),
        2 => pb::EnrollTotpRequest { password: a }.encode_to_vec(),
        3 => pb::VerifyTotpRequest {
            code: a,
            purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(b)),
        }
        .encode_to_vec(),
        4 => pb::UseRecoveryCodeRequest {
            challenge_token: a,
            code: b,
        }
        .encode_to_vec(),
        5 => pb::DisableTotpRequest {
            password: a,
            code: b,
        }
        .encode_to_vec(),
        6 => pb::RegenerateRecoveryCodesRequest {
            password: a,
            code: b,
        }
        .encode_to_vec(),
        7 => pb::ChangePasswordRequest {
            current_password: a,
            new_password: b,
            code: c,
        }
        .encode_to_vec(),
        8 => pb::DeleteAccountRequest {
            password: a,
            code: b,
        }
        .encode_to_vec(),
        9 => pb::GetAccountRequest {}.encode_to_vec(),
        10 => pb::ValidateSessionRequest { token: a }.encode_to_vec(),
        _ => pb::LogoutRequest {}.encode_to_vec(),
    }
}

#[test]
fn arbitrary_requests_get_contract_statuses_and_the_server_keeps_serving() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start_with(|c| c.lockout.threshold = 1_000_000));
    let channel = runtime.block_on(server.channel());
    let config = ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    };

    proptest!(config, |(rpc in 0..RPCS.len(), raw in proptest::collection::vec(any::<u8>(), 0..256), use_raw in any::<bool>(),
                        a in field(), b in field(), c in field())| {
        let body = if use_raw { raw } else { request(rpc, a, b, c) };
        let answer = runtime.block_on(raw_call(channel.clone(), RPCS[rpc], body));
        if let Err(status) = answer {
            prop_assert!(allowed(status.code()), "{} answered {:?}: {}", RPCS[rpc], status.code(), status.message());
        }
    });

    assert!(runtime.block_on(serving(&server)));
    runtime.block_on(server.stop());
}
