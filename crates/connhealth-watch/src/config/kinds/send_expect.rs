//! `check = "send-expect"`: `send`, `expect` (required) and `quit`.

use std::path::Path;

use super::{KindKey, KindValue, Layers};
use crate::config::keys::Written;
use crate::config::plan::{CheckKind, Pattern, SendExpectPlan};
use crate::config::raw::Node;
use crate::config::values;

const SEND_EXPECT: &[CheckKind] = &[CheckKind::SendExpect];

/// `expect` is read by `http` too: the regex its body must match.
const EXPECT_READERS: &[CheckKind] = &[CheckKind::SendExpect, CheckKind::Http];

pub(crate) const KEYS: [KindKey; 3] = [
    KindKey {
        name: "send",
        readers: SEND_EXPECT,
        read: |node, _| values::bytes("send", node).map(KindValue::Bytes),
        written: Some(Written::String),
        example: "send = \"PING\\r\\n\"",
    },
    KindKey {
        name: "expect",
        readers: EXPECT_READERS,
        read: expect,
        written: Some(Written::String),
        example: "expect = \"^\\\\+PONG\"",
    },
    KindKey {
        name: "quit",
        readers: SEND_EXPECT,
        read: |node, _| values::bytes("quit", node).map(KindValue::Bytes),
        written: Some(Written::String),
        example: "quit = \"QUIT\\r\\n\"",
    },
];

/// What a send-expect table cannot leave out.
pub(crate) const REQUIRED: [(&str, &str); 1] = [("expect", "the regex the reply must match")];

fn expect(node: &Node, _: &Path) -> Result<KindValue, String> {
    values::regex(node).map(|regex| KindValue::Regex(Pattern(regex)))
}

pub(super) fn build(layers: Layers<'_>) -> SendExpectPlan {
    SendExpectPlan {
        send: layers.bytes("send"),
        expect: layers.regex("expect"),
        quit: layers.bytes("quit"),
    }
}
