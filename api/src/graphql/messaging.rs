//! The messaging part of the query and mutation roots: threads, messages,
//! read receipts, notifications and their preferences. Merged into `Query`
//! and `Mutation`; each resolver parses, calls one service function and
//! maps the result.

use async_graphql::{Context, Object};
use chrono::NaiveTime;
use service::codes::IanaZone;
use service::domain::UserId;
use service::messaging::{NewThread, ThreadFilter as Filter};
use service::pagination::TimeKey;
use uuid::Uuid;

use super::scope::{ScopeExt, in_savepoint};
use super::types::connection::page_request;
use super::types::messaging::{
    AttachmentInput, Message, NotificationConnection, NotificationPreferences,
    NotificationPreferencesInput, StartThreadInput, Thread, ThreadConnection, ThreadFilter,
    notification_connection, thread_connection,
};
use crate::error::{ApiError, GqlResult, IntoGql};

#[derive(Default)]
pub struct MessagingQuery;

#[Object]
impl MessagingQuery {
    /// Message threads the caller can see, most recently active first:
    /// the clinic's for staff, their own for patients and proxies.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn threads(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Which threads to list; all the caller may see when omitted.")]
        filter: Option<ThreadFilter>,
    ) -> GqlResult<ThreadConnection> {
        let actor = ctx.clinical_actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let filter = filter.unwrap_or_default();
        let filter = Filter {
            patient: filter.patient_id.map(Into::into),
            unread_only: filter.unread_only,
        };
        let rows = service::messaging::threads(&ctx.scope()?.tx, actor, &filter, &page)
            .await
            .gql()?;
        Ok(thread_connection(rows))
    }

    /// One thread; null when it does not exist or may not be seen.
    async fn thread(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The thread's id.")] id: Uuid,
    ) -> GqlResult<Option<Thread>> {
        ctx.clinical_actor()?;
        let row = ctx.loaders()?.thread.load_one(id).await.gql()?;
        Ok(row.map(Thread))
    }

    /// The caller's notifications in this clinic, newest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
        #[graphql(desc = "Only those not marked read.", default)] unread_only: bool,
    ) -> GqlResult<NotificationConnection> {
        ctx.actor()?;
        let page = page_request::<TimeKey>(first, after)?;
        let rows = service::notifications::list(&ctx.scope()?.tx, unread_only, &page)
            .await
            .gql()?;
        Ok(notification_connection(rows))
    }

    /// The caller's notification preferences in this clinic.
    async fn notification_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> GqlResult<NotificationPreferences> {
        ctx.actor()?;
        Ok(service::notifications::preferences(&ctx.scope()?.tx)
            .await
            .gql()?
            .into())
    }
}

#[derive(Default)]
pub struct MessagingMutation;

fn clock(field: &'static str, raw: Option<&str>) -> GqlResult<Option<NaiveTime>> {
    raw.map(|t| {
        NaiveTime::parse_from_str(t.trim(), "%H:%M")
            .map_err(|_| ApiError::bad_input(field, "a time of day as HH:MM").into())
    })
    .transpose()
}

#[Object]
impl MessagingMutation {
    /// Starts a thread about a patient with its first message. Staff may
    /// start one about any patient of the clinic; a patient or proxy about
    /// a patient they may message about (else FORBIDDEN, PROXY_SCOPE). A
    /// participant who is not staff, the patient or a proxy allowed to
    /// message is CONFLICT INELIGIBLE_PARTICIPANT.
    async fn start_thread(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The thread and its first message.")] input: StartThreadInput,
    ) -> GqlResult<Thread> {
        let actor = ctx.clinical_actor()?;
        let attachments = AttachmentInput::parse(input.attachments)?;
        let new = NewThread {
            patient: input.patient_id.into(),
            subject: input.subject,
            participants: input
                .participant_ids
                .into_iter()
                .map(UserId::from)
                .collect(),
            body: input.body,
            attachments,
        };
        let (thread, _) = in_savepoint(ctx, async |tx| {
            service::messaging::start_thread(tx, actor, new).await
        })
        .await?;
        Ok(Thread(thread))
    }

