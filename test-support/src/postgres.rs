//! A Postgres database of its own for each test, dropped when the test ends.

use sqlx::{Connection, Executor, PgConnection};

/// The server the tests use; `TEST_POSTGRES_URL` overrides it.
pub fn server_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A uniquely named database on the test server. It is not created here (the user service
/// creates its database at start-up); it is dropped, with any connection left to it, on drop.
pub struct TestDatabase {
    name: String,
}

impl TestDatabase {
    /// Checks that the test server answers, and picks a fresh database name.
    pub async fn new() -> Self {
        let admin = format!("{}/postgres", server_url());
        if let Err(error) = PgConnection::connect(&admin).await {
            panic!(
                "Postgres is not reachable at {admin} ({error}). Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, \
                 or point TEST_POSTGRES_URL at a running server."
            );
        }
        Self {
            name: format!("test_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> String {
        format!("{}/{}", server_url(), self.name)
    }

    /// The database's URL through `address` (a [`crate::TcpProxy`]) instead of the server.
    pub fn url_via(&self, address: &str) -> String {
        let server = server_url();
        format!(
            "{}/{}",
            server.replace(&server_address(), address),
            self.name
        )
    }
}

/// `host:port` of the test server, for a proxy to forward to.
pub fn server_address() -> String {
    let server = server_url();
    let authority = server.rsplit('@').next().unwrap_or(&server);
    let authority = authority
        .trim_start_matches("postgres://")
        .trim_start_matches("postgresql://");
    authority.split('/').next().unwrap_or(authority).to_owned()
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = format!("{}/postgres", server_url());
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop may run inside a test's runtime, where blocking on another is not allowed.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async move {
                if let Ok(mut connection) = PgConnection::connect(&admin).await {
                    let _ = connection.execute(sqlx::AssertSqlSafe(statement)).await;
                }
            });
        })
        .join();
    }
}
