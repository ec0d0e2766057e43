//! Placeholder: being written.

use super::Message;

#[derive(Default)]
pub struct Templates {}

impl Templates {
    pub fn builtin() -> Templates {
        Templates {}
    }

    pub fn render(
        &self,
        _custom: Option<&str>,
        _default: &str,
        _msg: &Message,
    ) -> (String, Option<String>) {
        (String::new(), None)
    }
}
