//! A key prefix of its own for each test on the shared Redis, cleaned up when the test ends.

use redis::AsyncCommands;

pub fn server_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub struct TestRedis {
    prefix: String,
}

impl TestRedis {
    /// Checks that Redis answers and picks a fresh prefix.
    pub async fn new() -> Self {
        let url = server_url();
        let answered = async {
            let client = redis::Client::open(url.as_str())?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        };
        if let Err(error) = answered.await {
            panic!(
                "Redis is not reachable at {url} ({error}). Start it with `redis-server \
                 --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no`, \
                 or point TEST_REDIS_URL at a running server."
            );
        }
        Self {
            prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connection for assertions.
    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(server_url().as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Keys under this test's prefix.
    pub async fn keys(&self) -> Vec<String> {
        let mut connection = self.connection().await;
        connection.keys(format!("{}*", self.prefix)).await.unwrap()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let pattern = format!("{}*", self.prefix);
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(server_url().as_str()) else {
                return;
            };
            let Ok(mut connection) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut connection)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut connection);
            }
        })
        .join();
    }
}
