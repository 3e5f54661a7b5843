//! Transport and operations: the plaintext health-only port, `/metrics`,
//! TLS and mTLS on the main listener.

use std::net::SocketAddr;

use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use warden::grpc::pb;
use warden::grpc::pb::auth_service_client::AuthServiceClient;

use crate::helpers::TestServer;

async fn plaintext(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect")
}

async fn health_status(channel: Channel, service: &str) -> ServingStatus {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status()
}

#[tokio::test]
async fn the_health_port_serves_health_and_nothing_else() {
    let server = TestServer::start_with(|config| {
        config.server.health_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let health_addr = server.health_addr.expect("health listener bound");
    assert_ne!(health_addr, server.addr);

    for service in ["", "warden.v1.AuthService"] {
        assert_eq!(
            health_status(plaintext(health_addr).await, service).await,
            ServingStatus::Serving,
            "service {service:?}"
        );
    }

    let mut auth = AuthServiceClient::new(plaintext(health_addr).await);
    let refused = auth
        .validate_session(pb::ValidateSessionRequest { token: "x".into() })
        .await
        .expect_err("no AuthService on the health port");
    assert_eq!(refused.code(), Code::Unimplemented, "{refused:?}");

    server.stop().await;
}
