//! SeaORM entities for caregate, one module per table. They mirror the SQL
//! migrations in `migration/sql` column for column (constrained text columns
//! become active enums, the generated `patients.search_name` is left out), and
//! they describe storage only: the table shape is never the API type.
//!
//! No relations are declared: the service layer writes its joins in SQL.
//! Each `Relation` enum is empty, there only because `DeriveEntityModel`
//! requires one.

pub mod appointment;
pub mod audit_event;
pub mod billing_transaction;
pub mod care_team_assignment;
pub mod claim;
pub mod claim_line;
pub mod consent_document;
pub mod contact_method;
pub mod diagnosis;
pub mod facility;
pub mod facility_staff;
pub mod fee_schedule_entry;
pub mod organization;
pub mod organization_membership;
pub mod patient;
pub mod patient_insurance;
pub mod payer_authorization;
pub mod provider;
pub mod proxy_assignment;
pub mod session_event;
pub mod session_event_type;
pub mod staff_credential;
pub mod subscription_override;
pub mod therapy_session;
pub mod user;
pub mod user_consent;
pub mod user_session;
