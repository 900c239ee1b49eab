//! Consent: versioned legal documents and who signed which version.

use entity::consent_document;
use entity::user_consent;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::Tx;
use crate::actor::Actor;
use crate::context::RequestMeta;
use crate::domain::{DocumentId, new_id};
use crate::error::{DbResultExt, ServiceError, ServiceResult};

/// The active version of each document.
#[tracing::instrument(skip_all, name = "consent.active_documents", level = "debug")]
pub async fn active_documents(tx: &Tx) -> ServiceResult<Vec<consent_document::Model>> {
    consent_document::Entity::find()
        .filter(consent_document::Column::IsActive.eq(true))
        .order_by_asc(consent_document::Column::Kind)
        .all(tx)
        .await
        .or_db("loading consent documents")
}

/// The caller's signatures.
#[tracing::instrument(skip_all, name = "consent.my_signatures", level = "debug")]
pub async fn my_signatures(tx: &Tx) -> ServiceResult<Vec<user_consent::Model>> {
    user_consent::Entity::find()
        .order_by_desc(user_consent::Column::SignedAt)
        .all(tx)
        .await
        .or_db("loading signatures")
}

/// Signs the active version of a document. The time is the server's, and
/// the client's address and user agent are kept with it. Only an active
/// version can be signed; signing twice is `CONSENT_ALREADY_SIGNED`.
#[tracing::instrument(skip_all, name = "consent.sign", level = "debug", fields(document = %document))]
pub async fn sign(
    tx: &Tx,
    actor: &Actor,
    document: DocumentId,
    client: &RequestMeta,
) -> ServiceResult<user_consent::Model> {
    let doc = consent_document::Entity::find_by_id(document.into_uuid())
        .one(tx)
        .await
        .or_db("loading a consent document")?
        .ok_or(ServiceError::NotFound)?;
    if !doc.is_active {
        return Err(ServiceError::invalid(
            "documentId",
            "this version is no longer in force",
        ));
    }
    let model = user_consent::ActiveModel {
        id: Set(new_id()),
        user_id: Set(actor.user.into_uuid()),
        document_id: Set(doc.id),
        ip: Set(client.ip.map(|ip| ip.to_string())),
        user_agent: Set(client
            .user_agent
            .as_ref()
            .map(|ua| ua.chars().take(1000).collect())),
        ..Default::default()
    };
    model.insert(tx).await.or_db("signing a consent document")
}
