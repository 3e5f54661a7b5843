//! Property tests: arbitrary bytes and arbitrary field values sent to every
//! RPC, with no Bearer, an arbitrary one or a live session, and with
//! arbitrary or live challenge tokens and the right password mixed in, get
//! a status from the contract (never INTERNAL, UNAVAILABLE, a timeout or
//! UNKNOWN), and the server keeps serving.

use std::cell::RefCell;

use proptest::prelude::*;
use prost::Message as _;
use tonic::Code;
use warden::grpc::pb;

use crate::helpers::{PASSWORD, TestServer, raw_call_with, serving};

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
    )
}

/// Reasons an answer may carry here (no admin API, limits off).
const REASONS: [&str; 10] = [
    "INVALID_REQUEST",
    "SECOND_FACTOR_REQUIRED",
    "USERNAME_TAKEN",
    "INVALID_CREDENTIALS",
    "SESSION_INVALID",
    "CHALLENGE_INVALID",
    "TOTP_ALREADY_ENABLED",
    "NO_PENDING_ENROLLMENT",
    "TOTP_NOT_ENABLED",
    "ACCOUNT_LOCKED",
];

/// Which Bearer a case sends.
#[derive(Debug, Clone)]
enum Auth {
    None,
    Live,
    Arbitrary(String),
}

fn auth() -> impl Strategy<Value = Auth> {
    prop_oneof![
        1 => Just(Auth::None),
        3 => Just(Auth::Live),
        1 => "[ -~]{0,64}".prop_map(Auth::Arbitrary),
    ]
}

/// The state the cases act on: a user without TOTP whose live session is
/// the Bearer, and a user with TOTP whose challenges are the live ones.
struct Live {
    name: String,
    token: String,
    generation: usize,
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
            ..Default::default()
        }
        .encode_to_vec(),
        2 => pb::EnrollTotpRequest { password: a }.encode_to_vec(),
        3 => pb::VerifyTotpRequest {
            code: a,
            purpose: Some(pb::verify_totp_request::Purpose::ChallengeToken(b)),
            ..Default::default()
        }
        .encode_to_vec(),
        4 => pb::UseRecoveryCodeRequest {
            challenge_token: a,
            code: b,
            ..Default::default()
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
    let mut server = runtime.block_on(TestServer::start_with(|c| c.lockout.threshold = 1_000_000));
    let channel = runtime.block_on(server.channel());
    let (_, totp_token) = runtime.block_on(server.signed_in("fuzz-totp", PASSWORD));
    runtime.block_on(server.enable_totp(&totp_token, PASSWORD));
    let (_, token) = runtime.block_on(server.signed_in("fuzz-0", PASSWORD));
    let live = RefCell::new(Live {
        name: "fuzz-0".into(),
        token,
        generation: 0,
    });
    let server = RefCell::new(server);
    // How many Bearer or challenge calls got past authentication.
    let deep = RefCell::new(0usize);
    let config = ProptestConfig {
        cases: 768,
        failure_persistence: None,
        ..ProptestConfig::default()
    };

    proptest!(config, |(rpc in 0..RPCS.len(), raw in proptest::collection::vec(any::<u8>(), 0..256), use_raw in any::<bool>(),
                        a in field(), b in field(), c in field(), auth in auth(), right_password in any::<bool>(),
                        live_challenge in any::<bool>())| {
        let (mut a, mut b) = (a, b);
        if right_password {
            // The password field of each RPC: a (b for Register/Login).
            match rpc {
                0 | 1 => b = PASSWORD.into(),
                2 | 5..=8 => a = PASSWORD.into(),
                _ => {}
            }
        }
        if live_challenge && matches!(rpc, 3 | 4) {
            let challenge = runtime.block_on(server.borrow_mut().login_challenge("fuzz-totp", PASSWORD));
            let token = challenge.challenge_token;
            if rpc == 3 { b = token } else { a = token }
        }
        let body = if use_raw { raw } else { request(rpc, a, b, c) };
        let bearer = match &auth {
            Auth::None => None,
            Auth::Live => Some(format!("Bearer {}", live.borrow().token)),
            Auth::Arbitrary(value) => Some(value.clone()),
        };
        let answer = runtime.block_on(raw_call_with(channel.clone(), RPCS[rpc], body, bearer.as_deref()));
        let authenticated = match &answer {
            Ok(_) => true,
            Err(status) => tonic_types::StatusExt::get_error_details(status)
                .error_info()
                .is_some_and(|i| !["SESSION_INVALID", "CHALLENGE_INVALID", "INVALID_REQUEST"].contains(&i.reason.as_str())),
        };
        if authenticated && ((2..=9).contains(&rpc) || rpc == 11) {
            *deep.borrow_mut() += 1;
        }
        match &answer {
            Ok(_) if matches!(rpc, 7 | 8 | 11) => {
                // The live user's password, account or session changed:
                // start over with a new one.
                let mut live = live.borrow_mut();
                live.generation += 1;
                live.name = format!("fuzz-{}", live.generation);
                let (_, token) = runtime.block_on(server.borrow_mut().signed_in(&live.name, PASSWORD));
                live.token = token;
            }
            Ok(_) => {}
            Err(status) => {
                prop_assert!(allowed(status.code()), "{} answered {:?}: {}", RPCS[rpc], status.code(), status.message());
                let details = tonic_types::StatusExt::get_error_details(status);
                let info = details.error_info();
                prop_assert!(info.is_some(), "{} answered without ErrorInfo: {status:?}", RPCS[rpc]);
                let info = info.unwrap();
                prop_assert_eq!(info.domain.as_str(), "warden");
                prop_assert!(REASONS.contains(&info.reason.as_str()), "{} answered {}", RPCS[rpc], info.reason);
            }
        }
    });

    let server = server.into_inner();
    let deep = deep.into_inner();
    assert!(deep >= 40, "only {deep} cases got past authentication");
    assert!(runtime.block_on(serving(&server)));
    runtime.block_on(server.stop());
}
