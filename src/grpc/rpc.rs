//! The AuthService RPCs as a type: one variant per method, each with its
//! wire name and rate-limit group. Tracing, the guard and the limits read
//! this table; a unit test checks it against the descriptor the build
//! generates, so a new RPC cannot be left out (and silently run unlimited).

/// The service name, from the generated code (what `NamedService::NAME`
/// of the generated server is).
pub use super::pb::auth_service_server::SERVICE_NAME;

/// One AuthService method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rpc {
    /// Register.
    Register,
    /// Login.
    Login,
    /// EnrollTotp.
    EnrollTotp,
    /// VerifyTotp.
    VerifyTotp,
    /// UseRecoveryCode.
    UseRecoveryCode,
    /// DisableTotp.
    DisableTotp,
    /// RegenerateRecoveryCodes.
    RegenerateRecoveryCodes,
    /// ChangePassword.
    ChangePassword,
    /// DeleteAccount.
    DeleteAccount,
    /// GetAccount.
    GetAccount,
    /// ValidateSession.
    ValidateSession,
    /// Logout.
    Logout,
    /// ForgetTrustedDevices.
    ForgetTrustedDevices,
    /// IssueAccessToken.
    IssueAccessToken,
    /// GetJwks.
    GetJwks,
}

/// How an AuthService method is rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The Login bucket.
    Login,
    /// The bucket shared by the second factor and the step-up calls.
    SecondFactor,
    /// The Register bucket.
    Register,
    /// Never limited (the calls backends make on every request).
    Unlimited,
}

impl Limit {
    /// The group's name (the `group` label of `warden_rate_limited_total`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::SecondFactor => "second_factor",
            Self::Register => "register",
            Self::Unlimited => "unlimited",
        }
    }
}

impl Rpc {
    /// Every method, in the contract's order.
    pub const ALL: [Self; 15] = [
        Self::Register,
        Self::Login,
        Self::EnrollTotp,
        Self::VerifyTotp,
        Self::UseRecoveryCode,
        Self::DisableTotp,
        Self::RegenerateRecoveryCodes,
        Self::ChangePassword,
        Self::DeleteAccount,
        Self::GetAccount,
        Self::ValidateSession,
        Self::Logout,
        Self::ForgetTrustedDevices,
        Self::IssueAccessToken,
        Self::GetJwks,
    ];

    /// The method name on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Register => "Register",
            Self::Login => "Login",
            Self::EnrollTotp => "EnrollTotp",
            Self::VerifyTotp => "VerifyTotp",
            Self::UseRecoveryCode => "UseRecoveryCode",
            Self::DisableTotp => "DisableTotp",
            Self::RegenerateRecoveryCodes => "RegenerateRecoveryCodes",
            Self::ChangePassword => "ChangePassword",
            Self::DeleteAccount => "DeleteAccount",
            Self::GetAccount => "GetAccount",
            Self::ValidateSession => "ValidateSession",
            Self::Logout => "Logout",
            Self::ForgetTrustedDevices => "ForgetTrustedDevices",
            Self::IssueAccessToken => "IssueAccessToken",
            Self::GetJwks => "GetJwks",
        }
    }

    /// The rate-limit group.
    pub const fn limit(self) -> Limit {
        match self {
            Self::Register => Limit::Register,
            Self::Login => Limit::Login,
            Self::EnrollTotp
            | Self::VerifyTotp
            | Self::UseRecoveryCode
            | Self::DisableTotp
            | Self::RegenerateRecoveryCodes
            | Self::ChangePassword
            | Self::DeleteAccount => Limit::SecondFactor,
            Self::GetAccount
            | Self::ValidateSession
            | Self::Logout
            | Self::ForgetTrustedDevices
            | Self::IssueAccessToken
            | Self::GetJwks => Limit::Unlimited,
        }
    }

    /// The method a wire name names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rpc| rpc.name() == name)
    }
}

/// An AuthService call as its path names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method<'a> {
    /// A method of the contract.
    Known(Rpc),
    /// A name the contract does not have (the router refuses it).
    Unknown(&'a str),
}

impl<'a> Method<'a> {
    /// The AuthService method of `path` (`/warden.v1.AuthService/Login`),
    /// or `None` for other services (health, reflection).
    pub fn from_path(path: &'a str) -> Option<Self> {
        let name = path
            .strip_prefix('/')?
            .strip_prefix(SERVICE_NAME)?
            .strip_prefix('/')?;
        Some(Rpc::from_name(name).map_or(Self::Unknown(name), Self::Known))
    }

    /// The method name as the path gave it.
    pub fn name(self) -> &'a str {
        match self {
            Self::Known(rpc) => rpc.name(),
            Self::Unknown(name) => name,
        }
    }

    /// The rate-limit group. An unknown name is limited like Login:
    /// unknown must never mean unlimited.
    pub fn limit(self) -> Limit {
        match self {
            Self::Known(rpc) => rpc.limit(),
            Self::Unknown(_) => Limit::Login,
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    /// Every RPC in the descriptor the build generates is in the table, and
    /// the table names nothing else: a new RPC cannot run unlimited unnoticed.
    #[test]
    fn every_rpc_has_a_rate_limit_group() -> Result<(), prost::DecodeError> {
        let set = prost_types::FileDescriptorSet::decode(super::super::pb::FILE_DESCRIPTOR_SET)?;
        let (package, service) = SERVICE_NAME.rsplit_once('.').unwrap_or_default();
        let mut generated: Vec<String> = set
            .file
            .iter()
            .filter(|f| f.package() == package)
            .flat_map(|f| f.service.iter())
            .filter(|s| s.name() == service)
            .flat_map(|s| s.method.iter().map(|m| m.name().to_owned()))
            .collect();
        let mut listed: Vec<String> = Rpc::ALL.iter().map(|r| r.name().to_owned()).collect();
        generated.sort();
        listed.sort();

        assert!(!generated.is_empty());
        assert_eq!(generated, listed);
        Ok(())
    }

    #[test]
    fn the_groups_are_the_contracts() {
        let named = |limit: Limit| -> Vec<&str> {
            Rpc::ALL
                .iter()
                .filter(|r| r.limit() == limit)
                .map(|r| r.name())
                .collect()
        };
        assert_eq!(named(Limit::Login), ["Login"]);
        assert_eq!(named(Limit::Register), ["Register"]);
        assert_eq!(
            named(Limit::SecondFactor),
            [
                "EnrollTotp",
                "VerifyTotp",
                "UseRecoveryCode",
                "DisableTotp",
                "RegenerateRecoveryCodes",
                "ChangePassword",
                "DeleteAccount"
            ]
        );
        let path = |p| Method::from_path(p);
        assert_eq!(
            path("/warden.v1.AuthService/NoSuchRpc").map(Method::limit),
            Some(Limit::Login)
        );
        assert_eq!(
            path("/warden.v1.AuthService/Login"),
            Some(Method::Known(Rpc::Login))
        );
        assert_eq!(path("/grpc.health.v1.Health/Check"), None);
    }

    #[test]
    fn every_name_reads_back_as_its_rpc() {
        for rpc in Rpc::ALL {
            assert_eq!(Rpc::from_name(rpc.name()), Some(rpc));
        }
    }
}
