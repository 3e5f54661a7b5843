//! Health: SERVING while the database answers, for `""` and AuthService.

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, DatabaseConnection};
use tonic::server::NamedService as _;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::grpc::AuthGrpc;
use crate::grpc::pb::auth_service_server::AuthServiceServer;
use crate::storage::SeaOrmStore;

/// How often the database is pinged to drive health.
const HEALTH_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The service name health answers for besides `""`, from the generated code.
const HEALTH_SERVICE: &str = AuthServiceServer::<AuthGrpc<SeaOrmStore>>::NAME;

pub(super) async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(HEALTH_SERVICE, status).await;
}

/// Turns health NOT_SERVING while the database does not answer.
pub(super) async fn watch_database(db: DatabaseConnection, reporter: HealthReporter) {
    let mut serving = true;
    loop {
        tokio::time::sleep(HEALTH_PROBE_INTERVAL).await;
        let ok = tokio::time::timeout(Duration::from_secs(2), db.execute_unprepared("SELECT 1"))
            .await
            .is_ok_and(|r| r.is_ok());
        if ok != serving {
            serving = ok;
            if ok {
                tracing::info!("database answers again; serving");
            } else {
                tracing::error!("database does not answer; health NOT_SERVING");
            }
            set_health(
                &reporter,
                if ok {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                },
            )
            .await;
        }
    }
}
