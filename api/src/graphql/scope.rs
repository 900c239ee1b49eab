//! What one request's resolvers share: its transaction, who is asking, and
//! the ids of patients it returned (for the READ audit events). Built by the
//! request handler for each request and never stored on the schema.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_graphql::Context;
use service::Tx;
use service::context::{RequestMeta, Viewer};
use service::{Actor, DbResultExt, ForbiddenReason, ServiceError, ServiceResult};
use uuid::Uuid;

use crate::error::{ApiError, GqlResult};
use crate::graphql::loaders::Loaders;

pub struct RequestScope {
    pub tx: Arc<Tx>,
    pub viewer: Viewer,
    pub meta: RequestMeta,
    reads: Mutex<BTreeSet<Uuid>>,
    /// Patients opened by break-glass within this request (the viewer's
    /// context, set before, does not list them).
    opened: Mutex<BTreeSet<Uuid>>,
}

impl RequestScope {
    pub fn new(tx: Arc<Tx>, viewer: Viewer, meta: RequestMeta) -> Self {
        Self {
            tx,
            viewer,
            meta,
            reads: Mutex::default(),
            opened: Mutex::default(),
        }
    }

    /// Notes that the response carries these patients' data.
    pub fn record_reads(&self, ids: impl IntoIterator<Item = Uuid>) {
        if let Ok(mut reads) = self.reads.lock() {
            reads.extend(ids);
        }
    }

    pub fn take_reads(&self) -> Vec<Uuid> {
        self.reads
            .lock()
            .map(|mut r| std::mem::take(&mut *r).into_iter().collect())
            .unwrap_or_default()
    }

    /// Notes that this request opened `patient` by break-glass: its reads
    /// from now on are audited as such.
    pub fn opened_break_glass(&self, patient: Uuid) {
        if let Ok(mut opened) = self.opened.lock() {
            opened.insert(patient);
        }
    }

    /// The patients the caller reaches only through break-glass: those of
    /// the session's live openings, and those opened within this request.
    pub fn break_glass(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .viewer
            .actor
            .as_ref()
            .map(|a| a.break_glass.to_vec())
            .unwrap_or_default();
        if let Ok(opened) = self.opened.lock() {
            ids.extend(opened.iter().copied());
        }
        ids
    }

    /// Runs one mutation in a savepoint: if it fails, everything it wrote is
    /// undone, and the rest of the request (earlier mutations, audit
    /// events) stands.
    pub async fn in_savepoint<T, F>(&self, f: F) -> ServiceResult<T>
    where
        F: AsyncFnOnce(&Tx) -> ServiceResult<T>,
    {
        let savepoint = self.tx.savepoint().await.or_db("opening a savepoint")?;
        match f(&self.tx).await {
            Ok(value) => {
                savepoint.release().await.or_db("releasing a savepoint")?;
                Ok(value)
            }
            Err(err) => {
                if let Err(e) = savepoint.rollback().await {
                    tracing::warn!(error = %e, "rolling back a savepoint");
                }
                Err(err)
            }
        }
    }
}

/// [`RequestScope::in_savepoint`] for a resolver: one mutation's service
/// call, in its own savepoint, its error mapped for the client.
pub async fn in_savepoint<T, F>(ctx: &Context<'_>, f: F) -> GqlResult<T>
where
    F: AsyncFnOnce(&Tx) -> ServiceResult<T>,
{
    ctx.scope()?
        .in_savepoint(f)
        .await
        .map_err(|e| ApiError::from(e).into())
}

/// Resolver shorthands on the GraphQL context.
pub trait ScopeExt {
    fn scope(&self) -> GqlResult<&Arc<RequestScope>>;
    /// The caller, or UNAUTHENTICATED; FORBIDDEN / MFA_ENROLMENT_REQUIRED
    /// while the clinic requires a second factor of them and they have none.
    fn actor(&self) -> GqlResult<&Actor>;
    /// The caller, when they may see patient data: refused with FORBIDDEN /
    /// CONSENT_REQUIRED until the active HIPAA notice is signed (and as
    /// [`actor`](Self::actor) refuses).
    fn clinical_actor(&self) -> GqlResult<&Actor>;
    /// The caller, even while the clinic's MFA requirement leaves them able
    /// only to enrol a factor: for `me`, `logout` and the enrolment
    /// mutations, and nothing else.
    fn actor_enrolling_mfa(&self) -> GqlResult<&Actor>;
    /// The request's DataLoaders.
    fn loaders(&self) -> GqlResult<&Loaders>;
    /// A value registered on the schema for every request (the token
    /// issuer, the login settings).
    fn shared<T: std::any::Any + Send + Sync>(&self) -> GqlResult<&T>;
}

impl ScopeExt for Context<'_> {
    fn shared<T: std::any::Any + Send + Sync>(&self) -> GqlResult<&T> {
        self.data::<T>().map_err(|_| {
            tracing::error!(missing = std::any::type_name::<T>(), "schema data missing");
            ApiError::internal().into()
        })
    }

    fn loaders(&self) -> GqlResult<&Loaders> {
        self.data::<Arc<Loaders>>().map(AsRef::as_ref).map_err(|_| {
            tracing::error!("loaders missing from the GraphQL context");
            ApiError::internal().into()
        })
    }

    fn scope(&self) -> GqlResult<&Arc<RequestScope>> {
        self.data::<Arc<RequestScope>>().map_err(|_| {
            tracing::error!("request scope missing from the GraphQL context");
            ApiError::internal().into()
        })
    }

    fn actor_enrolling_mfa(&self) -> GqlResult<&Actor> {
        self.scope()?
            .viewer
            .actor
            .as_ref()
            .ok_or_else(|| ApiError::unauthenticated().into())
    }

    fn actor(&self) -> GqlResult<&Actor> {
        let scope = self.scope()?;
        let actor = self.actor_enrolling_mfa()?;
        if scope.viewer.mfa_required {
            return Err(ApiError::from(ServiceError::Forbidden(
                ForbiddenReason::MfaEnrolmentRequired,
            ))
            .into());
        }
        Ok(actor)
    }

    fn clinical_actor(&self) -> GqlResult<&Actor> {
        let scope = self.scope()?;
        let actor = self.actor()?;
        if scope.viewer.consent_required {
            return Err(
                ApiError::from(ServiceError::Forbidden(ForbiddenReason::ConsentRequired)).into(),
            );
        }
        Ok(actor)
    }
}
