//! `SchedulerControl`, the executor-facing service: registration, heartbeats (liveness, and
//! reconciling the tasks each executor holds with [`ClusterState`]'s view) and task reports.

use std::sync::Arc;

use floe_proto::scheduler_control_server::SchedulerControl;
use floe_proto::{
    HeartbeatRequest, HeartbeatResponse, RegisterExecutorRequest, RegisterExecutorResponse,
    TaskStatusAck, TaskStatusReport,
};
use tonic::{Request, Response, Status};

use crate::state::{ClusterState, HEARTBEAT_INTERVAL};

/// The executor-facing half of the scheduler.
#[derive(Debug)]
pub struct ControlService {
    cluster: Arc<ClusterState>,
}

impl ControlService {
    /// A control service over `cluster`.
    pub fn new(cluster: Arc<ClusterState>) -> Self {
        Self { cluster }
    }
}

#[tonic::async_trait]
impl SchedulerControl for ControlService {
    async fn register_executor(
        &self,
        request: Request<RegisterExecutorRequest>,
    ) -> Result<Response<RegisterExecutorResponse>, Status> {
        let request = request.into_inner();
        if request.executor_id.is_empty() || request.address.is_empty() {
            return Err(Status::invalid_argument(
                "an executor must send its id and address",
            ));
        }
        self.cluster.register_executor(
            &request.executor_id,
            &request.address,
            request.slots as usize,
        )?;
        Ok(Response::new(RegisterExecutorResponse {
            heartbeat_interval_ms: HEARTBEAT_INTERVAL.as_millis() as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let known = self.cluster.heartbeat(request.get_ref());
        Ok(Response::new(HeartbeatResponse { reregister: !known }))
    }

    /// Acknowledged once applied; a duplicate is acknowledged and changes nothing.
    async fn report_task_status(
        &self,
        request: Request<TaskStatusReport>,
    ) -> Result<Response<TaskStatusAck>, Status> {
        self.cluster.task_status(request.into_inner());
        Ok(Response::new(TaskStatusAck {}))
    }
}
