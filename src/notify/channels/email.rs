//! Placeholder: being written.

use std::sync::Arc;

use crate::notify::Notifier;
use crate::notify::config::BuildEnv;

pub fn build(
    _value: &serde_json::Value,
    _env: &mut BuildEnv<'_>,
) -> Result<Arc<dyn Notifier>, String> {
    Err("not built yet".into())
}
