//! `warden.v1.AdminService` over the domain's admin use-cases: wire ↔
//! domain conversion only. Served on the admin listener alone, behind the
//! admin token ([`authn`]).

pub mod authn;

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::timestamp;
use super::pb;
use super::pb::admin_service_server::AdminService as AdminServiceRpc;
use crate::domain::admin::{ListUsers, UserRef};
use crate::domain::store::{AccountRecord, SessionDetails, Store};
use crate::domain::{AuthError, AuthService};

/// The service name, from the generated code.
pub use super::pb::admin_service_server::SERVICE_NAME;

/// The AdminService method of `path` (`/warden.v1.AdminService/GetUser`),
/// or `None` for other services.
pub fn method_of(path: &str) -> Option<&str> {
    path.strip_prefix('/')?
        .strip_prefix(SERVICE_NAME)?
        .strip_prefix('/')
}

/// The gRPC face of the admin use-cases.
pub struct AdminGrpc<S> {
    service: Arc<AuthService<S>>,
}

impl<S> AdminGrpc<S> {
    /// Serves `service`'s admin use-cases.
    pub fn new(service: Arc<AuthService<S>>) -> Self {
        Self { service }
    }
}

impl From<AccountRecord> for pb::User {
    fn from(a: AccountRecord) -> Self {
        Self {
            user_id: a.id.to_string(),
            username: a.username.as_str().to_owned(),
            created_at: Some(timestamp(a.created_at)),
            disabled_at: a.disabled_at.map(timestamp),
            totp_enabled: a.totp_enabled,
            remaining_recovery_codes: a.remaining_recovery_codes,
            trusted_devices: a.trusted_devices,
            locked_until: a.locked_until.map(timestamp),
            last_login_at: a.last_login_at.map(timestamp),
            live_sessions: a.live_sessions,
        }
    }
}

impl From<SessionDetails> for pb::SessionInfo {
    fn from(s: SessionDetails) -> Self {
        Self {
            session_id: s.id.to_string(),
            created_at: Some(timestamp(s.created_at)),
            last_used_at: Some(timestamp(s.last_used_at)),
            expires_at: Some(timestamp(s.expires_at)),
            authenticated_at: Some(timestamp(s.authenticated_at)),
            amr: s.amr,
            client_address: s.client_address.unwrap_or_default(),
            user_agent: s.user_agent.unwrap_or_default(),
        }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

fn reply<T, U: From<T>>(result: Result<T, AuthError>) -> RpcResult<U> {
    result
        .map(|v| Response::new(v.into()))
        .map_err(Status::from)
}

#[tonic::async_trait]
impl<S: Store> AdminServiceRpc for AdminGrpc<S> {
    async fn get_user(&self, request: Request<pb::GetUserRequest>) -> RpcResult<pb::User> {
        use pb::get_user_request::User;
        let user = request.into_inner().user;
        let user = user.as_ref().map(|u| match u {
            User::UserId(id) => UserRef::Id(id),
            User::Username(name) => UserRef::Name(name),
        });
        reply(self.service.admin_get_user(user).await)
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> RpcResult<pb::ListUsersResponse> {
        let r = request.into_inner();
        let page = self
            .service
            .admin_list_users(ListUsers {
                page_size: r.page_size,
                page_token: &r.page_token,
                username_prefix: &r.username_prefix,
            })
            .await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: page.users.into_iter().map(pb::User::from).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn disable_user(&self, request: Request<pb::DisableUserRequest>) -> RpcResult<pb::User> {
        reply(
            self.service
                .admin_disable_user(&request.into_inner().user_id)
                .await,
        )
    }

    async fn enable_user(&self, request: Request<pb::EnableUserRequest>) -> RpcResult<pb::User> {
        reply(
            self.service
                .admin_enable_user(&request.into_inner().user_id)
                .await,
        )
    }

    async fn unlock_user(&self, request: Request<pb::UnlockUserRequest>) -> RpcResult<pb::User> {
        reply(
            self.service
                .admin_unlock_user(&request.into_inner().user_id)
                .await,
        )
    }

    async fn reset_second_factors(
        &self,
        request: Request<pb::ResetSecondFactorsRequest>,
    ) -> RpcResult<pb::User> {
        reply(
            self.service
                .admin_reset_second_factors(&request.into_inner().user_id)
                .await,
        )
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> RpcResult<pb::ListSessionsResponse> {
        let sessions = self
            .service
            .admin_list_sessions(&request.into_inner().user_id)
            .await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: sessions.into_iter().map(pb::SessionInfo::from).collect(),
        }))
    }

    async fn revoke_session(&self, request: Request<pb::RevokeSessionRequest>) -> RpcResult<()> {
        reply(
            self.service
                .admin_revoke_session(&request.into_inner().session_id)
                .await,
        )
    }

    async fn revoke_all_sessions(
        &self,
        request: Request<pb::RevokeAllSessionsRequest>,
    ) -> RpcResult<pb::RevokeAllSessionsResponse> {
        let revoked = self
            .service
            .admin_revoke_all_sessions(&request.into_inner().user_id)
            .await?;
        Ok(Response::new(pb::RevokeAllSessionsResponse {
            revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }
}
