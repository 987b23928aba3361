//! Mints a token for the gateway: HS256 with `JWT_SECRET` (or, where the gateway runs in
//! development mode, the development secret it then uses), audience `JWT_AUDIENCE`, issuer
//! `JWT_ISSUER` when set.
//!
//! `cargo run -p gateway --bin mint-token -- alice 3600` prints a token for `alice`, valid for
//! an hour (the default); `--admin` adds the admin role, which `/admin/faults` asks for. A
//! lifetime over `JWT_MAX_TTL_SECONDS` (a day by default) is refused, as the gateway would
//! refuse the token.

use std::process::ExitCode;
use std::time::Duration;

use contract::tokens::{ADMIN_ROLE, Claims, DEFAULT_AUDIENCE, DEVELOPMENT_SECRET};
use settings::{Env, Lookup, SettingsError};

/// What the token is signed with and says, from the gateway's own variables.
struct Signing {
    secret: String,
    audience: String,
    issuer: Option<String>,
    max_lifetime: u64,
}

impl Signing {
    fn from_env() -> Result<Self, SettingsError> {
        Ok(Self {
            secret: Env
                .text("JWT_SECRET")?
                .unwrap_or_else(|| DEVELOPMENT_SECRET.to_owned()),
            audience: Env
                .text("JWT_AUDIENCE")?
                .unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            issuer: Env.text("JWT_ISSUER")?,
            max_lifetime: Env.parse("JWT_MAX_TTL_SECONDS", 86_400, "expected seconds")?,
        })
    }
}

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
    let signing = match Signing::from_env() {
        Ok(signing) => signing,
        Err(error) => {
            eprintln!("mint-token: {error}");
            return ExitCode::FAILURE;
        }
    };
    if ttl > signing.max_lifetime {
        eprintln!(
            "mint-token: {ttl} s is longer than JWT_MAX_TTL_SECONDS ({} s) allows",
            signing.max_lifetime
        );
        return ExitCode::FAILURE;
    }
    let mut claims = Claims::new(&subject, &signing.audience, Duration::from_secs(ttl))
        .issued_by(signing.issuer.as_deref());
    if admin {
        claims = claims.with_roles(&[ADMIN_ROLE]);
    }
    println!("{}", contract::tokens::sign(&claims, &signing.secret));
    ExitCode::SUCCESS
}
