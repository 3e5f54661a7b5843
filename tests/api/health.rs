//! Health and reflection work with no proto files.

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::TestServer;

#[tokio::test]
async fn health_is_serving_for_the_server_and_the_auth_service() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.channel().await);

    for service in ["", "warden.v1.AuthService"] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner();
        assert_eq!(
            response.status(),
            ServingStatus::Serving,
            "service {service:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_auth_and_health_services() {
    let server = TestServer::start().await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let response = stream
        .message()
        .await
        .expect("stream")
        .expect("one response");

    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"warden.v1.AuthService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn reflection_serves_the_error_detail_types_errors_carry() {
    let server = TestServer::start().await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);

    let mut found = Vec::new();
    for symbol in [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.RetryInfo",
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        };
        let response = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("reflection answers")
            .into_inner()
            .message()
            .await
            .expect("stream")
            .expect("one response");
        found.push((
            symbol,
            matches!(
                response.message_response,
                Some(MessageResponse::FileDescriptorResponse(ref files))
                    if !files.file_descriptor_proto.is_empty()
            ),
        ));
    }

    // Without them grpcurl prints "google.rpc.ErrorInfo is not recognized".
    assert!(found.iter().all(|(_, ok)| *ok), "{found:?}");
    server.stop().await;
}
