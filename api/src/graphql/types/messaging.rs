//! Secure messaging and notifications: threads about a patient, their
//! messages and participants, and each user's notifications.

use async_graphql::connection::{Connection, Edge, OpaqueCursor};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, FixedOffset};
use service::messaging::{self as svc, Attachment as AttachmentRow};
use service::notifications::{self as notes, NotificationKind as Kind};
use service::pagination::{Page, TimeKey};
use uuid::Uuid;

use super::connection::page_request;
use super::patient::Patient;
use crate::error::{ApiError, GqlResult, IntoGql};
use crate::graphql::scope::ScopeExt;

pub type ThreadConnection = Connection<OpaqueCursor<TimeKey>, Thread>;
pub type MessageConnection = Connection<OpaqueCursor<TimeKey>, Message>;
pub type NotificationConnection = Connection<OpaqueCursor<TimeKey>, Notification>;

/// The description of `ThreadConnection`.
pub const THREAD_CONNECTION_DESCRIPTION: &str = "\
    A page of message threads, most recently active first. Ask for the next\n\
    page with `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";
/// The description of `MessageConnection`.
pub const MESSAGE_CONNECTION_DESCRIPTION: &str = "\
    A page of a thread's messages, newest first. Ask for older ones with\n\
    `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";
/// The description of `NotificationConnection`.
pub const NOTIFICATION_CONNECTION_DESCRIPTION: &str = "\
    A page of the caller's notifications, newest first. Ask for the next\n\
    page with `after: pageInfo.endCursor` while `pageInfo.hasNextPage`.";

pub fn thread_connection(page: Page<svc::Thread>) -> ThreadConnection {
    let mut conn = Connection::new(false, page.has_next_page);
    for t in page.items {
        conn.edges.push(Edge::new(OpaqueCursor(t.key()), Thread(t)));
    }
    conn
}

pub fn notification_connection(page: Page<notes::Notification>) -> NotificationConnection {
    let mut conn = Connection::new(false, page.has_next_page);
    for n in page.items {
        conn.edges
            .push(Edge::new(OpaqueCursor(n.key()), Notification(n)));
    }
    conn
}

/// A person taking part in a conversation, by the name they go by.
#[derive(SimpleObject, Clone)]
pub struct Person {
    /// The user's id.
    pub id: Uuid,
    /// Their name; null when the caller may not see it.
    pub display_name: Option<String>,
}

async fn person(ctx: &Context<'_>, id: Uuid) -> GqlResult<Person> {
    let name = ctx.loaders()?.participant_names.load_one(id).await.gql()?;
    Ok(Person {
        id,
        display_name: name,
    })
}

#[derive(Clone)]
pub struct Thread(pub svc::Thread);

