//! Ids of the demo clinics' rows, looked up as the owner.

use sea_orm::sqlx::{self, PgPool};
use uuid::Uuid;

pub async fn org(owner: &PgPool, slug: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM organizations WHERE slug = $1")
        .bind(slug)
        .fetch_one(owner)
        .await
        .expect("demo organization")
}

pub async fn user(owner: &PgPool, email: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(owner)
        .await
        .expect("demo user")
}

pub async fn patient(owner: &PgPool, mrn: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM patients WHERE medical_record_number = $1")
        .bind(mrn)
        .fetch_one(owner)
        .await
        .expect("demo patient")
}

pub async fn provider(owner: &PgPool, org: Uuid, npi: &str) -> Uuid {
    sqlx::query_scalar("SELECT id FROM providers WHERE organization_id = $1 AND npi = $2")
        .bind(org)
        .bind(npi)
        .fetch_one(owner)
        .await
        .expect("demo provider")
}

/// The two demo clinics and an admin of each.
pub struct Clinics {
    pub a: Uuid,
    pub b: Uuid,
    pub a_admin: Uuid,
    pub b_admin: Uuid,
}

pub async fn clinics(owner: &PgPool) -> Clinics {
    Clinics {
        a: org(owner, "northside").await,
        b: org(owner, "lakeside").await,
        a_admin: user(owner, "admin@northside.example").await,
        b_admin: user(owner, "admin@lakeside.example").await,
    }
}

/// The SQLSTATE of a failed statement.
pub fn sqlstate(err: &sqlx::Error) -> String {
    err.as_database_error()
        .and_then(|e| e.code().map(|c| c.into_owned()))
        .unwrap_or_else(|| format!("no SQLSTATE: {err}"))
}
