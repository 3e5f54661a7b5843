//! The example backend: one listener serving a tonic service
//! (`demo.v1.WhoAmIService/WhoAmI`) and an axum route (`GET /whoami`), both
//! behind warden-client's `RequireSession` layer. Shared by the example
//! binaries and the crate's tests.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::Extension;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use warden_client::{Credential, Identity, RequireSession};

/// The example's generated gRPC code.
pub mod demo {
    #![allow(clippy::all, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    tonic::include_proto!("demo.v1");
}

use demo::who_am_i_service_server::{WhoAmIService, WhoAmIServiceServer};
use demo::{WhoAmIRequest, WhoAmIResponse};

fn credential_name(credential: Credential) -> &'static str {
    match credential {
        Credential::SessionToken => "session_token",
        Credential::AccessToken => "access_token",
    }
}

/// The gRPC half: answers with the caller the layer put into the request.
#[derive(Debug, Default)]
pub struct WhoAmI;

#[tonic::async_trait]
impl WhoAmIService for WhoAmI {
    async fn who_am_i(
        &self,
        request: tonic::Request<WhoAmIRequest>,
    ) -> Result<tonic::Response<WhoAmIResponse>, tonic::Status> {
        // The layer lets no request through without an Identity; should it
        // ever be missing (a routing mistake), refuse rather than serve.
        let identity = request
            .extensions()
            .get::<Identity>()
            .ok_or_else(|| tonic::Status::unauthenticated("not signed in"))?;
        Ok(tonic::Response::new(WhoAmIResponse {
            user_id: identity.user_id.clone(),
            session_id: identity.session_id.clone(),
            amr: identity.amr.clone(),
            credential: credential_name(identity.credential).into(),
            username: identity.username.clone().unwrap_or_default(),
        }))
    }
}

/// The HTTP half: the same answer as JSON.
async fn whoami_http(Extension(identity): Extension<Identity>) -> impl IntoResponse {
    let body = serde_json::json!({
        "user_id": identity.user_id,
        "session_id": identity.session_id,
        "amr": identity.amr,
        "credential": credential_name(identity.credential),
        "username": identity.username,
    });
    ([(CONTENT_TYPE, "application/json")], body.to_string())
}

/// Both halves on one router, every route behind `layer`.
pub fn router(layer: RequireSession) -> axum::Router {
    let grpc = tonic::service::Routes::new(WhoAmIServiceServer::new(WhoAmI)).into_axum_router();
    grpc.route("/whoami", get(whoami_http)).layer(layer)
}

/// Serves the backend on `listener` until `shutdown` completes. HTTP/1.1
/// and HTTP/2 (gRPC) share the port.
pub async fn serve(
    listener: TcpListener,
    layer: RequireSession,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(layer))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A backend behind `layer`, bound to `addr` (port 0 picks one); returns
/// the bound address and the serving task.
#[allow(dead_code)] // For the tests and the load driver; `main` serves itself.
pub async fn start(
    addr: SocketAddr,
    layer: RequireSession,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, layer, std::future::pending()));
    Ok((bound, task))
}