/// A conversation about one patient between clinic staff and the patient
/// or their proxies. Staff see every thread of the clinic; a patient or
/// proxy sees the threads they take part in, while allowed to message about
/// the patient.
#[Object]
impl Thread {
    /// The thread's id (for `sendMessage`, `markThreadRead`, `messageAdded`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What it is about.
    async fn subject(&self) -> &str {
        &self.0.subject
    }
    /// The patient it is about; null when the caller may not see the
    /// patient's profile (a proxy allowed only to message).
    async fn patient(&self, ctx: &Context<'_>) -> GqlResult<Option<Patient>> {
        let p = ctx
            .loaders()?
            .patient
            .load_one(self.0.patient_id.into())
            .await
            .gql()?;
        Ok(p.map(Patient))
    }
    /// The patient's id.
    async fn patient_id(&self) -> Uuid {
        self.0.patient_id
    }
    /// Who started it.
    async fn started_by(&self, ctx: &Context<'_>) -> GqlResult<Person> {
        person(ctx, self.0.created_by).await
    }
    /// How many messages it holds (deleted ones included).
    async fn message_count(&self) -> i32 {
        self.0.message_count
    }
    /// When its last message was sent; null before the first.
    async fn last_message_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.last_message_at
    }
    /// When it was started.
    async fn created_at(&self) -> DateTime<FixedOffset> {
        self.0.created_at
    }
    /// Who takes part, with their read receipts.
    async fn participants(&self, ctx: &Context<'_>) -> GqlResult<Vec<Participant>> {
        let rows = ctx
            .loaders()?
            .participants
            .load_one(self.0.id)
            .await
            .gql()?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Participant).collect())
    }
    /// Whether messages arrived since the caller last read it (always true
    /// for a thread with messages the caller never read).
    async fn has_unread(&self, ctx: &Context<'_>) -> GqlResult<bool> {
        let me = ctx.actor()?.user.into_uuid();
        let Some(last) = self.0.last_message_at else {
            return Ok(false);
        };
        let rows = ctx
            .loaders()?
            .participants
            .load_one(self.0.id)
            .await
            .gql()?
            .unwrap_or_default();
        let read = rows
            .iter()
            .find(|p| p.user_id == me)
            .and_then(|p| p.last_read_at);
        Ok(read.is_none_or(|r| r < last))
    }
    /// Its messages, newest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many to return: 0 to 100, 20 when omitted (more is \
                          BAD_USER_INPUT on `first`).")]
        first: Option<i32>,
        #[graphql(desc = "Where to continue: the `pageInfo.endCursor` of the previous \
                          page of this same list (any other cursor is BAD_USER_INPUT on \
                          `after`). Omit for the first page.")]
        after: Option<String>,
    ) -> GqlResult<MessageConnection> {
        let page = page_request::<TimeKey>(first, after)?;
        let result = ctx
            .loaders()?
            .messages_by_thread
            .load_one((self.0.id, page))
            .await
            .gql()?
            .ok_or_else(ApiError::internal)?;
        if !result.items.is_empty() {
            // Messages about a patient are part of their record.
            ctx.scope()?.record_reads([self.0.patient_id]);
        }
        let mut conn = Connection::new(false, result.has_next_page);
        for m in result.items {
            conn.edges
                .push(Edge::new(OpaqueCursor(m.key()), Message(m)));
        }
        Ok(conn)
    }
}

#[derive(Clone)]
pub struct Participant(pub svc::Participant);

/// Someone taking part in a thread, and how far they have read.
#[Object]
impl Participant {
    /// Who they are.
    async fn user(&self, ctx: &Context<'_>) -> GqlResult<Person> {
        person(ctx, self.0.user_id).await
    }
    /// Why they may take part: STAFF, PATIENT or PROXY.
    async fn kind(&self) -> ParticipantKind {
        match self.0.kind.as_str() {
            "PATIENT" => ParticipantKind::Patient,
            "PROXY" => ParticipantKind::Proxy,
            _ => ParticipantKind::Staff,
        }
    }
    /// When they joined.
    async fn added_at(&self) -> DateTime<FixedOffset> {
        self.0.added_at
    }
    /// Their read receipt: every message sent up to this time counts as
    /// read by them; null when they have read nothing yet.
    async fn last_read_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.last_read_at
    }
}

/// Why a person may take part in a thread.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ParticipantKind {
    /// A member of the clinic's staff.
    Staff,
    /// The patient, with their own login.
    Patient,
    /// A proxy (parent, guardian) whose grant allows messaging.
    Proxy,
}

#[derive(Clone)]
pub struct Message(pub svc::Message);

