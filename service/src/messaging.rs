//! Secure messaging: threads about a patient, their participants, messages
//! (edits and deletions keep their history), read receipts and attachment
//! references.
//!
//! Who sees what is the database's: staff see their clinic's threads; a
//! portal user sees only threads they take part in, and only while their
//! grant allows messaging about the patient. The sender is always the
//! request's user (the policy's WITH CHECK). A participant's kind (staff,
//! patient, proxy) is derived by the database from who they are; anyone
//! else is refused (`INELIGIBLE_PARTICIPANT`). What this module adds is the
//! order of the writes and the errors a client can act on.

use std::collections::{HashMap, HashSet};

use anyhow::Context;
use chrono::{DateTime, FixedOffset};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};
use uuid::Uuid;

use crate::Tx;
use crate::actor::{Actor, Purpose};
use crate::domain::{PatientId, UserId, new_id, required_text};
use crate::error::{DbResultExt, ForbiddenReason, ServiceError, ServiceResult};
use crate::pagination::{Page, PageRequest, TimeKey, pages_per_owner};
use crate::sql::uuid_array;

/// The longest message body, in characters (the database holds the same).
pub const MAX_BODY_CHARS: usize = 10_000;
/// At most this many participants are named when a thread starts.
pub const MAX_PARTICIPANTS: usize = 20;
/// At most this many attachments go with one message.
pub const MAX_ATTACHMENTS: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Thread {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub subject: String,
    pub created_by: Uuid,
    pub message_count: i32,
    pub last_message_at: Option<DateTime<FixedOffset>>,
    pub created_at: DateTime<FixedOffset>,
}

impl Thread {
    /// When it last changed: its last message, or its start.
    pub fn active_at(&self) -> DateTime<FixedOffset> {
        self.last_message_at.unwrap_or(self.created_at)
    }

