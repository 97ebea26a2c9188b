//! `ops.v1.ApiKeys` over the API key store: create (the secret shown once), list, revoke.

use ops_proto::v1::api_keys_server::ApiKeys;
use ops_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::auth::api_keys::ApiKeyStore;
use crate::context::CallerContext;

#[derive(Debug, Clone)]
pub struct ApiKeysGrpc {
    store: ApiKeyStore,
}

impl ApiKeysGrpc {
    pub fn new(store: ApiKeyStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl ApiKeys for ApiKeysGrpc {
    async fn create_api_key(
        &self,
        request: Request<CreateApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let (key, secret) = self.store.create(&ctx, request.into_inner()).await?;
        tracing::info!(tenant = %ctx.tenant, principal = %ctx.principal, key_id = %key.id, roles = ?key.roles, "API key created");
        let target = format!("api-key:{} ({})", key.name, key.id);
        Ok(super::changed(
            CreateApiKeyResponse {
                key: Some(key),
                secret,
            },
            target,
        ))
    }

    async fn list_api_keys(
        &self,
        request: Request<ListApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let req = request.get_ref();
        let (keys, next_page_token) = self
            .store
            .list(&ctx, req.page_size, &req.page_token)
            .await?;
        Ok(Response::new(ListApiKeysResponse {
            keys,
            next_page_token,
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        let ctx = CallerContext::from_request(&request)?;
        let key = self.store.revoke(&ctx, &request.get_ref().id).await?;
        tracing::info!(tenant = %ctx.tenant, principal = %ctx.principal, key_id = %key.id, "API key revoked");
        let target = format!("api-key:{} ({})", key.name, key.id);
        Ok(super::changed(
            RevokeApiKeyResponse { key: Some(key) },
            target,
        ))
    }
}