/// One message of a thread. Edits and deletions keep the earlier text in
/// the message's history.
#[Object]
impl Message {
    /// The message's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The thread's id.
    async fn thread_id(&self) -> Uuid {
        self.0.thread_id
    }
    /// Its thread.
    async fn thread(&self, ctx: &Context<'_>) -> GqlResult<Option<Thread>> {
        let t = ctx
            .loaders()?
            .thread
            .load_one(self.0.thread_id)
            .await
            .gql()?;
        Ok(t.map(Thread))
    }
    /// Who sent it.
    async fn sender(&self, ctx: &Context<'_>) -> GqlResult<Person> {
        person(ctx, self.0.sender_user_id).await
    }
    /// Its text; null once deleted.
    async fn body(&self) -> Option<&str> {
        self.0.body.as_deref()
    }
    /// When it was sent (server time).
    async fn sent_at(&self) -> DateTime<FixedOffset> {
        self.0.sent_at
    }
    /// When its text last changed; null when never edited.
    async fn edited_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.edited_at
    }
    /// When it was deleted; null while it stands.
    async fn deleted_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.deleted_at
    }
    /// 1 when sent; one more with each edit or the deletion.
    async fn revision(&self) -> i32 {
        self.0.revision
    }
    /// Files sent with it, by reference.
    async fn attachments(&self, ctx: &Context<'_>) -> GqlResult<Vec<Attachment>> {
        let rows = ctx
            .loaders()?
            .attachments
            .load_one(self.0.id)
            .await
            .gql()?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Attachment).collect())
    }
    /// Its earlier texts, oldest first (clinic staff only; empty for
    /// patients and proxies).
    async fn history(&self, ctx: &Context<'_>) -> GqlResult<Vec<MessageRevision>> {
        if !ctx.actor()?.role.is_staff() || self.0.revision == 1 {
            return Ok(Vec::new());
        }
        let rows = ctx
            .loaders()?
            .revisions
            .load_one(self.0.id)
            .await
            .gql()?
            .unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|r| MessageRevision {
                revision: r.revision,
                body: r.body,
                replaced_at: r.replaced_at,
            })
            .collect())
    }
}

/// A text a message held before an edit or its deletion.
#[derive(SimpleObject, Clone)]
pub struct MessageRevision {
    /// Which revision it was (1: as sent).
    pub revision: i32,
    /// Its text.
    pub body: String,
    /// When it was replaced.
    pub replaced_at: DateTime<FixedOffset>,
}

#[derive(Clone)]
pub struct Attachment(pub AttachmentRow);