    pub fn key(&self) -> TimeKey {
        TimeKey {
            at: self.active_at(),
            id: self.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Message {
    pub id: Uuid,
    pub thread_id: Uuid,
    pub patient_id: Uuid,
    pub sender_user_id: Uuid,
    /// `None` once deleted.
    pub body: Option<String>,
    pub sent_at: DateTime<FixedOffset>,
    pub edited_at: Option<DateTime<FixedOffset>>,
    pub deleted_at: Option<DateTime<FixedOffset>>,
    pub revision: i32,
}

impl Message {
    pub fn key(&self) -> TimeKey {
        TimeKey {
            at: self.sent_at,
            id: self.id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Participant {
    pub id: Uuid,
    pub thread_id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub added_at: DateTime<FixedOffset>,
    pub last_read_at: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Attachment {
    pub id: Uuid,
    pub message_id: Uuid,
    pub name: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct Revision {
    pub message_id: Uuid,
    pub revision: i32,
    pub body: String,
    pub replaced_at: DateTime<FixedOffset>,
}

/// A file sent with a message, by reference: where it is stored is the
/// client's business; its name, type, size and checksum are kept here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRef {
    name: String,
    media_type: String,
    size_bytes: i64,
    sha256: [u8; 32],
}

impl AttachmentRef {
    /// Checks an attachment reference: a name, a `type/subtype` media type,
    /// a size up to 1 GiB and a SHA-256 as 64 hex digits.
    pub fn parse(
        name: &str,
        media_type: &str,
        size_bytes: i64,
        sha256: &str,
    ) -> ServiceResult<Self> {
        let name = required_text("attachments.name", name, 255)?;
        let media_type = media_type.trim().to_ascii_lowercase();
        // RFC 6838's restricted names: a letter or digit first.
        let token = |s: &str| {
            s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
        };
        match media_type.split_once('/') {
            Some((a, b)) if token(a) && token(b) => {}
            _ => {
                return Err(ServiceError::invalid(
                    "attachments.mediaType",
                    "must be a media type such as application/pdf",
                ));
            }
        }
        if !(0..=1 << 30).contains(&size_bytes) {
            return Err(ServiceError::invalid(
                "attachments.sizeBytes",
                "must be between 0 and 1073741824",
            ));
        }
        let digest = hex::decode(sha256.trim())
            .ok()
            .and_then(|d| <[u8; 32]>::try_from(d).ok())
            .ok_or_else(|| {
                ServiceError::invalid("attachments.sha256", "must be 64 hexadecimal digits")
            })?;
        Ok(Self {
            name,
            media_type,
            size_bytes,
            sha256: digest,
        })
    }
}

/// A message's text: trimmed, 1 to 10,000 characters.
pub fn body_of(raw: &str) -> ServiceResult<String> {
    required_text("body", raw, MAX_BODY_CHARS)
}

const THREAD_COLUMNS: &str =
    "id, patient_id, subject, created_by, message_count, last_message_at, created_at";
const MESSAGE_COLUMNS: &str = "id, thread_id, patient_id, sender_user_id, body, sent_at, \
                               edited_at, deleted_at, revision";

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A thread the caller can see.
pub async fn thread(tx: &Tx, id: Uuid) -> ServiceResult<Thread> {
    threads_by_ids(tx, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or(ServiceError::NotFound)
}

/// The threads among `ids` the caller can see.
pub async fn threads_by_ids(tx: &Tx, ids: &[Uuid]) -> ServiceResult<Vec<Thread>> {
    let rows = tx
        .query_all_raw(stmt(
            &format!("SELECT {THREAD_COLUMNS} FROM message_threads WHERE id = ANY ($1::uuid[])"),
            [uuid_array(ids.iter().copied())],
        ))
        .await
        .or_db("loading threads")?;
    rows.iter()
        .map(|r| Ok(Thread::from_query_result(r, "").context("a thread")?))
        .collect()
}

/// The messages among `ids` the caller can see.
pub async fn messages_by_ids(tx: &Tx, ids: &[Uuid]) -> ServiceResult<Vec<Message>> {
    let rows = tx
        .query_all_raw(stmt(
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY ($1::uuid[])"),
            [uuid_array(ids.iter().copied())],
        ))
        .await
        .or_db("loading messages")?;
    rows.iter()
        .map(|r| Ok(Message::from_query_result(r, "").context("a message")?))
        .collect()
}

/// Which threads a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ThreadFilter {
    pub patient: Option<PatientId>,
    /// Only threads with messages the caller has not read.
    pub unread_only: bool,
}

/// A page of the threads the caller can see, most recently active first.
pub async fn threads(
    tx: &Tx,
    actor: &Actor,
    filter: &ThreadFilter,
    page: &PageRequest<TimeKey>,
) -> ServiceResult<Page<Thread>> {
    let (after_at, after_id) = page.after_time();
    let rows = tx
        .query_all_raw(stmt(
            &format!(
                "SELECT {THREAD_COLUMNS} FROM message_threads t \
                 WHERE ($1::uuid IS NULL OR t.patient_id = $1) \
                   AND ($2::timestamptz IS NULL \
                        OR (coalesce(t.last_message_at, t.created_at), t.id) < ($2, $3)) \
                   AND (NOT $4 OR EXISTS ( \
                        SELECT 1 FROM thread_participants tp \
                        WHERE tp.organization_id = t.organization_id AND tp.thread_id = t.id \
                          AND tp.user_id = $5 AND tp.removed_at IS NULL \
                          AND t.last_message_at > coalesce(tp.last_read_at, '-infinity'))) \
                 ORDER BY coalesce(t.last_message_at, t.created_at) DESC, t.id DESC LIMIT $6"
            ),
            [
                filter.patient.map(PatientId::into_uuid).into(),
                after_at.into(),
                after_id.into(),
                filter.unread_only.into(),
                actor.user.into_uuid().into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("listing threads")?;
    let items = rows
        .iter()
        .map(|r| Ok(Thread::from_query_result(r, "").context("a thread")?))
        .collect::<ServiceResult<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.first))
}

/// A page of threads of each of several patients, most recently active
/// first: one statement for all of them.
pub async fn thread_pages_of_patients(
    tx: &Tx,
    patients: &[Uuid],
    page: &PageRequest<TimeKey>,
) -> ServiceResult<HashMap<Uuid, Page<Thread>>> {
    let (after_at, after_id) = page.after_time();
    let rows = tx
        .query_all_raw(stmt(
            &format!(
                "SELECT {THREAD_COLUMNS} FROM ( \
                   SELECT t.*, row_number() OVER ( \
                       PARTITION BY t.patient_id \
                       ORDER BY coalesce(t.last_message_at, t.created_at) DESC, t.id DESC) AS rn \
                   FROM message_threads t \
                   WHERE t.patient_id = ANY ($1::uuid[]) \
                     AND ($2::timestamptz IS NULL \
                          OR (coalesce(t.last_message_at, t.created_at), t.id) < ($2, $3)) \
                 ) t WHERE rn <= $4 ORDER BY patient_id, rn"
            ),
            [
                uuid_array(patients.iter().copied()),
                after_at.into(),
                after_id.into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("loading threads of patients")?;
    let threads = rows
        .iter()
        .map(|r| {
            let t = Thread::from_query_result(r, "").context("a thread")?;
            Ok((t.patient_id, t))
        })
        .collect::<ServiceResult<Vec<_>>>()?;
    Ok(pages_per_owner(patients, threads, page.first))
}

/// A page of messages of each of several threads, newest first: one
/// statement for all of them.
pub async fn message_pages_of_threads(
    tx: &Tx,
    threads: &[Uuid],
    page: &PageRequest<TimeKey>,
) -> ServiceResult<HashMap<Uuid, Page<Message>>> {
    let (after_at, after_id) = page.after_time();
    let rows = tx
        .query_all_raw(stmt(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM ( \
                   SELECT m.*, row_number() OVER ( \
                       PARTITION BY m.thread_id ORDER BY m.sent_at DESC, m.id DESC) AS rn \
                   FROM messages m \
                   WHERE m.thread_id = ANY ($1::uuid[]) \
                     AND ($2::timestamptz IS NULL OR (m.sent_at, m.id) < ($2, $3)) \
                 ) m WHERE rn <= $4 ORDER BY thread_id, rn"
            ),
            [
                uuid_array(threads.iter().copied()),
                after_at.into(),
                after_id.into(),
                ((page.first + 1) as i64).into(),
            ],
        ))
        .await
        .or_db("loading messages of threads")?;
    let messages = rows
        .iter()
        .map(|r| {
            let m = Message::from_query_result(r, "").context("a message")?;
            Ok((m.thread_id, m))
        })
        .collect::<ServiceResult<Vec<_>>>()?;
    Ok(pages_per_owner(threads, messages, page.first))
}

/// The live participants of several threads, in the order they joined.
pub async fn participants_of(tx: &Tx, threads: &[Uuid]) -> ServiceResult<Vec<Participant>> {
    let rows = tx
        .query_all_raw(stmt(
            "SELECT id, thread_id, user_id, kind, added_at, last_read_at FROM thread_participants \
             WHERE thread_id = ANY ($1::uuid[]) AND removed_at IS NULL ORDER BY added_at, id",
            [uuid_array(threads.iter().copied())],
        ))
        .await
        .or_db("loading participants")?;
    rows.iter()
        .map(|r| Ok(Participant::from_query_result(r, "").context("a participant")?))
        .collect()
}

/// The attachments of several messages.
pub async fn attachments_of(tx: &Tx, messages: &[Uuid]) -> ServiceResult<Vec<Attachment>> {
    let rows = tx
        .query_all_raw(stmt(
            "SELECT id, message_id, name, media_type, size_bytes, sha256 FROM message_attachments \
             WHERE message_id = ANY ($1::uuid[]) ORDER BY created_at, id",
            [uuid_array(messages.iter().copied())],
        ))
        .await
        .or_db("loading attachments")?;
    rows.iter()
        .map(|r| Ok(Attachment::from_query_result(r, "").context("an attachment")?))
        .collect()
}

/// The earlier texts of several messages, oldest first.
pub async fn revisions_of(tx: &Tx, messages: &[Uuid]) -> ServiceResult<Vec<Revision>> {
    let rows = tx
        .query_all_raw(stmt(
            "SELECT message_id, revision, body, replaced_at FROM message_revisions \
             WHERE message_id = ANY ($1::uuid[]) ORDER BY message_id, revision",
            [uuid_array(messages.iter().copied())],
        ))
        .await
        .or_db("loading message history")?;
    rows.iter()
        .map(|r| Ok(Revision::from_query_result(r, "").context("a revision")?))
        .collect()
}

/// Display names of people taking part in threads the caller can see.
pub async fn participant_names(tx: &Tx, ids: &[Uuid]) -> ServiceResult<Vec<(Uuid, String)>> {
    let rows = tx
        .query_all_raw(stmt(
            "SELECT id, display_name FROM app.participant_names($1::uuid[])",
            [uuid_array(ids.iter().copied())],
        ))
        .await
        .or_db("loading participant names")?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("", "id").context("id")?,
                r.try_get("", "display_name").context("display_name")?,
            ))
        })
        .collect()
}

/// The caller's messages not yet read, across their threads (their own
/// messages and deleted ones do not count).
pub async fn unread_count(tx: &Tx, actor: &Actor) -> ServiceResult<i64> {
    let row = tx
        .query_one_raw(stmt(
            "SELECT count(*) AS n FROM thread_participants tp \
             JOIN messages m ON m.organization_id = tp.organization_id AND m.thread_id = tp.thread_id \
             WHERE tp.user_id = $1 AND tp.removed_at IS NULL \
               AND m.sent_at > coalesce(tp.last_read_at, '-infinity') \
               AND m.sender_user_id <> $1 AND m.deleted_at IS NULL",
            [actor.user.into_uuid().into()],
        ))
        .await
        .or_db("counting unread messages")?
        .context("count returned no row")?;
    Ok(row.try_get("", "n").context("n")?)
}

/// A thread to start.
pub struct NewThread {
    pub patient: PatientId,
    pub subject: String,
    /// Who else takes part (the caller always does).
    pub participants: Vec<UserId>,
    pub body: String,
    pub attachments: Vec<AttachmentRef>,
}

/// Refuses a portal user who may not message about `patient` (a proxy
/// without the messaging permission, or no longer holding it).
fn may_message(actor: &Actor, patient: PatientId) -> ServiceResult<()> {
    actor.may(Purpose::Message, patient)
}

/// Starts a thread about a patient with its first message. Staff may start
/// one about any patient of the clinic; a portal user about a patient they
/// may message about. Each participant must be staff of the clinic, the
/// patient, or a proxy allowed to message (`INELIGIBLE_PARTICIPANT`).
#[tracing::instrument(skip_all, name = "messaging.start_thread", level = "debug")]
pub async fn start_thread(
    tx: &Tx,
    actor: &Actor,
    new: NewThread,
) -> ServiceResult<(Thread, Message)> {
    may_message(actor, new.patient)?;
    let subject = required_text("subject", &new.subject, 200)?;
    let body = body_of(&new.body)?;
    if new.participants.len() > MAX_PARTICIPANTS {
        return Err(ServiceError::invalid(
            "participantIds",
            format!("at most {MAX_PARTICIPANTS}"),
        ));
    }
    if new.attachments.len() > MAX_ATTACHMENTS {
        return Err(ServiceError::invalid(
            "attachments",
            format!("at most {MAX_ATTACHMENTS}"),
        ));
    }
    // The patient must be visible to a staff caller (a portal caller's
    // scope was checked above); the thread's foreign key holds the clinic.
    let visible = tx
        .query_one_raw(stmt(
            "SELECT 1 AS one FROM patients WHERE id = $1 AND deleted_at IS NULL",
            [new.patient.into_uuid().into()],
        ))
        .await
        .or_db("finding the patient")?;
    if visible.is_none() && actor.role.is_staff() {
        return Err(ServiceError::NotFound);
    }
    let id = new_id();
    // No RETURNING: a portal user sees the thread only once they take part.
    tx.execute_raw(stmt(
        "INSERT INTO message_threads (id, organization_id, patient_id, subject) \
         VALUES ($1, $2, $3, $4)",
        [
            id.into(),
            actor.tenant.into_uuid().into(),
            new.patient.into_uuid().into(),
            subject.into(),
        ],
    ))
    .await
    .or_db("starting a thread")?;
    let mut people: Vec<Uuid> = vec![actor.user.into_uuid()];
    let mut seen: HashSet<Uuid> = people.iter().copied().collect();
    for p in &new.participants {
        if seen.insert(p.into_uuid()) {
            people.push(p.into_uuid());
        }
    }
    tx.execute_raw(stmt(
        "INSERT INTO thread_participants (organization_id, thread_id, patient_id, user_id, kind) \
         SELECT $1, $2, $3, u, 'STAFF' FROM unnest($4::uuid[]) AS u",
        [
            actor.tenant.into_uuid().into(),
            id.into(),
            new.patient.into_uuid().into(),
            uuid_array(people),
        ],
    ))
    .await
    .or_db("adding participants")?;
    enter(tx, id).await?;
    let message = insert_message(tx, actor, id, body, &new.attachments).await?;
    let thread = thread(tx, id).await?;
    Ok((thread, message))
}

/// Lets a portal user who just joined a thread write to it in this
/// transaction (the context listed their threads when it was set).
async fn enter(tx: &Tx, thread: Uuid) -> ServiceResult<()> {
    tx.execute_raw(stmt("SELECT app.enter_thread($1)", [thread.into()]))
        .await
        .or_db("entering a thread")?;
    Ok(())
}

/// Makes a staff member who is not yet a participant one (sending or
/// reading a thread joins it, so that they get its notifications and their
/// read receipt is kept).
async fn join(tx: &Tx, actor: &Actor, thread: &Thread) -> ServiceResult<()> {
    if !actor.role.is_staff() {
        return Ok(());
    }
    tx.execute_raw(stmt(
        "INSERT INTO thread_participants (organization_id, thread_id, patient_id, user_id, kind) \
         VALUES ($1, $2, $3, $4, 'STAFF') \
         ON CONFLICT (organization_id, thread_id, user_id) DO UPDATE SET removed_at = NULL \
         WHERE thread_participants.removed_at IS NOT NULL",
        [
            actor.tenant.into_uuid().into(),
            thread.id.into(),
            thread.patient_id.into(),
            actor.user.into_uuid().into(),
        ],
    ))
    .await
    .or_db("joining a thread")?;
    Ok(())
}

async fn insert_message(
    tx: &Tx,
    actor: &Actor,
    thread: Uuid,
    body: String,
    attachments: &[AttachmentRef],
) -> ServiceResult<Message> {
    let id = new_id();
    let row = tx
        .query_one_raw(stmt(
            &format!(
                "INSERT INTO messages (id, organization_id, thread_id, patient_id, body) \
                 SELECT $1, $2, $3, t.patient_id, $4 FROM message_threads t WHERE t.id = $3 \
                 RETURNING {MESSAGE_COLUMNS}"
            ),
            [
                id.into(),
                actor.tenant.into_uuid().into(),
                thread.into(),
                body.into(),
            ],
        ))
        .await
        .or_db("sending a message")?
        .ok_or(ServiceError::NotFound)?;
    let message = Message::from_query_result(&row, "").context("the message")?;
    for a in attachments {
        tx.execute_raw(stmt(
            "INSERT INTO message_attachments \
               (organization_id, thread_id, patient_id, message_id, name, media_type, size_bytes, sha256) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [
                actor.tenant.into_uuid().into(),
                message.thread_id.into(),
                message.patient_id.into(),
                message.id.into(),
                a.name.clone().into(),
                a.media_type.clone().into(),
                a.size_bytes.into(),
                a.sha256.to_vec().into(),
            ],
        ))
        .await
        .or_db("attaching a file reference")?;
    }
    Ok(message)
}

/// Sends a message to a thread the caller can see (NOT_FOUND otherwise; a
/// proxy whose grant no longer allows messaging cannot see it).
#[tracing::instrument(skip_all, name = "messaging.send", level = "debug")]
pub async fn send(
    tx: &Tx,
    actor: &Actor,
    thread_id: Uuid,
    body: &str,
    attachments: &[AttachmentRef],
) -> ServiceResult<Message> {
    let body = body_of(body)?;
    if attachments.len() > MAX_ATTACHMENTS {
        return Err(ServiceError::invalid(
            "attachments",
            format!("at most {MAX_ATTACHMENTS}"),
        ));
    }
    let t = thread(tx, thread_id).await?;
    may_message(actor, PatientId::from(t.patient_id))?;
    join(tx, actor, &t).await?;
    insert_message(tx, actor, t.id, body, attachments).await
}

/// The caller's own message, or why it cannot be changed.
async fn own_message(tx: &Tx, actor: &Actor, id: Uuid) -> ServiceResult<Message> {
    let m = messages_by_ids(tx, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or(ServiceError::NotFound)?;
    if m.sender_user_id != actor.user.into_uuid() {
        return Err(ServiceError::Forbidden(ForbiddenReason::NotSender));
    }
    if m.deleted_at.is_some() {
        return Err(ServiceError::Conflict(
            crate::error::ConflictReason::MessageDeleted,
        ));
    }
    may_message(actor, PatientId::from(m.patient_id))?;
    Ok(m)
}

/// Replaces the text of the caller's own message; the earlier text is kept
/// in its history.
pub async fn edit(tx: &Tx, actor: &Actor, id: Uuid, body: &str) -> ServiceResult<Message> {
    let body = body_of(body)?;
    own_message(tx, actor, id).await?;
    update_message(tx, id, "body = $2", Some(body)).await
}

/// Deletes the caller's own message: its text leaves the thread and stays
/// in its history; the message shows as deleted.
pub async fn delete(tx: &Tx, actor: &Actor, id: Uuid) -> ServiceResult<Message> {
    own_message(tx, actor, id).await?;
    update_message(tx, id, "deleted_at = now()", None).await
}

async fn update_message(
    tx: &Tx,
    id: Uuid,
    set: &'static str,
    body: Option<String>,
) -> ServiceResult<Message> {
    let mut values: Vec<Value> = vec![id.into()];
    if let Some(b) = body {
        values.push(b.into());
    }
    let row = tx
        .query_one_raw(stmt(
            &format!("UPDATE messages SET {set} WHERE id = $1 RETURNING {MESSAGE_COLUMNS}"),
            values,
        ))
        .await
        .or_db("changing a message")?
        .ok_or(ServiceError::NotFound)?;
    Ok(Message::from_query_result(&row, "").context("the message")?)
}

/// Records that the caller has read a thread up to now (staff who were not
/// taking part join it).
#[tracing::instrument(skip_all, name = "messaging.mark_read", level = "debug")]
pub async fn mark_read(tx: &Tx, actor: &Actor, thread_id: Uuid) -> ServiceResult<Thread> {
    let t = thread(tx, thread_id).await?;
    join(tx, actor, &t).await?;
    let updated = tx
        .execute_raw(stmt(
            "UPDATE thread_participants SET last_read_at = now() \
             WHERE thread_id = $1 AND user_id = $2 AND removed_at IS NULL",
            [t.id.into(), actor.user.into_uuid().into()],
        ))
        .await
        .or_db("marking a thread read")?;
    if updated.rows_affected() == 0 {
        return Err(ServiceError::NotFound);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attachment_reference_needs_a_media_type_a_size_and_a_sha256() {
        let sha = "ab".repeat(32);
        assert!(AttachmentRef::parse("scan.pdf", "application/pdf", 1024, &sha).is_ok());
        assert!(AttachmentRef::parse("scan.pdf", "Application/PDF", 0, &sha).is_ok());
        assert!(AttachmentRef::parse(" ", "application/pdf", 1, &sha).is_err());
        assert!(AttachmentRef::parse("a", "pdf", 1, &sha).is_err());
        assert!(AttachmentRef::parse("a", "application/pdf; x=1", 1, &sha).is_err());
        assert!(AttachmentRef::parse("a", "+x/pdf", 1, &sha).is_err());
        assert!(AttachmentRef::parse("a", "application/.pdf", 1, &sha).is_err());
        assert!(AttachmentRef::parse("a", "application/pdf", -1, &sha).is_err());
        assert!(AttachmentRef::parse("a", "application/pdf", (1 << 30) + 1, &sha).is_err());
        assert!(AttachmentRef::parse("a", "application/pdf", 1, "abc").is_err());
        assert!(AttachmentRef::parse("a", "application/pdf", 1, &"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_body_is_trimmed_and_bounded() {
        assert_eq!(body_of("  hi ").unwrap(), "hi");
        assert!(body_of("   ").is_err());
        assert!(body_of(&"x".repeat(MAX_BODY_CHARS + 1)).is_err());
        assert!(body_of(&"x".repeat(MAX_BODY_CHARS)).is_ok());
    }
}
