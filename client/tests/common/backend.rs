//! The example backend (`examples/backend`) started on port 0, and the two
//! ways to call it: HTTP `GET /whoami` and gRPC `demo.v1.WhoAmIService`.

use std::net::SocketAddr;

use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use warden_client::RequireSession;

#[path = "../../examples/backend/app.rs"]
pub mod app;

use app::demo::who_am_i_service_client::WhoAmIServiceClient;
pub use app::demo::{WhoAmIRequest, WhoAmIResponse};

/// A running example backend.
pub struct Backend {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP answer: status, `www-authenticate`, body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: http::StatusCode,
    pub www_authenticate: Option<String>,
    pub body: String,
}

impl Backend {
    pub async fn start(layer: RequireSession) -> Self {
        let (addr, task) = app::start("127.0.0.1:0".parse().unwrap(), layer)
            .await
            .expect("backend binds");
        Self { addr, task }
    }

    /// `GET /whoami` with `authorization: Bearer <token>` when given.
    pub async fn http(&self, token: Option<&str>) -> HttpAnswer {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
        let mut request = http::Request::get(format!("http://{}/whoami", self.addr));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = client
            .request(request.body(Empty::new()).unwrap())
            .await
            .expect("the backend answers HTTP");
        let status = response.status();
        let www_authenticate = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        HttpAnswer {
            status,
            www_authenticate,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    /// A gRPC client of the backend.
    pub async fn grpc(&self) -> WhoAmIServiceClient<tonic::transport::Channel> {
        WhoAmIServiceClient::connect(format!("http://{}", self.addr))
            .await
            .expect("the backend answers gRPC")
    }

    /// `WhoAmI` with the bearer `token`.
    pub async fn who_am_i(&self, token: &str) -> Result<WhoAmIResponse, tonic::Status> {
        self.grpc()
            .await
            .who_am_i(super::with_bearer(WhoAmIRequest {}, token))
            .await
            .map(tonic::Response::into_inner)
    }
}
