//! `ops.v1.Alerts` over the alert store: rules, their webhooks and the deliveries made.

use ops_proto::v1::alerts_server::Alerts;
use ops_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::context::CallerContext;
use crate::watch::alerts::AlertStore;

#[derive(Debug, Clone)]
pub struct AlertsGrpc {
    store: AlertStore,
}

impl AlertsGrpc {
    pub fn new(store: AlertStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl Alerts for AlertsGrpc {
    async fn create_alert(
        &self,
        request: Request<CreateAlertRequest>,
    ) -> Result<Response<CreateAlertResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let alert = self.store.create(&ctx, request.into_inner().alert).await?;
        let target = format!("alert:{} ({})", alert.name, alert.id);
        Ok(super::changed(
            CreateAlertResponse { alert: Some(alert) },
            target,
        ))
    }

    async fn list_alerts(
        &self,
        request: Request<ListAlertsRequest>,
    ) -> Result<Response<ListAlertsResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let req = request.get_ref();
        let (alerts, next_page_token) = self
            .store
            .list(&ctx, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(ListAlertsResponse {
            alerts,
            next_page_token,
        }))
    }

    async fn set_alert_enabled(
        &self,
        request: Request<SetAlertEnabledRequest>,
    ) -> Result<Response<SetAlertEnabledResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let req = request.get_ref();
        let alert = self.store.set_enabled(&ctx, &req.id, req.enabled).await?;
        let target = format!(
            "alert:{} ({}) {}",
            alert.name,
            alert.id,
            if req.enabled { "enabled" } else { "disabled" }
        );
        Ok(super::changed(
            SetAlertEnabledResponse { alert: Some(alert) },
            target,
        ))
    }

    async fn delete_alert(
        &self,
        request: Request<DeleteAlertRequest>,
    ) -> Result<Response<DeleteAlertResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let id = request.get_ref().id.clone();
        self.store.delete(&ctx, &id).await?;
        Ok(super::changed(
            DeleteAlertResponse {},
            format!("alert:{id}"),
        ))
    }

    async fn list_alert_deliveries(
        &self,
        request: Request<ListAlertDeliveriesRequest>,
    ) -> Result<Response<ListAlertDeliveriesResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let req = request.get_ref();
        let (deliveries, next_page_token) = self
            .store
            .deliveries(&ctx, &req.alert_id, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(ListAlertDeliveriesResponse {
            deliveries,
            next_page_token,
        }))
    }
}
