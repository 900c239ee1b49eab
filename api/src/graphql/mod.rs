//! The GraphQL schema: types, resolvers, per-request loaders and the
//! operation limits.

pub mod batches;
pub mod break_glass;
pub mod budgets;
pub mod cache;
pub mod facilities;
pub mod inputs;
pub mod limits;
pub mod loaders;
pub mod messaging;
pub mod mfa;
pub mod mutation;
pub mod payments;
pub mod persisted;
pub mod prepare;
pub mod query;
pub mod scalars;
pub mod scope;
pub mod subscription;
pub mod therapy;
pub mod types;

use async_graphql::{SDLExportOptions, Schema, SchemaBuilder};

use std::sync::Arc;

use service::auth::LoginSettings;

use crate::config::{Config, Environment};
use crate::tokens::Tokens;
use mutation::Mutation;
use query::Query;
use subscription::Subscription;
use types::{
    appointment, audit, claim, facility, messaging as msg, patient, payment, provider, session,
};

pub type CaregateSchema = Schema<Query, Mutation, Subscription>;

/// The schema's types, with descriptions for the ones async-graphql
/// generates (connections) or documents generically (its scalars): the
/// schema is the clients' documentation, and every element of it says what
/// it is.
fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .override_output_type_description::<chrono::DateTime<chrono::FixedOffset>>(
            scalars::DATE_TIME_DESCRIPTION,
        )
        .override_output_type_description::<uuid::Uuid>(scalars::UUID_DESCRIPTION)
        .override_output_type_description::<async_graphql::Json<serde_json::Value>>(
            scalars::JSON_DESCRIPTION,
        )
        .override_output_type_description::<patient::PatientConnection<patient::PatientTotal>>(
            patient::CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<provider::ProviderConnection>(
            provider::CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<appointment::AppointmentConnection>(
            appointment::CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<audit::AuditEventConnection>(
            audit::CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<session::SessionConnection>(
            session::CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<session::SessionEventConnection>(
            session::EVENT_CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<claim::ClaimConnection>(claim::CONNECTION_DESCRIPTION)
        .override_output_type_description::<facility::FacilityConnection>(
            facility::CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<payment::BillingTransactionConnection>(
            payment::CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<msg::ThreadConnection>(
            msg::THREAD_CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<msg::MessageConnection>(
            msg::MESSAGE_CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<msg::NotificationConnection>(
            msg::NOTIFICATION_CONNECTION_DESCRIPTION,
        )
        .override_output_type_description::<types::break_glass::BreakGlassEventConnection>(
            types::break_glass::CONNECTION_DESCRIPTION,
        )
}

/// The schema with the limits and switches of `config`, and the values
/// shared by every request: the token issuer and the login settings (login
/// and clinic switching), and the keyring of field-level encryption (its
/// cache is keyed by clinic). Nothing request-specific is registered here:
/// loaders and the transaction are request data, added by the handler.
pub fn build(
    config: &Config,
    tokens: Arc<Tokens>,
    login: LoginSettings,
    keyring: Arc<service::phi::Keyring>,
) -> CaregateSchema {
    let mut b = builder()
        .data(tokens)
        .data(login)
        .data(keyring)
        .data(break_glass::BreakGlassLimit {
            max_minutes: config.break_glass_max_minutes,
        })
        .data(crate::budgets::Settings::of(config))
        // Charges each operation's cost to its clinic's budget once
        // validation has computed it, before it runs.
        .extension(crate::budgets::CostCharge::default())
        .limit_depth(config.max_query_depth)
        .limit_complexity(config.max_query_complexity)
        .limit_recursive_depth(config.max_query_depth.max(32));
    if !config.introspection_enabled() {
        b = b.disable_introspection();
    }
    // "Did you mean ...?" would tell a prober the schema that introspection
    // hides.
    if config.environment == Environment::Production {
        b = b.disable_suggestions();
    }
    b.finish()
}

/// The schema's SDL, as `caregate schema` prints it and `schema.graphql`
/// holds it.
pub fn sdl() -> String {
    sdl_of(&builder().finish())
}

/// The SDL of `schema`, with all that introspection shows: the scalars'
/// `@specifiedBy` URLs too (async-graphql leaves them out by default).
pub fn sdl_of(schema: &CaregateSchema) -> String {
    schema.sdl_with_options(SDLExportOptions::new().include_specified_by())
}
