//! The admin listener under test: a token that passes the strength rule,
//! a configuration that turns the listener on, and a client that carries
//! the token.

use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};
use warden::config::Config;
use warden::grpc::pb;
use warden::grpc::pb::admin_service_client::AdminServiceClient;

use super::*;

/// The admin token of test servers (what `openssl rand -base64 32` prints).
pub const ADMIN_TOKEN: &str = "q8Jk1b3xY0Zf5mLwN2vR9sT4uPaCdE6gHhIiJjKkLl0=";

/// Turns the admin listener on, on a free port, with [`ADMIN_TOKEN`].
pub fn with_admin(config: &mut Config) {
    config.admin.admin_listen = Some("127.0.0.1:0".parse().expect("address"));
    config.admin.admin_token = Some(ADMIN_TOKEN.to_owned().into());
}

/// Adds `authorization: Bearer <token>` to every call (none for `None`).
#[derive(Clone)]
pub struct AdminBearer(pub Option<String>);

impl Interceptor for AdminBearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header value"),
            );
        }
        Ok(request)
    }
}

/// An admin client.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, AdminBearer>>;

/// An admin client on `channel` presenting `token`.
pub fn admin_client_on(channel: Channel, token: Option<&str>) -> AdminClient {
    AdminServiceClient::with_interceptor(channel, AdminBearer(token.map(str::to_owned)))
}

impl TestServer {
    /// A server with the admin listener on.
    pub async fn start_admin() -> Self {
        Self::start_with(with_admin).await
    }

    /// A fresh connection to the admin listener.
    pub async fn admin_channel(&self) -> Channel {
        let addr = self.admin_addr.expect("the admin listener is on");
        Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect to the admin listener")
    }

    /// An admin client with the right token.
    pub async fn admin(&self) -> AdminClient {
        admin_client_on(self.admin_channel().await, Some(ADMIN_TOKEN))
    }

    /// GetUser by id, expecting the account.
    pub async fn admin_user(&self, user_id: &str) -> pb::User {
        self.admin()
            .await
            .get_user(pb::GetUserRequest {
                user: Some(pb::get_user_request::User::UserId(user_id.into())),
            })
            .await
            .expect("get user")
            .into_inner()
    }
}

/// Runs `call` once per channel with an admin client presenting
/// `token(i)`, every call released at the same moment (see `race`).
pub async fn admin_race<T, F, Fut>(
    channels: Vec<Channel>,
    token: impl Fn(usize) -> Option<String>,
    call: F,
) -> Vec<Result<T, Status>>
where
    F: Fn(AdminClient, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(channels.len()));
    let calls: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(i, channel)| {
            let (barrier, call) = (barrier.clone(), call.clone());
            let client = AdminServiceClient::with_interceptor(channel, AdminBearer(token(i)));
            tokio::spawn(async move {
                barrier.wait().await;
                call(client, i).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(calls.len());
    for call in calls {
        answers.push(call.await.expect("call task"));
    }
    answers
}
