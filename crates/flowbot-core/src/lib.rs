//! The sans-I/O core of flowbot: flows, their validation, and the conversation engine.
//!
//! A flow is loaded in two stages — YAML into raw serde structs, then a compile step that checks
//! the graph and reports every problem with file, line and node id — and run by a pure state
//! machine: `(flow, conversation, input, now) → (conversation', replies)`. Nothing here does
//! I/O, spawns tasks or reads a clock; the adapters (messengers, the web chat, the terminal) feed inputs
//! in and render the replies.
//!
//! ```
//! use flowbot_core::{Conversation, Input, Params, Reply, Timestamp, load_flow};
//!
//! let yaml = r#"
//! flow: demo
//! title: Demo
//! start: q
//! texts: { back: 戻る, restart: 最初から, stale: 古いボタンです。, no_match: 番号で答えてください。,
//!          contact: 窓口へどうぞ。, help: ボタンで答えてください。, cannot_go_back: 戻れません。,
//!          ended: 終了しました。, unknown_entry: 最初から始めます。, unknown_command: 使えません。,
//!          resume_question: 続きから再開しますか？, resume: 続きから, not_yours: 別の方のボタンです。,
//!          command_start: 始める, command_back: 戻る, command_restart: やり直す, command_help: 使い方 }
//! nodes:
//!   - id: q
//!     ask: 電源は入っていますか？
//!     choices:
//!       - { label: はい, means: "yes", next: ok }
//!       - { label: いいえ, means: "no", next: off }
//!   - id: ok
//!     end: 窓口にご連絡ください。
//!   - id: off
//!     end: 電源を入れてください。
//! "#;
//! let flow = load_flow(yaml, "demo.yaml", &Params::new()).unwrap();
//! let now = Timestamp(0);
//! let (mut conv, start) = Conversation::start(&flow, None, now);
//! let Some(Reply::Prompt(q)) = start.replies.last() else { panic!() };
//! assert_eq!(q.text(), "電源は入っていますか？");
//! let no = q.buttons().nth(1).unwrap().token.to_string();
//!
//! let outcome = conv.step(&flow, Input::Press(&no), now);
//! assert_eq!(flow.node(conv.node()).id(), "off");
//! assert!(outcome.changed);
//!
//! // The same button again is a double press: nothing changes.
//! let again = conv.step(&flow, Input::Press(&no), now);
//! assert!(!again.changed);
//! assert_eq!(flow.node(conv.node()).id(), "off");
//! ```

pub mod bounds;
mod clock;
mod compile;
mod engine;
mod flow;
mod form;
mod limits;
mod loader;
mod problem;
mod prompt;
mod raw;
mod script;
mod snapshot;
mod split;
mod store;
mod text;
mod token;
mod view;

pub use bounds::source_text;
pub use clock::{Clock, ManualClock};
pub use compile::MAX_CHOICES;
pub use engine::{
    Button, Conversation, Event, Handoff, Input, NoticeKind, Outcome, Prompt, Reply, Step,
    Timestamp,
};
pub use flow::{
    Choice, DEFAULT_RESUME_AFTER_MS, Edge, Flow, FlowVersion, Means, Node, NodeIx, NodeKind,
    Question, Texts,
};
pub use form::{
    Answer, Check, Draft, Field, Form, FormTexts, Invalid, MAX_ANSWER_CHARS, MAX_FIELDS, Stage,
    Submission, SubmittedAnswer, is_email, normalize_answer, reference,
};
pub use limits::Limits;
pub use loader::{load_flow, load_flow_for, load_flow_in};
pub use problem::{OverLimit, Problem, ProblemKind, Problems};
pub use raw::{Deployment, ParamOrigins, Params, ValueOrigin};
pub use script::{
    Coverage, CoverageReport, Script, ScriptFailure, ScriptFile, ScriptStep, run_script,
};
pub use snapshot::{RestoreError, Snapshot, Transition, TransitionKind};
pub use split::{Unit, split, split_by};
pub use store::{
    Claim, Commit, Committed, ConversationKey, ConversationStore, DeliveryCounts, Expected,
    InboundStore, NewOutgoing, NewRequest, OutboxStore, Purged, Queued, QueuedRequest, Store,
    StoreError, Stored, VersionStats,
};
pub use store::{Completion, DeliveryRecord, RequestRecord, RequestState, RequestStore};
pub use text::{Segment, normalize, segments};
pub use token::{Action, Token, max_token_len};
pub use view::{Answered, Paragraph, Part, PromptView, View};
