//! Names on the broker: exchanges, routing keys, queues and message headers. Declaring them is
//! `messaging`'s business; these are what every producer and consumer, in any language, agree on.

/// Topic exchange of user events.
pub const USERS_EXCHANGE: &str = "users";
/// Routing key (and `type`) of `user.created` events.
pub const USER_CREATED: &str = "user.created";

/// Topic exchange of message events, published by the slack service.
pub const MESSAGES_EXCHANGE: &str = "messages";
/// Routing key (and `type`) of `message.created` events.
pub const MESSAGE_CREATED: &str = "message.created";

/// Direct exchange of commands for the user service.
pub const USER_COMMANDS_EXCHANGE: &str = "user-commands";
/// Routing key (and `type`) of `create_user` commands.
pub const CREATE_USER: &str = "create_user";

/// The queue slack-queue consumes `user.created` from.
pub const SLACK_QUEUE: &str = "slack-queue.user-created";
/// The queue user-queue consumes `create_user` commands from.
pub const USER_QUEUE: &str = "user-queue.commands";

/// The durable queue, on the default exchange, where the user service takes JSON-RPC calls
/// (`contract::rpc`).
pub const USER_RPC_QUEUE: &str = "user.rpc";
/// RabbitMQ's direct reply-to: a caller consuming from it needs no reply queue of its own.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The attempt number of a delivery (1 for the first), carried across retries.
pub const ATTEMPT_HEADER: &str = "x-attempt";
/// Why a message was dead-lettered or last retried.
pub const REASON_HEADER: &str = "x-reason";
