//! The Redis connection of a process's own calls (the slack store, the fault set): one
//! multiplexed connection, opened on first use and reopened in the background, so a Redis that
//! is down at start-up or later makes calls fail fast, never the process.

use std::time::Duration;

use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A connection to `redis_url` that calls share; cheap to clone.
pub fn connect_lazily(redis_url: &str) -> Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(2));
    ConnectionManager::new_lazy_with_config(redis::Client::open(redis_url)?, config)
}
