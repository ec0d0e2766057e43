//! Placeholder: being written.

use super::Message;

#[derive(Default)]
pub struct Templates {}

impl Templates {
    pub fn builtin() -> Templates {
        Templates {}
    }

    pub fn check_file(_path: &std::path::Path) -> Result<(), String> {
        Ok(())
    }

    pub fn sample_message() -> Message {
        unimplemented!()
    }

    pub fn render(&self, _custom: Option<&str>, _default: &str, _msg: &Message) -> (String, Option<String>) {
        (String::new(), None)
    }
}
