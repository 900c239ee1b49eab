//! Consent documents and signatures.

use async_graphql::Object;
use chrono::{DateTime, FixedOffset};
use entity::{consent_document, user_consent};
use uuid::Uuid;

use super::enums::ConsentKind;

pub struct ConsentDocument(pub consent_document::Model);

#[Object]
impl ConsentDocument {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn kind(&self) -> ConsentKind {
        self.0.kind.into()
    }
    async fn version(&self) -> i32 {
        self.0.version
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn published_at(&self) -> DateTime<FixedOffset> {
        self.0.published_at
    }
}

pub struct UserConsent(pub user_consent::Model);

#[Object]
impl UserConsent {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    async fn document_id(&self) -> Uuid {
        self.0.document_id
    }
    /// Server time of the signature.
    async fn signed_at(&self) -> DateTime<FixedOffset> {
        self.0.signed_at
    }
    async fn ip(&self) -> Option<&str> {
        super::address(self.0.ip.as_deref())
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
}
