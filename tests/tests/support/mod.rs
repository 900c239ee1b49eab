pub mod app;
pub mod context;
pub mod db;
pub mod pgbouncer;
pub mod replica;
pub mod therapy;
pub mod ws;
pub mod x12;

/// SQL a test builds from fixed table and database names (never from input).
pub fn q(sql: impl Into<String>) -> sea_orm::sqlx::AssertSqlSafe<String> {
    sea_orm::sqlx::AssertSqlSafe(sql.into())
}

/// A valid NPI (10 digits, the CMS Luhn check over the `80840` prefix)
/// made from `seed`, for providers a test creates.
pub fn valid_npi(seed: u32) -> String {
    let body = format!("{:09}", seed % 1_000_000_000);
    let digits: Vec<u32> = format!("80840{body}")
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    // Luhn over the payload: from the right, every other digit doubled,
    // starting with the rightmost (the check digit goes after it).
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

#[test]
fn valid_npi_matches_the_cms_example() {
    // CMS's published example: 123456789 has check digit 3.
    assert_eq!(valid_npi(123_456_789), "1234567893");
}

/// Runs each named check, an `async fn(Route)`, as a test on every route
/// to PostgreSQL: `direct::<check>`, `through_pgbouncer::<check>` and
/// `with_replica::<check>`.
macro_rules! on_every_route {
    ($($check:ident),* $(,)?) => {
        mod direct {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(crate::support::app::Route::Direct).await
                }
            )*
        }
        mod through_pgbouncer {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(crate::support::app::Route::PgBouncer).await
                }
            )*
        }
        mod with_replica {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(crate::support::app::Route::Replica).await
                }
            )*
        }
    };
}
pub(crate) use on_every_route;
