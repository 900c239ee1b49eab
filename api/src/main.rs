use clap::Parser;

/// A request allocates many small, short-lived objects (rows, GraphQL
/// values, JSON); the system allocator spent a quarter of the server's CPU
/// on them under load (see the benchmark in the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = caregate::cli::Cli::parse();
    match caregate::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            eprintln!("caregate: {err:#}");
            std::process::exit(2);
        }
    }
}
