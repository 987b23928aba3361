//! `messaging::connect`: connections ask the broker for small frames, so that lapin's two
//! zero-filled buffers of 32 frames stay at 1 MiB per connection instead of 8, unless the URL
//! asks for a frame size of its own; and messages larger than a frame still go through whole.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use test_support::TestVhost;

#[tokio::test]
async fn connections_negotiate_16_kib_frames_unless_the_url_sets_frame_max() {
    let vhost = TestVhost::new().await;
    let connection = messaging::connect(&vhost.amqp_url()).await.unwrap();
    assert_eq!(connection.configuration().frame_max(), 16 * 1024);

    let own = format!("{}?frame_max=65536", vhost.amqp_url());
    let connection = messaging::connect(&own).await.unwrap();
    assert_eq!(connection.configuration().frame_max(), 65536);
}

#[tokio::test]
async fn a_message_larger_than_a_frame_arrives_whole() {
    let vhost = TestVhost::new().await;
    let connection = messaging::connect(&vhost.amqp_url()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            "big".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let body: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
    channel
        .basic_publish(
            "".into(),
            "big".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let message = vhost
        .get("big", Duration::from_secs(5))
        .await
        .expect("the message arrives");
    assert_eq!(message.delivery.data, body);
}

#[tokio::test]
async fn a_malformed_url_is_an_error_not_a_panic() {
    assert!(messaging::connect("not a url").await.is_err());
}
