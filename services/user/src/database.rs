//! The user database: waiting for Postgres, creating the database when it is missing, and
//! applying the migrations (embedded, so the binary needs no files at run time). sqlx's
//! migrator holds a Postgres advisory lock while it migrates, so replicas that start together
//! migrate once.

use sqlx::migrate::{MigrateDatabase, Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, SqlSafeStr};

use crate::configuration::DatabaseSettings;
use crate::store::is_unavailable;

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("cannot prepare the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

fn migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        migration(1, "users", include_str!("../migrations/0001_users.sql")),
        migration(2, "outbox", include_str!("../migrations/0002_outbox.sql")),
        migration(
            3,
            "outbox names its user",
            include_str!("../migrations/0003_outbox_user.sql"),
        ),
        migration(
            4,
            "outbox rows deleted once published",
            include_str!("../migrations/0004_outbox_rows_deleted_once_published.sql"),
        ),
    ])
}

/// `url`, with TLS only when it asks for it: `sslmode=require` or `verify-full` (with
/// `sslrootcert=` for a private CA) in `DATABASE_URL`. Without one, sqlx would try TLS first
/// and fall back ("prefer"), which hides a misconfigured server behind a protocol error.
fn with_tls_only_when_asked(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

/// Creates the database if it is missing, connects and migrates.
async fn prepare(settings: &DatabaseSettings) -> Result<PgPool, DatabaseError> {
    let url = with_tls_only_when_asked(&settings.url);
    if !Postgres::database_exists(&url).await? {
        // Another instance may create it at the same moment: "already exists" is success.
        if let Err(error) = Postgres::create_database(&url).await {
            // 42P04: duplicate database; 23505: the same race caught by the catalog's index.
            let exists = matches!(&error, sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("42P04" | "23505")));
            if !exists {
                return Err(error.into());
            }
        }
        tracing::info!("created the database");
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // No ping before each use: a connection lost meanwhile fails its statement, which is
        // answered as unavailable (and retried, for writes), and the pool replaces it.
        .test_before_acquire(false)
        .connect(&url)
        .await?;
    migrator().run(&pool).await?;
    Ok(pool)
}

/// Waits for Postgres with backoff, logging each try, then prepares the database. Only "cannot
/// reach it" is retried; any other failure stops start-up.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, DatabaseError> {
    let database = telemetry::redact_url(&settings.url);
    tracing::info!(%database, "connecting to Postgres");
    service_kit::retry::with_backoff(
        &format!("Postgres at {database}"),
        || prepare(settings),
        |error| matches!(error, DatabaseError::Database(error) if is_unavailable(error)),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_is_used_when_the_url_asks_for_it() {
        assert_eq!(
            with_tls_only_when_asked("postgres://db/users"),
            "postgres://db/users?sslmode=disable"
        );
        assert_eq!(
            with_tls_only_when_asked("postgres://db/users?application_name=user"),
            "postgres://db/users?application_name=user&sslmode=disable"
        );
        assert_eq!(
            with_tls_only_when_asked("postgres://db/users?sslmode=verify-full"),
            "postgres://db/users?sslmode=verify-full"
        );
    }
}
