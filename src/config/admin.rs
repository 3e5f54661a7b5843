//! The operator API's own listener: where it listens, the token every call
//! must carry, and its in-flight cap. Unset listener: no admin API at all.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use secrecy::SecretString;

use super::{ConfigError, refuse, secret, within};

/// The most admin calls in flight one may ask for.
const MAX_ADMIN_IN_FLIGHT: usize = 10_000;

/// The admin listener.
#[derive(Debug, Clone, Args)]
pub struct AdminSettings {
    /// Address of the admin listener (AdminService and reflection only).
    /// Unset: no admin API, nothing listens.
    #[arg(long, env = "WARDEN_ADMIN_LISTEN", global = true)]
    pub admin_listen: Option<SocketAddr>,
    /// The token every admin call carries as `authorization: Bearer`; at
    /// least 256 bits' worth (e.g. `openssl rand -base64 32`).
    #[arg(long = "admin-token", value_name = "ADMIN_TOKEN", env = "WARDEN_ADMIN_TOKEN", value_parser = secret, global = true, hide_env_values = true)]
    pub admin_token: Option<SecretString>,
    /// File holding the admin token (surrounding whitespace is ignored).
    #[arg(long, env = "WARDEN_ADMIN_TOKEN_FILE", global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// Admin calls in flight before new ones get UNAVAILABLE OVERLOADED.
    /// The admin listener has no other rate limit.
    #[arg(
        long,
        env = "WARDEN_ADMIN_MAX_IN_FLIGHT",
        default_value_t = 16,
        global = true
    )]
    pub admin_max_in_flight: usize,
}

impl AdminSettings {
    /// A listener needs exactly one token source; a token without a
    /// listener is refused too (a typo in the listener's name would
    /// otherwise pass silently). The token's strength is checked when it
    /// is loaded, since a file is read only then.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let sources =
            usize::from(self.admin_token.is_some()) + usize::from(self.admin_token_file.is_some());
        if sources > 1 {
            return refuse("set WARDEN_ADMIN_TOKEN or WARDEN_ADMIN_TOKEN_FILE, not both");
        }
        match (self.admin_listen.is_some(), sources) {
            (true, 0) => {
                return refuse(
                    "WARDEN_ADMIN_LISTEN needs WARDEN_ADMIN_TOKEN or WARDEN_ADMIN_TOKEN_FILE",
                );
            }
            (false, 1) => {
                return refuse(
                    "WARDEN_ADMIN_TOKEN or WARDEN_ADMIN_TOKEN_FILE is set but WARDEN_ADMIN_LISTEN is not",
                );
            }
            _ => {}
        }
        within(
            "WARDEN_ADMIN_MAX_IN_FLIGHT",
            self.admin_max_in_flight,
            1,
            MAX_ADMIN_IN_FLIGHT,
        )
    }
}
