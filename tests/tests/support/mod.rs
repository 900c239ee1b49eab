pub mod app;
pub mod context;
pub mod db;

/// SQL a test builds from fixed table and database names (never from input).
pub fn q(sql: impl Into<String>) -> sea_orm::sqlx::AssertSqlSafe<String> {
    sea_orm::sqlx::AssertSqlSafe(sql.into())
}
