//! The delivery outbox.
