//! The bus without a broker: what a publish does to the queue and its
//! bounds, what arriving bytes do, and how loops report their topics.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::*;
use crate::push::Topics;
use crate::service::MessageKind;

fn bus(queue_messages: usize, queue_bytes: usize) -> (Bus, Receiver<Outgoing>) {
    let c = BusConfig {
        queue_messages,
        queue_bytes,
        ..BusConfig::new("redis://127.0.0.1:1")
    };
    Bus::new(&c, 1000, 42)
}

fn up(b: &Bus) {
    b.stats.pub_up.store(true, Ordering::Relaxed);
}

#[test]
fn publishes_while_down_are_counted_and_dropped() {
    let (b, rx) = bus(8, 1 << 20);
    b.offer(&Topic::new("t"), &Prepared::text("hi"));
    assert_eq!(b.stats.dropped_count(Drop::Down), 1);
    assert!(rx.try_recv().is_err(), "nothing queued");
}

#[test]
fn the_queue_is_bounded_in_messages_and_bytes() {
    let (b, rx) = bus(3, 1 << 20);
    up(&b);
    let t = Topic::new("t");
    for _ in 0..5 {
        b.offer(&t, &Prepared::text("x"));
    }
    assert_eq!(b.stats.dropped_count(Drop::Full), 2, "3 messages fit");
    // Taking them releases their bytes; what was queued is intact.
    for _ in 0..3 {
        let out = rx.try_recv().unwrap();
        assert_eq!((out.topic.name(), out.msg.payload()), ("t", &b"x"[..]));
        b.taken(&out);
    }
    assert_eq!(b.queued_bytes.load(Ordering::Relaxed), 0);

    // 100 payload bytes + 1 topic byte + the head each: two fit in 250.
    let (b, rx) = bus(100, 250);
    up(&b);
    let big = Prepared::binary(&[7; 100]);
    for _ in 0..3 {
        b.offer(&t, &big);
    }
    assert_eq!(b.stats.dropped_count(Drop::Full), 1);
    assert_eq!(b.queued_bytes.load(Ordering::Relaxed), 2 * (100 + 1 + 11));
    // The link went down: what waits is dropped and counted.
    b.discard(&rx);
    assert_eq!(b.stats.dropped_count(Drop::Down), 2);
    assert_eq!(b.queued_bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn messages_over_the_limit_do_not_cross() {
    let (b, rx) = bus(8, 1 << 20);
    up(&b);
    b.offer(&Topic::new("t"), &Prepared::binary(&[0; 1001]));
    assert_eq!(b.stats.dropped_count(Drop::TooLarge), 1);
    assert!(rx.try_recv().is_err());
    b.offer(&Topic::new("t"), &Prepared::binary(&[0; 1000]));
    assert!(rx.try_recv().is_ok(), "at the limit it crosses");
}

#[test]
fn arrivals_that_are_not_ours_are_counted() {
    let (b, _rx) = bus(8, 1 << 20);
    let h = Handle::new(1);
    let mut env = Vec::new();
    envelope::encode(7, MessageKind::Text, b"hi", &mut env);
    b.arrived(&h, "other:t", &env);
    b.arrived(&h, "zerows:t", b"plain bytes");
    assert_eq!(b.stats.dropped_count(Drop::Malformed), 2);
    // Our own publish, back from the broker: silently skipped.
    envelope::encode(42, MessageKind::Text, b"hi", &mut env);
    b.arrived(&h, "zerows:t", &env);
    assert_eq!(b.stats.dropped_count(Drop::Malformed), 2);
    assert_eq!(b.stats.received.load(Ordering::Relaxed), 0);
    // Too large from another instance.
    envelope::encode(7, MessageKind::Binary, &[0; 1001], &mut env);
    b.arrived(&h, "zerows:t", &env);
    assert_eq!(b.stats.dropped_count(Drop::TooLarge), 1);
}

#[test]
fn channels_are_prefixed_topics() {
    let (b, _rx) = bus(8, 1 << 20);
    assert_eq!(b.channel("room"), "zerows:room");
    assert_eq!(b.topic_of("zerows:room"), Some("room"));
    assert_eq!(b.topic_of("zerows:"), Some(""));
    assert_eq!(b.topic_of("zero"), None);
}

#[test]
fn loops_report_topics_as_they_appear_and_go() {
    let (b, _rx) = bus(8, 1 << 20);
    let b = Arc::new(b);
    let (mut one, mut two) = (Topics::default(), Topics::default());
    one.report_to(b.clone());
    two.report_to(b.clone());
    one.subscribe("a", None, 1);
    one.subscribe("a", None, 2);
    two.subscribe("a", None, 1);
    two.subscribe("b", None, 5);
    assert_eq!(b.interest.len(), 2);
    one.release(1);
    one.release(2);
    assert_eq!(b.interest.len(), 2, "loop two still holds a");
    two.unsubscribe("a", 1);
    assert_eq!(b.interest.len(), 1);
    two.release(5);
    assert_eq!(b.interest.len(), 0);
}

#[test]
fn config_checks() {
    assert!(BusConfig::new("redis://127.0.0.1:6379").validate().is_ok());
    assert!(BusConfig::new("nats://127.0.0.1:4222").validate().is_err());
    let c = BusConfig {
        queue_messages: 0,
        ..BusConfig::new("redis://h:1")
    };
    assert!(c.validate().is_err());
}
