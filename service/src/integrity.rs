//! `caregate check`: rows that break a rule the schema is meant to hold.
//!
//! Run it before a migration that adds a constraint (or after restoring a
//! dump taken elsewhere): each check reports the offending rows, so they can
//! be fixed before the constraint refuses to build. A check whose table does
//! not exist yet is skipped.

use anyhow::Context;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// One broken rule and the rows that break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub detail: String,
}

struct Check {
    rule: &'static str,
    table: &'static str,
    /// Returns one text column, `detail`, per violation.
    sql: &'static str,
}

const CHECKS: &[Check] = &[
    Check {
        rule: "one active PRIMARY provider per patient per clinic",
        table: "care_team_assignments",
        sql: "SELECT format('organization %s, patient %s: %s active PRIMARY assignments', \
              organization_id, patient_id, count(*)) AS detail \
              FROM care_team_assignments WHERE role = 'PRIMARY' AND removed_at IS NULL \
              GROUP BY organization_id, patient_id HAVING count(*) > 1",
    },
    Check {
        rule: "one active assignment per provider per patient",
        table: "care_team_assignments",
        sql: "SELECT format('organization %s, patient %s, provider %s: %s active assignments', \
              organization_id, patient_id, provider_id, count(*)) AS detail \
              FROM care_team_assignments WHERE removed_at IS NULL \
              GROUP BY organization_id, patient_id, provider_id HAVING count(*) > 1",
    },
    Check {
        rule: "NPI unique per clinic among active providers",
        table: "providers",
        sql: "SELECT format('organization %s: NPI %s on %s active providers', \
              organization_id, npi, count(*)) AS detail \
              FROM providers WHERE is_active AND deleted_at IS NULL \
              GROUP BY organization_id, npi HAVING count(*) > 1",
    },
    Check {
        rule: "NPI has ten digits and a valid check digit",
        table: "providers",
        sql: "SELECT format('provider %s: NPI %s', id, npi) AS detail FROM providers \
              WHERE NOT coalesce(app.is_valid_npi(npi), false)",
    },
    Check {
        // Written out rather than calling app.is_valid_dea: this check runs
        // before the migration that adds that function.
        rule: "DEA number has a valid check digit",
        table: "providers",
        sql: "SELECT format('provider %s: DEA number %s', id, dea_number) AS detail FROM providers \
              WHERE dea_number IS NOT NULL AND NOT (dea_number ~ '^[A-Z][A-Z9][0-9]{7}$' \
                AND ((substr(dea_number, 3, 1)::int + substr(dea_number, 5, 1)::int \
                      + substr(dea_number, 7, 1)::int) \
                     + 2 * (substr(dea_number, 4, 1)::int + substr(dea_number, 6, 1)::int \
                            + substr(dea_number, 8, 1)::int)) % 10 = substr(dea_number, 9, 1)::int)",
    },
    Check {
        rule: "MRN unique per clinic",
        table: "patients",
        sql: "SELECT format('organization %s: MRN %s on %s patients', \
              organization_id, medical_record_number, count(*)) AS detail \
              FROM patients GROUP BY organization_id, medical_record_number HAVING count(*) > 1",
    },
    Check {
        rule: "authorization units within 0..total",
        table: "payer_authorizations",
        sql: "SELECT format('authorization %s: %s of %s units used', id, used_units, total_units) AS detail \
              FROM payer_authorizations WHERE used_units < 0 OR used_units > total_units",
    },
    Check {
        rule: "no double-booked provider",
        table: "appointments",
        sql: "SELECT format('provider %s: appointments %s and %s overlap', a.provider_id, a.id, b.id) AS detail \
              FROM appointments a JOIN appointments b \
                ON a.organization_id = b.organization_id AND a.provider_id = b.provider_id AND a.id < b.id \
               AND tstzrange(a.starts_at, a.ends_at, '[)') && tstzrange(b.starts_at, b.ends_at, '[)') \
              WHERE a.status <> 'CANCELLED' AND b.status <> 'CANCELLED' \
                AND a.deleted_at IS NULL AND b.deleted_at IS NULL",
    },
    Check {
        rule: "email unique regardless of case",
        table: "users",
        sql: "SELECT format('email %s on %s users', lower(email), count(*)) AS detail \
              FROM users GROUP BY lower(email) HAVING count(*) > 1",
    },
];