/// A file sent with a message, by reference: caregate keeps its name,
/// type, size and checksum; the file itself lives in the client's storage.
#[Object]
impl Attachment {
    /// The attachment's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The file's name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Its media type, e.g. `application/pdf`.
    async fn media_type(&self) -> &str {
        &self.0.media_type
    }
    /// Its size in bytes.
    async fn size_bytes(&self) -> i64 {
        self.0.size_bytes
    }
    /// Its SHA-256, as 64 lower-case hex digits.
    async fn sha256(&self) -> String {
        self.0.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A file reference to send with a message.
#[derive(InputObject)]
pub struct AttachmentInput {
    /// The file's name (1 to 255 characters).
    pub name: String,
    /// Its media type, e.g. `application/pdf`.
    pub media_type: String,
    /// Its size in bytes (up to 1 GiB).
    pub size_bytes: i64,
    /// Its SHA-256, as 64 hex digits.
    pub sha256: String,
}

impl AttachmentInput {
    pub fn parse(list: Option<Vec<Self>>) -> GqlResult<Vec<svc::AttachmentRef>> {
        list.unwrap_or_default()
            .iter()
            .map(|a| svc::AttachmentRef::parse(&a.name, &a.media_type, a.size_bytes, &a.sha256))
            .collect::<Result<Vec<_>, _>>()
            .gql()
    }
}

/// A thread to start.
#[derive(InputObject)]
pub struct StartThreadInput {
    /// The patient it is about.
    pub patient_id: Uuid,
    /// What it is about (1 to 200 characters).
    pub subject: String,
    /// Who else takes part (user ids, at most 20): staff of the clinic,
    /// the patient's own login, or proxies allowed to message. The caller
    /// always takes part.
    #[graphql(default)]
    pub participant_ids: Vec<Uuid>,
    /// The first message (1 to 10,000 characters).
    pub body: String,
    /// Files sent with the first message, by reference (at most 10).
    pub attachments: Option<Vec<AttachmentInput>>,
}

/// Which threads to list.
#[derive(InputObject, Default)]
pub struct ThreadFilter {
    /// Only threads about this patient.
    pub patient_id: Option<Uuid>,
    /// Only threads with messages the caller has not read.
    #[graphql(default)]
    pub unread_only: bool,
}

/// What a notification is about.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "service::notifications::NotificationKind")]
pub enum NotificationKind {
    /// A message arrived in a thread the user takes part in.
    NewMessage,
    /// An appointment was booked.
    AppointmentBooked,
    /// An appointment's time, provider, place or status changed.
    AppointmentChanged,
    /// An appointment was cancelled.
    AppointmentCancelled,
    /// A claim the user created changed status.
    ClaimStatus,
    /// The HIPAA notice in force awaits the user's signature.
    ConsentRequired,
    /// Someone opened break-glass access to a patient: an admin's review
    /// is due (`breakGlassEvents`).
    BreakGlass,
}

#[derive(Clone)]
pub struct Notification(pub notes::Notification);

/// Something that happened which the user may want to look at. It names
/// what it is about by id; reading that thing is subject to the user's
/// access like any query.
#[Object]
impl Notification {
    /// The notification's id (for `markNotificationsRead`).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// What happened.
    async fn kind(&self) -> GqlResult<NotificationKind> {
        self.0
            .kind()
            .map(Into::into)
            .ok_or_else(|| ApiError::internal().into())
    }
    /// The kind of thing it is about: `message_threads`, `appointments`,
    /// `claims`, `consent_documents` or `break_glass_events`.
    async fn subject_type(&self) -> &str {
        &self.0.subject_type
    }
    /// The id of the thing it is about (a thread, an appointment, a claim,
    /// a consent document, a break-glass opening).
    async fn subject_id(&self) -> Uuid {
        self.0.subject_id
    }
    /// When it was created (when its cause committed).
    async fn created_at(&self) -> DateTime<FixedOffset> {
        self.0.created_at
    }
    /// When the user marked it read; null while unread.
    async fn read_at(&self) -> Option<DateTime<FixedOffset>> {
        self.0.read_at
    }
}

/// Which notifications a user wants pushed and when not to be disturbed.
/// Every notification is kept either way; live updates and delivery
/// channels honour these.
#[derive(SimpleObject, Clone)]
pub struct NotificationPreferences {
    /// Kinds not to push.
    pub muted_kinds: Vec<NotificationKind>,
    /// Start of the quiet hours (`HH:MM`, in `timezone`); null: none.
    pub quiet_start: Option<String>,
    /// End of the quiet hours (`HH:MM`); before `quietStart` when they
    /// wrap past midnight.
    pub quiet_end: Option<String>,
    /// The IANA time zone of the quiet hours; null: UTC.
    pub timezone: Option<String>,
}

impl From<notes::Preferences> for NotificationPreferences {
    fn from(p: notes::Preferences) -> Self {
        Self {
            muted_kinds: p.muted.into_iter().map(Into::into).collect(),
            quiet_start: p.quiet_hours.map(|q| q.0.format("%H:%M").to_string()),
            quiet_end: p.quiet_hours.map(|q| q.1.format("%H:%M").to_string()),
            timezone: p.timezone,
        }
    }
}

/// Notification preferences to store (they replace the current ones).
#[derive(InputObject)]
pub struct NotificationPreferencesInput {
    /// Kinds not to push.
    #[graphql(default)]
    pub muted_kinds: Vec<NotificationKind>,
    /// Start of the quiet hours (`HH:MM`), with `quietEnd`; both or neither.
    pub quiet_start: Option<String>,
    /// End of the quiet hours (`HH:MM`).
    pub quiet_end: Option<String>,
    /// The IANA time zone of the quiet hours (e.g. `America/Chicago`).
    pub timezone: Option<String>,
}

impl NotificationPreferencesInput {
    pub fn muted(&self) -> Vec<Kind> {
        self.muted_kinds.iter().map(|k| (*k).into()).collect()
    }
}
