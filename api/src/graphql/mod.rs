//! The GraphQL schema: types, resolvers, per-request loaders and the
//! operation limits.

pub mod cache;
pub mod inputs;
pub mod limits;
pub mod loaders;
pub mod mutation;
pub mod persisted;
pub mod prepare;
pub mod query;
pub mod scalars;
pub mod scope;
pub mod types;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder};

use crate::config::{Config, Environment};
use mutation::Mutation;
use query::Query;

pub type CaregateSchema = Schema<Query, Mutation, EmptySubscription>;

fn builder() -> SchemaBuilder<Query, Mutation, EmptySubscription> {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
}

/// The schema with the limits and switches of `config`. Nothing
/// request-specific is registered here: loaders and the transaction are
/// request data, added by the handler.
pub fn build(config: &Config) -> CaregateSchema {
    let mut b = builder()
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
    builder().finish().sdl()
}
