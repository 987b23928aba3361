//! Mints a development token for the gateway: HS256 with `JWT_SECRET` (or the development
//! secret the gateway uses when it is unset), audience `JWT_AUDIENCE`.
//!
//! `cargo run -p gateway --bin mint-token -- alice 3600` prints a token for `alice`, valid for
//! an hour (the default); `--admin` adds the admin role, which `/admin/faults` asks for.

use std::process::ExitCode;
use std::time::Duration;

use contract::tokens::{ADMIN_ROLE, Claims, DEFAULT_AUDIENCE, DEVELOPMENT_SECRET};

fn main() -> ExitCode {
    let (flags, args): (Vec<String>, Vec<String>) = std::env::args()
        .skip(1)
        .partition(|arg| arg.starts_with("--"));
    let admin = flags.iter().any(|flag| flag == "--admin");
    let usage = || {
        eprintln!("usage: mint-token [--admin] [SUBJECT] [SECONDS]");
        ExitCode::FAILURE
    };
    if flags.iter().any(|flag| flag != "--admin") || args.len() > 2 {
        return usage();
    }
    let subject = args
        .first()
        .cloned()
        .unwrap_or_else(|| "developer".to_owned());
    let ttl = match args.get(1).map(|ttl| ttl.parse::<u64>()) {
        None => 3600,
        Some(Ok(seconds)) => seconds,
        Some(Err(_)) => return usage(),
    };
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let secret = var("JWT_SECRET").unwrap_or_else(|| DEVELOPMENT_SECRET.to_owned());
    let audience = var("JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned());
    let mut claims = Claims::new(&subject, &audience, Duration::from_secs(ttl));
    if admin {
        claims = claims.with_roles(&[ADMIN_ROLE]);
    }
    println!("{}", contract::tokens::sign(&claims, &secret));
    ExitCode::SUCCESS
}
