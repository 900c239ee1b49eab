//! The committed `schema.graphql` is what the server serves: an
//! unreviewed change to the contract fails here.

#[test]
fn committed_schema_matches_the_served_schema() {
    let committed = include_str!("../../../schema.graphql");
    let served = caregate::graphql::sdl();
    assert!(
        committed == served,
        "schema.graphql differs from the served schema; review the change, then run \
         `cargo run -p caregate -- schema > schema.graphql`"
    );
}
