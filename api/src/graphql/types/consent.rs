//! Consent documents and signatures.

use async_graphql::{ID, Object};
use chrono::{DateTime, FixedOffset};
use entity::{consent_document, user_consent};
use uuid::Uuid;

use super::enums::ConsentKind;

#[derive(Clone)]
pub struct ConsentDocument(pub consent_document::Model);

/// One version of a legal document a user signs (`signConsent`). One
/// version of each kind is in force at a time; a signature is for one
/// version, so a new version needs a new signature.
#[Object]
impl ConsentDocument {
    /// The id of this version (what `signConsent` takes). A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Which document it is.
    async fn kind(&self) -> ConsentKind {
        self.0.kind.into()
    }
    /// The version number, unique per kind.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The title to show.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// The full text the user agrees to by signing, to show before they
    /// sign.
    async fn body(&self) -> &str {
        &self.0.body
    }
    /// When this version was published.
    async fn published_at(&self) -> DateTime<FixedOffset> {
        self.0.published_at
    }
}

#[derive(Clone)]
pub struct UserConsent(pub user_consent::Model);

/// The caller's signature of one version of a consent document. Each user
/// sees only their own.
#[Object]
impl UserConsent {
    /// The signature's id. A Relay node id: the object's UUID, which every argument taking a
    /// UUID accepts.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The `ConsentDocument.id` of the version signed.
    async fn document_id(&self) -> Uuid {
        self.0.document_id
    }
    /// Server time of the signature.
    async fn signed_at(&self) -> DateTime<FixedOffset> {
        self.0.signed_at
    }
    /// The IP address the signature came from (IPv4 or IPv6); null when
    /// unknown.
    async fn ip(&self) -> Option<&str> {
        super::address(self.0.ip.as_deref())
    }
    /// The `User-Agent` of the client that signed (its first 1000
    /// characters); null when it sent none.
    async fn user_agent(&self) -> Option<&str> {
        self.0.user_agent.as_deref()
    }
}