    /// Sends a message to a thread the caller can see (NOT_FOUND
    /// otherwise). Staff who were not taking part join the thread.
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The thread.")] thread_id: Uuid,
        #[graphql(desc = "The text (1 to 10,000 characters).")] body: String,
        #[graphql(desc = "Files sent with it, by reference (at most 10).")] attachments: Option<
            Vec<AttachmentInput>,
        >,
    ) -> GqlResult<Message> {
        let actor = ctx.clinical_actor()?;
        let attachments = AttachmentInput::parse(attachments)?;
        let m = in_savepoint(ctx, async |tx| {
            service::messaging::send(tx, actor, thread_id, &body, &attachments).await
        })
        .await?;
        Ok(Message(m))
    }

    /// Replaces the text of the caller's own message (FORBIDDEN NOT_SENDER
    /// for anyone else's; CONFLICT MESSAGE_DELETED once deleted). The
    /// earlier text is kept in its history.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The message.")] id: Uuid,
        #[graphql(desc = "The new text (1 to 10,000 characters).")] body: String,
    ) -> GqlResult<Message> {
        let actor = ctx.clinical_actor()?;
        let m = in_savepoint(ctx, async |tx| {
            service::messaging::edit(tx, actor, id, &body).await
        })
        .await?;
        Ok(Message(m))
    }

    /// Deletes the caller's own message: it shows as deleted, its text is
    /// kept in its history (FORBIDDEN NOT_SENDER for anyone else's).
    async fn delete_message(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The message.")] id: Uuid,
    ) -> GqlResult<Message> {
        let actor = ctx.clinical_actor()?;
        let m = in_savepoint(ctx, async |tx| {
            service::messaging::delete(tx, actor, id).await
        })
        .await?;
        Ok(Message(m))
    }

    /// Records that the caller has read the thread up to now (their read
    /// receipt). Staff who were not taking part join the thread.
    async fn mark_thread_read(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The thread.")] thread_id: Uuid,
    ) -> GqlResult<Thread> {
        let actor = ctx.clinical_actor()?;
        let t = in_savepoint(ctx, async |tx| {
            service::messaging::mark_read(tx, actor, thread_id).await
        })
        .await?;
        Ok(Thread(t))
    }

    /// Marks the caller's notifications read: those named (at most 100),
    /// or all of them when `ids` is omitted. Returns how many changed.
    async fn mark_notifications_read(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The notifications; all of the caller's when omitted.")] ids: Option<
            Vec<Uuid>,
        >,
    ) -> GqlResult<i32> {
        ctx.actor()?;
        let n = in_savepoint(ctx, async |tx| {
            service::notifications::mark_read(tx, ids.as_deref()).await
        })
        .await?;
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }

    /// Replaces the caller's notification preferences in this clinic.
    async fn set_notification_preferences(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The preferences.")] input: NotificationPreferencesInput,
    ) -> GqlResult<NotificationPreferences> {
        let actor = ctx.actor()?;
        let start = clock("quietStart", input.quiet_start.as_deref())?;
        let end = clock("quietEnd", input.quiet_end.as_deref())?;
        let quiet = match (start, end) {
            (Some(s), Some(e)) if s != e => Some((s, e)),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_input("quietEnd", "must differ from quietStart").into());
            }
            _ => {
                return Err(
                    ApiError::bad_input("quietEnd", "quietStart and quietEnd go together").into(),
                );
            }
        };
        let zone = input
            .timezone
            .as_deref()
            .map(|z| IanaZone::parse("timezone", z))
            .transpose()
            .gql()?;
        let muted = input.muted();
        let prefs = in_savepoint(ctx, async |tx| {
            service::notifications::set_preferences(tx, actor, &muted, quiet, zone).await
        })
        .await?;
        Ok(prefs.into())
    }
}
