//! Mints a development token for the gateway: HS256 with `JWT_SECRET` (or the development
//! secret the gateway uses when it is unset), audience `JWT_AUDIENCE`.
//!
//! `cargo run -p gateway --bin mint-token -- alice 3600` prints a token for `alice`, valid for
//! an hour (the default).

use std::process::ExitCode;
use std::time::Duration;

use contract::tokens::{DEFAULT_AUDIENCE, DEVELOPMENT_SECRET};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let subject = args.next().unwrap_or_else(|| "developer".to_owned());
    let ttl = match args.next().map(|ttl| ttl.parse::<u64>()) {
        None => 3600,
        Some(Ok(seconds)) => seconds,
        Some(Err(_)) => {
            eprintln!("usage: mint-token [SUBJECT] [SECONDS]");
            return ExitCode::FAILURE;
        }
    };
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let secret = var("JWT_SECRET").unwrap_or_else(|| DEVELOPMENT_SECRET.to_owned());
    let audience = var("JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
    println!(
        "{}",
        contract::tokens::mint(&secret, &subject, &audience, Duration::from_secs(ttl))
    );
    ExitCode::SUCCESS
}
