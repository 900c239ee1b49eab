use clap::Parser;

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