/// What the isolation model relies on in the catalog (each query returns
/// one `detail` per finding). The runtime role is `caregate_app`.
const SECURITY_CHECKS: &[(&str, &str)] = &[
    (
        "SECURITY DEFINER functions pin search_path with pg_temp last",
        "SELECT format('%s has no search_path ending in pg_temp', p.oid::regprocedure) AS detail \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         WHERE p.prosecdef AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{}')) AS c \
                           WHERE c ~ '^search_path=(.*,\\s*)?pg_temp\\s*$' OR c = 'search_path=\"\"')",
    ),
    (
        "SECURITY DEFINER functions are not owned by a superuser",
        "SELECT format('%s is owned by superuser %s', p.oid::regprocedure, r.rolname) AS detail \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_roles r ON r.oid = p.proowner \
         WHERE p.prosecdef AND r.rolsuper AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
    ),
    (
        "the runtime role cannot bypass row-level security",
        "SELECT format('%s is a superuser or has BYPASSRLS', rolname) AS detail FROM pg_roles \
         WHERE rolname = 'caregate_app' AND (rolsuper OR rolbypassrls)",
    ),
    (
        "the runtime role cannot create objects",
        "SELECT 'caregate_app may create temporary objects' AS detail \
         WHERE has_database_privilege('caregate_app', current_database(), 'TEMPORARY') \
         UNION ALL \
         SELECT 'caregate_app may create schemas' \
         WHERE has_database_privilege('caregate_app', current_database(), 'CREATE') \
         UNION ALL \
         SELECT format('caregate_app may create objects in schema %s', nspname) FROM pg_namespace \
         WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' \
           AND has_schema_privilege('caregate_app', oid, 'CREATE')",
    ),
    (
        "every audit partition is as protected as the audit trail",
        "SELECT format('%s lacks forced row-level security, the trail''s policies or its TRUNCATE trigger', \
                       c.relname) AS detail \
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = to_regclass('public.audit_events') \
           AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity \
                OR NOT EXISTS (SELECT 1 FROM pg_trigger t \
                               WHERE t.tgrelid = c.oid AND t.tgname = 'audit_events_no_truncate') \
                OR (SELECT array_agg(ROW(p.polname, p.polcmd, p.polpermissive, p.polroles, \
                                         pg_get_expr(p.polqual, p.polrelid), \
                                         pg_get_expr(p.polwithcheck, p.polrelid))::text ORDER BY p.polname) \
                    FROM pg_policy p WHERE p.polrelid = c.oid) \
                   IS DISTINCT FROM \
                   (SELECT array_agg(ROW(p.polname, p.polcmd, p.polpermissive, p.polroles, \
                                         pg_get_expr(p.polqual, p.polrelid), \
                                         pg_get_expr(p.polwithcheck, p.polrelid))::text ORDER BY p.polname) \
                    FROM pg_policy p WHERE p.polrelid = i.inhparent))",
    ),
    (
        "every table is under forced row-level security with complete policies",
        // The two global tables: the migrations' own bookkeeping, and the
        // consent documents everyone signs (no clinic's data).
        "SELECT format('%s: row-level security %s, %s, %s policies, %s without USING or WITH CHECK', \
                       c.oid::regclass, \
                       CASE WHEN c.relrowsecurity THEN 'enabled' ELSE 'disabled' END, \
                       CASE WHEN c.relforcerowsecurity THEN 'forced' ELSE 'not forced' END, \
                       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid), \
                       (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid \
                          AND (p.polqual IS NULL \
                               OR (p.polcmd IN ('*', 'w') AND p.polwithcheck IS NULL)))) AS detail \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') \
           AND c.relname NOT IN ('seaql_migrations', 'consent_documents') \
           AND NOT (c.relrowsecurity AND c.relforcerowsecurity \
                    AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid) \
                    AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid \
                          AND (p.polqual IS NULL \
                               OR (p.polcmd IN ('*', 'w') AND p.polwithcheck IS NULL))))",
    ),
    (
        "no policy runs a sub-query",
        // A sub-query costs a lookup per row, and a sharded cluster (Citus)
        // refuses it: what a policy needs beyond the row is in the context.
        "SELECT format('policy %s on %s runs a sub-query', p.polname, p.polrelid::regclass) AS detail \
         FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' \
           AND (coalesce(p.polqual::text, '') LIKE '%{SUBLINK%' \
                OR coalesce(p.polwithcheck::text, '') LIKE '%{SUBLINK%')",
    ),
    (
        "no request context or quoting defaults on the runtime role or the database",
        "SELECT format('%s set for %s', c, coalesce(r.rolname, 'every role') \
                       || coalesce(' in ' || d.datname, '')) AS detail \
         FROM pg_db_role_setting s \
         LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase \
         CROSS JOIN LATERAL unnest(s.setconfig) AS c \
         WHERE (s.setdatabase = 0 OR d.datname = current_database()) \
           AND (s.setrole = 0 OR r.rolname = 'caregate_app') \
           AND (c LIKE 'app.%' OR c ~* '^standard_conforming_strings=(off|false|0)' \
                OR c ~* '^row_security=(off|false|0)')",
    ),
];

/// Runs every check whose table exists, and the catalog's security checks;
/// returns the violations found.
pub async fn check(db: &impl ConnectionTrait) -> anyhow::Result<Vec<Violation>> {
    let mut found = Vec::new();
    for check in CHECKS {
        let exists = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT to_regclass($1) IS NOT NULL AS present",
                [format!("public.{}", check.table).into()],
            ))
            .await
            .context("looking up a table")?
            .map(|row| row.try_get::<bool>("", "present"))
            .transpose()?
            .unwrap_or(false);
        if !exists {
            continue;
        }
        let rows = db
            .query_all_raw(Statement::from_string(DbBackend::Postgres, check.sql))
            .await
            .with_context(|| format!("checking: {}", check.rule))?;
        for row in rows {
            found.push(Violation {
                rule: check.rule,
                detail: row.try_get("", "detail")?,
            });
        }
    }
    found.extend(security(db).await?);
    Ok(found)
}

/// The catalog's security checks alone: what would let the runtime role
/// escape row-level security or run code with more rights than its own.
pub async fn security(db: &impl ConnectionTrait) -> anyhow::Result<Vec<Violation>> {
    let mut found = Vec::new();
    for (rule, sql) in SECURITY_CHECKS {
        let rows = db
            .query_all_raw(Statement::from_string(DbBackend::Postgres, *sql))
            .await
            .with_context(|| format!("checking: {rule}"))?;
        for row in rows {
            found.push(Violation {
                rule,
                detail: row.try_get("", "detail")?,
            });
        }
    }
    Ok(found)
}
