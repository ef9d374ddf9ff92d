//! Fuzzing on stable Rust: property tests that feed the flow loader, the script loader, button
//! tokens and typed answers arbitrary and mostly-valid input.
//!
//! Every case runs on a thread of its own under a deadline: it must end, without a panic, in
//! [`DEADLINE`]. A refused flow names its file in every problem; an accepted one starts a
//! conversation and takes steps; a token the core prints parses back; normalising is idempotent.
//!
//! The number of cases per property is `PROPTEST_CASES` when set, else the modest number each
//! property names (the whole set runs in well under a minute in a debug build). A longer run:
//! `PROPTEST_CASES=20000 cargo test --release -p flowbot-tests --test tests fuzz::`. A failing
//! case is saved in `tests/fuzz.proptest-regressions` and replayed first on every later run.

use std::any::Any;
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use flowbot_core::{
    Action, Conversation, Coverage, Flow, Input, Limits, Outcome, Params, Problems, ScriptFile,
    Timestamp, Token, View, load_flow, load_flow_for, normalize, normalize_answer, run_script,
};
use flowbot_tests::root;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError};

/// How long one case may take: loading a flow and a conversation's steps through it.
const DEADLINE: Duration =
    if cfg!(debug_assertions) { Duration::from_secs(5) } else { Duration::from_secs(2) };

/// The name the inputs are loaded under; every problem must name it.
const ORIGIN: &str = "fuzz/case.yaml";

const NOW: Timestamp = Timestamp(1_700_000_000_000);

/// The platforms a flow is checked against by `flowbot check`.
const PLATFORMS: [&Limits; 3] =
    [&flowbot_telegram::LIMITS, &flowbot_discord::LIMITS, &flowbot_web::LIMITS];

static GMIS_SOURCE: LazyLock<String> = LazyLock::new(|| read("flows/gmis-mail-trouble.yaml"));
static GMIS_SCRIPTS: LazyLock<String> =
    LazyLock::new(|| read("flows/tests/gmis-mail-trouble.yaml"));
static GMIS: LazyLock<Flow> = LazyLock::new(flowbot_tests::gmis);

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// `cases` cases, unless `PROPTEST_CASES` says otherwise.
fn budget(cases: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    Config {
        cases,
        max_shrink_iters: 1024,
        max_shrink_time: 60_000,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

thread_local! {
    /// A case of this property overran its deadline and its thread still runs: later cases
    /// (the shrinker's) are skipped, so the case reported is the one that overran and no second
    /// runaway joins the first.
    static RUNAWAY: Cell<bool> = const { Cell::new(false) };
}

/// Runs one case on its own thread: `Ok` if it returned `Ok` within [`DEADLINE`], a failure if it
/// returned an error, panicked or overran.
fn bounded(
    case: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), TestCaseError> {
    bounded_by(DEADLINE, case)
}

fn bounded_by(
    deadline: Duration,
    case: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Result<(), TestCaseError> {
    if RUNAWAY.get() {
        return Err(TestCaseError::reject("an earlier case overran and still runs"));
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let _ = tx.send(case());
        })
        .expect("spawn a case's thread");
    match rx.recv_timeout(deadline) {
        Ok(result) => {
            let _ = thread.join();
            result.map_err(TestCaseError::fail)
        }
        Err(RecvTimeoutError::Timeout) => {
            RUNAWAY.set(true);
            Err(TestCaseError::fail(format!("the case took more than {deadline:?}")))
        }
        Err(RecvTimeoutError::Disconnected) => {
            let panic = thread.join().err().map_or_else(String::new, panic_message);
            Err(TestCaseError::fail(format!("the case panicked: {panic}")))
        }
    }
}

fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload.downcast_ref::<&str>().map_or("(no message)", |s| s).to_owned(),
    }
}

fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(message()) }
}

// ------------------------------------------------------------------------------- properties

/// Loads `source` as a flow: it is refused with problems that name the file, or it runs.
fn check_flow(source: &str, params: &Params) -> Result<(), String> {
    let plain = load_flow(source, ORIGIN, params);
    let checked = load_flow_for(source, ORIGIN, params, &PLATFORMS);
    if let Err(problems) = &checked {
        check_refusal(problems)?;
    }
    match plain {
        Err(problems) => {
            check_refusal(&problems)?;
            ensure(checked.is_err(), || "platform limits made a refused flow load".into())
        }
        Ok(flow) => converse(&flow),
    }
}

/// A refusal lists at least one problem, and each names the file and says something.
fn check_refusal(problems: &Problems) -> Result<(), String> {
    ensure(!problems.is_empty(), || "a refusal without problems".into())?;
    for p in problems.iter() {
        ensure(p.file == ORIGIN, || format!("a problem names `{}`, not the file: {p}", p.file))?;
        ensure(!p.kind.to_string().trim().is_empty(), || format!("an empty problem: {p:?}"))?;
        ensure(p.to_string().starts_with(ORIGIN), || format!("a problem without its file: {p}"))?;
    }
    Ok(())
}

/// Starts a conversation at the start and at each entry, and walks it: first buttons, typed
/// numbers and words, navigation, and a forged press, which must change nothing.
fn converse(flow: &Flow) -> Result<(), String> {
    let entries: Vec<Option<&str>> =
        std::iter::once(None).chain(flow.entries().take(8).map(|(name, _)| Some(name))).collect();
    for entry in entries {
        let (mut conv, out) = Conversation::start(flow, entry, NOW);
        shown(flow, &out, None)?;
        let mut now = NOW;
        for step in 0..24u64 {
            now = Timestamp(now.0 + step * 60_000);
            let press = conv
                .prompt(flow)
                .buttons()
                .nth(usize::try_from(step % 3).unwrap_or(0))
                .map(|b| b.token.to_string());
            let out = match (step % 6, &press) {
                (4, _) => conv.step(flow, Input::Text("1"), now),
                (5, _) => conv.step(flow, Input::Text("はい"), now),
                (_, Some(token)) => conv.step(flow, Input::Press(token), now),
                (_, None) => conv.step(flow, Input::Text("taro@example.jp"), now),
            };
            shown(flow, &out, press.as_deref())?;
        }
        for input in [Input::Back, Input::Help, Input::Restart, Input::Text("/back")] {
            let out = conv.step(flow, input, now);
            shown(flow, &out, None)?;
        }
        let before = conv.clone();
        let out = conv.step(flow, Input::Press("forged"), now);
        ensure(!out.changed && conv == before, || {
            "a forged press changed the conversation".into()
        })?;
    }
    Ok(())
}

/// What an outcome shows can be rendered, and each of its buttons' tokens parses back.
fn shown(flow: &Flow, out: &Outcome<'_>, pressed: Option<&str>) -> Result<(), String> {
    let view = View::of(flow, out, pressed);
    for paragraph in &view.paragraphs {
        let _ = paragraph.segments();
    }
    if let Some(prompt) = out.prompt_shown() {
        for button in prompt.buttons() {
            let printed = button.token.to_string();
            ensure(Token::parse(&printed) == Some(button.token), || {
                format!(
                    "the token `{printed}` of a button at `{}` does not parse back",
                    prompt.node.id()
                )
            })?;
        }
    }
    Ok(())
}

/// Parses `source` as a script file; an accepted one runs against the G-MIS flow compiled with
/// its parameters.
fn check_scripts(source: &str) -> Result<(), String> {
    let file = match ScriptFile::parse(source, ORIGIN) {
        Err(p) => return check_refusal(&Problems(vec![p])),
        Ok(file) => file,
    };
    let flow = match load_flow(&GMIS_SOURCE, ORIGIN, &file.params) {
        Err(problems) => return check_refusal(&problems),
        Ok(flow) => flow,
    };
    let mut coverage = Coverage::new(&flow);
    for script in file.scripts.iter().take(64) {
        if let Err(failure) = run_script(&flow, script, &mut coverage) {
            ensure(!failure.message.trim().is_empty(), || {
                format!("an empty failure: {failure:?}")
            })?;
        }
    }
    let _ = coverage.report(&flow).to_string();
    Ok(())
}

/// What the normalisers promise: white space folded to single spaces and trimmed; `normalize`
/// lower-cases and turns full-width Latin letters, digits and half-width katakana into their
/// usual forms; `normalize_answer` drops control characters, and a second pass changes nothing.
fn check_normalized(input: &str) -> Result<(), String> {
    let key = normalize(input);
    let answer = normalize_answer(input);
    for (name, once) in [("normalize", &key), ("normalize_answer", &answer)] {
        ensure(once.trim() == once && !once.contains("  "), || {
            format!("{name}({input:?}) = {once:?}")
        })?;
        ensure(!once.chars().any(|c| c.is_whitespace() && c != ' '), || {
            format!("{name}({input:?}) = {once:?} keeps white space other than spaces")
        })?;
    }
    let odd = |c: char| {
        c.to_lowercase().ne(std::iter::once(c))
            || ('\u{ff01}'..='\u{ff5e}').contains(&c)
            || ('\u{ff61}'..='\u{ff9f}').contains(&c)
    };
    ensure(!key.chars().any(odd), || {
        format!("normalize({input:?}) = {key:?} keeps an upper-case, full-width or half-width form")
    })?;
    ensure(!answer.chars().any(char::is_control), || {
        format!("normalize_answer({input:?}) = {answer:?} keeps a control character")
    })?;
    let twice = normalize_answer(&answer);
    ensure(twice == answer, || {
        format!("normalize_answer is not idempotent on {input:?}: {answer:?} then {twice:?}")
    })
}

/// `normalize` twice is `normalize` once on what keyboards type in Japan (kana of both widths,
/// kanji, ASCII and its full-width forms, spaces of both widths). Not on every text: lower-casing
/// after NFKC can leave text that NFKC changes again (`"ᾼ\u{301}"` → `"ά\u{345}"` → `"ᾴ"`).
fn check_idempotent(input: &str) -> Result<(), String> {
    let once = normalize(input);
    let twice = normalize(&once);
    ensure(twice == once, || {
        format!("normalize is not idempotent on {input:?}: {once:?} then {twice:?}")
    })
}

/// Any input the engine can get, from one of the G-MIS flow's prompts.
#[derive(Debug, Clone)]
enum Move {
    /// A button of the prompt now shown.
    Button(Index),
    Press(String),
    Text(String),
    /// A form field's box, answered with this text.
    Answer(String),
    AnswerToken(String, String),
    Back,
    Restart,
    Help,
    Start(Option<String>),
    /// Time passes (milliseconds).
    Wait(u64),
}

/// Plays `moves` on the G-MIS flow: no panic, and a press of a string that is no token changes
/// nothing (unless it comes after a pause: then the resume question is asked).
fn check_moves(moves: &[Move]) -> Result<(), String> {
    let flow: &Flow = &GMIS;
    let (mut conv, out) = Conversation::start(flow, None, NOW);
    shown(flow, &out, None)?;
    let mut now = NOW;
    for m in moves {
        let before = conv.clone();
        let prompt = conv.prompt(flow);
        let button = |i: &Index| {
            let tokens: Vec<String> = prompt.buttons().map(|b| b.token.to_string()).collect();
            (!tokens.is_empty()).then(|| tokens[i.index(tokens.len())].clone())
        };
        let input_token = prompt.input().map(|(b, _)| b.token.to_string());
        let (out, pressed) = match m {
            Move::Button(i) => match button(i) {
                Some(token) => (conv.step(flow, Input::Press(&token), now), Some(token)),
                None => (conv.step(flow, Input::Text("1"), now), None),
            },
            Move::Press(s) => {
                // After a pause, any press but a current button's asks whether to resume.
                let paused = flow
                    .resume_after()
                    .is_some_and(|pause| now.0.saturating_sub(before.updated_at().0) >= pause);
                let out = conv.step(flow, Input::Press(s), now);
                if Token::parse(s).is_none() && !paused {
                    ensure(!out.changed && conv == before, || {
                        format!("the press {s:?} changed something")
                    })?;
                }
                (out, Some(s.clone()))
            }
            Move::Text(s) => (conv.step(flow, Input::Text(s), now), None),
            Move::Answer(text) => {
                let token = input_token.unwrap_or_default();
                (conv.step(flow, Input::Answer { token: &token, text }, now), None)
            }
            Move::AnswerToken(token, text) => {
                (conv.step(flow, Input::Answer { token, text }, now), None)
            }
            Move::Back => (conv.step(flow, Input::Back, now), None),
            Move::Restart => (conv.step(flow, Input::Restart, now), None),
            Move::Help => (conv.step(flow, Input::Help, now), None),
            Move::Start(entry) => {
                (conv.step(flow, Input::Start { entry: entry.as_deref() }, now), None)
            }
            Move::Wait(ms) => {
                now = Timestamp(now.0.saturating_add(*ms));
                continue;
            }
        };
        shown(flow, &out, pressed.as_deref())?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------- generators

/// Text of any kind: any Unicode, bytes read as lossy UTF-8, and tokens of YAML.
fn arbitrary_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..4096)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        prop::collection::vec(prop::sample::select(YAML_BITS), 0..200).prop_map(|v| v.concat()),
    ]
}

/// Pieces of YAML and of the flow format, for token soup and inserted lines.
const YAML_BITS: &[&str] = &[
    "flow: f\n",
    "title: t\n",
    "start: q1\n",
    "nodes:\n",
    "texts:\n",
    "params:\n",
    "entries:\n",
    "forms:\n",
    "  - id: q1\n",
    "    ask: 質問\n",
    "    say: |\n",
    "    end: 終わり\n",
    "    next: q1\n",
    "    choices:\n",
    "      - { label: はい, means: yes, next: done }\n",
    "    form: address_change\n",
    "- ",
    ": ",
    "? ",
    "&a ",
    "*a",
    "<<: *a\n",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "!!binary aGk=",
    "!!str ",
    "!!map",
    "!tag ",
    "{{",
    "}}",
    "{{desk_contact}}",
    "|",
    "|-",
    ">",
    "\t",
    "\"",
    "'",
    "# c\n",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "  ",
    "    ",
    "\u{feff}",
    "null",
    "~",
    "true",
    "0x1F",
    "1e400",
    "-",
    "\\",
    "\r\n",
    "\u{3000}",
    "１",
];

/// Lines of a YAML file, edited.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Duplicate(Index),
    Swap(Index, Index),
    /// Indent a line by this many more (or fewer) spaces.
    Indent(Index, i8),
    /// Cut a line at a character.
    Truncate(Index, Index),
    Replace(Index, String),
    Insert(Index, String),
    /// An anchor on one line's value, an alias for it as another's.
    Alias(Index, Index),
    /// A line's value replaced by this many copies of a character.
    Huge(Index, usize, char),
    /// A line's value replaced by lists (or maps) nested this deep.
    Nest(Index, usize, bool),
    /// `{{name}}`, this many times, at the end of a line.
    Placeholder(Index, String, usize),
    /// One line's value given to another (`next: q3` to `next: m5`, a label to another).
    CopyValue(Index, Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = any::<Index>;
    let placeholder = prop_oneof![
        prop::sample::select(
            &[
                "desk_contact",
                "desk_name",
                "cause3_note",
                "prefecture",
                " desk_phone ",
                "nope",
                "",
                "{{",
                "}",
                "label",
                "value",
                "title",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-z_]{1,8}",
        any::<String>(),
    ];
    let size = prop_oneof![8 => 0..256usize, 2 => 1024..20_000usize, 1 => 60_000..150_000usize];
    prop_oneof![
        4 => i().prop_map(Edit::Delete),
        3 => i().prop_map(Edit::Duplicate),
        3 => (i(), i()).prop_map(|(a, b)| Edit::Swap(a, b)),
        3 => (i(), -6i8..=6).prop_map(|(a, d)| Edit::Indent(a, d)),
        2 => (i(), i()).prop_map(|(a, b)| Edit::Truncate(a, b)),
        2 => (i(), arbitrary_text()).prop_map(|(a, s)| Edit::Replace(a, s)),
        3 => (i(), prop::sample::select(YAML_BITS)).prop_map(|(a, s)| Edit::Insert(a, s.to_owned())),
        3 => (i(), i()).prop_map(|(a, b)| Edit::Alias(a, b)),
        2 => (i(), size, prop::sample::select(&['x', 'あ', ' ', '{', '\n', '"'][..]))
            .prop_map(|(a, n, c)| Edit::Huge(a, n, c)),
        1 => (i(), 1..3000usize, any::<bool>()).prop_map(|(a, d, map)| Edit::Nest(a, d, map)),
        3 => (i(), placeholder, 1..40usize).prop_map(|(a, n, k)| Edit::Placeholder(a, n, k)),
        6 => (i(), i()).prop_map(|(a, b)| Edit::CopyValue(a, b)),
    ]
}

/// `base` with `edits` applied, line by line.
fn edited(base: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
    let mut anchors = 0;
    for e in edits {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let n = lines.len();
        let set_value = |line: &mut String, value: &str| {
            let key_len = line.find(": ").map_or(line.len(), |k| k + 1);
            line.truncate(key_len);
            line.push(' ');
            line.push_str(value);
        };
        match e {
            Edit::Delete(i) => {
                lines.remove(i.index(n));
            }
            Edit::Duplicate(i) => {
                let line = lines[i.index(n)].clone();
                lines.insert(i.index(n), line);
            }
            Edit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::Indent(i, d) => {
                let line = &mut lines[i.index(n)];
                if *d >= 0 {
                    line.insert_str(0, &" ".repeat(d.unsigned_abs().into()));
                } else {
                    let strip = line.len() - line.trim_start_matches(' ').len();
                    line.drain(..strip.min(d.unsigned_abs().into()));
                }
            }
            Edit::Truncate(i, at) => {
                let line = &mut lines[i.index(n)];
                let chars = line.chars().count();
                if chars > 0 {
                    *line = line.chars().take(at.index(chars)).collect();
                }
            }
            Edit::Replace(i, s) => lines[i.index(n)].clone_from(s),
            Edit::Insert(i, s) => lines.insert(i.index(n + 1), s.trim_end_matches('\n').to_owned()),
            Edit::Alias(a, b) => {
                anchors += 1;
                let (a, b) = (a.index(n), b.index(n));
                if let Some(k) = lines[a].find(": ") {
                    lines[a].insert_str(k + 2, &format!("&a{anchors} "));
                }
                set_value(&mut lines[b], &format!("*a{anchors}"));
            }
            Edit::Huge(i, size, c) => {
                set_value(&mut lines[i.index(n)], &c.to_string().repeat(*size))
            }
            Edit::Nest(i, depth, map) => {
                let (open, close) = if *map { ("{a: ", "}") } else { ("[", "]") };
                let value = format!("{}x{}", open.repeat(*depth), close.repeat(*depth));
                set_value(&mut lines[i.index(n)], &value);
            }
            Edit::CopyValue(from, to) => {
                let line = &lines[from.index(n)];
                if let Some(k) = line.find(": ") {
                    let value = line[k + 2..].to_owned();
                    set_value(&mut lines[to.index(n)], &value);
                }
            }
            Edit::Placeholder(i, name, times) => {
                lines[i.index(n)].push_str(&format!("{{{{{name}}}}}").repeat(*times));
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// A G-MIS flow with parameters built from parameters, many placeholders and big values: the
/// inputs that make loading grow.
#[derive(Debug, Clone)]
struct Growth {
    /// The base value: this many copies of a character.
    base: usize,
    /// The base value comes from the deployment, not the flow's default.
    given: bool,
    /// `{{base}}` this many times in a parameter built from it…
    repeats: usize,
    /// …and that parameter this many times in each of these texts.
    uses: usize,
    texts: Vec<Index>,
    /// Parameters built from the previous one, in a chain (two levels or more are refused).
    chain: usize,
    /// Small parameters, each used once.
    many: usize,
    /// A deployment value of this many placeholders for the built parameter.
    given_template: usize,
}

fn growth() -> impl Strategy<Value = Growth> {
    let base = prop_oneof![4 => 0..512usize, 3 => 1024..20_000usize, 2 => 60_000..110_000usize];
    (
        base,
        any::<bool>(),
        0..=25usize,
        1..=25usize,
        prop::collection::vec(any::<Index>(), 1..8),
        0..4usize,
        prop_oneof![3 => Just(0usize), 1 => 1..300usize],
        prop_oneof![3 => Just(0usize), 1 => 1..25usize],
    )
        .prop_map(|(base, given, repeats, uses, texts, chain, many, given_template)| Growth {
            base,
            given,
            repeats,
            uses,
            texts,
            chain,
            many,
            given_template,
        })
}

/// The flow and the deployment's values for a [`Growth`].
fn grown(g: &Growth) -> (String, Params) {
    let mut params_yaml = String::from("params:\n");
    let big = "x".repeat(g.base);
    let _ = writeln!(params_yaml, "  big:\n    default: \"{}\"", if g.given { "" } else { &big });
    let _ = writeln!(params_yaml, "  rep:\n    default: \"{}\"", "{{big}}".repeat(g.repeats));
    let mut last = "rep".to_owned();
    for c in 0..g.chain {
        let _ = writeln!(params_yaml, "  chain{c}:\n    default: \"{{{{{last}}}}}{{{{{last}}}}}\"");
        last = format!("chain{c}");
    }
    for m in 0..g.many {
        let _ = writeln!(params_yaml, "  m{m}: {{ default: \"v{m}\" }}");
    }
    let source = GMIS_SOURCE.replacen("params:\n", &params_yaml, 1);
    let mut lines: Vec<String> = source.lines().map(str::to_owned).collect();
    // Block scalars (`say: |`, `end: |`, `contact: |`): a line of uses after the opener, at the
    // indentation of the scalar's first line.
    let openers: Vec<usize> = (0..lines.len().saturating_sub(1))
        .filter(|&i| lines[i].trim_end().ends_with(": |"))
        .collect();
    let mut uses = format!("{{{{{last}}}}}").repeat(g.uses);
    for m in 0..g.many {
        let _ = write!(uses, "{{{{m{m}}}}}");
    }
    let mut at: Vec<usize> = g.texts.iter().map(|i| openers[i.index(openers.len())]).collect();
    at.sort_unstable();
    at.dedup();
    for &i in at.iter().rev() {
        let next = &lines[i + 1];
        let indent = &next[..next.len() - next.trim_start().len()];
        let line = format!("{indent}{uses}");
        lines.insert(i + 1, line);
    }
    let mut params = Params::new();
    if g.given {
        params.insert("big".into(), big);
    }
    if g.given_template > 0 {
        params.insert("rep".into(), "{{big}}".repeat(g.given_template));
    }
    (lines.join("\n") + "\n", params)
}

/// A script file: steps of every kind, with labels of the G-MIS flow and odd values.
fn script_file() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        prop::sample::select(
            &[
                "届いている",
                "届いていない",
                "はい",
                "いいえ",
                "q1",
                "q2",
                "m5",
                "done",
                "1",
                "0",
                "18446744073709551615",
                "99999999999999999999",
                "-1",
                "1e3",
                "",
                "stale",
                "no_match",
                "0:q1:0",
                "1:q1:b",
                "taro@example.jp",
            ][..]
        )
        .prop_map(str::to_owned),
        any::<String>(),
        any::<u64>().prop_map(|n| n.to_string()),
    ];
    let step = (
        prop::sample::select(
            &[
                "press",
                "press_stale",
                "press_token",
                "type",
                "answer",
                "start",
                "wait_hours",
                "at",
                "says",
                "not_says",
                "notice",
                "press_again",
                "back",
                "restart",
                "help",
                "bogus",
            ][..],
        ),
        value,
    );
    prop::collection::vec(prop::collection::vec(step, 0..24), 1..4).prop_map(|scripts| {
        let mut out = String::from("flow: gmis-mail-trouble\nscripts:\n");
        for (n, steps) in scripts.iter().enumerate() {
            let _ = write!(out, "  - name: s{n}\n    steps:\n");
            for (key, value) in steps {
                let value = value.replace('\\', "\\\\").replace('"', "\\\"");
                if matches!(*key, "press_again" | "back" | "restart" | "help") {
                    let _ = writeln!(out, "      - {key}");
                } else {
                    let _ = writeln!(out, "      - {key}: \"{value}\"");
                }
            }
        }
        out
    })
}

/// Text where normalising has work to do: widths, cases, spaces, controls, combining marks.
fn tricky_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        any::<char>(),
        prop::sample::select(
            &[
                ' ', '\t', '\n', '\r', '\u{3000}', '\u{a0}', '\u{2028}', '\u{85}', '\u{0}',
                '\u{7f}', '\u{200b}', '\u{feff}', '２', 'Ｙ', 'ｱ', 'ﾞ', 'ﾟ', 'ｶ', 'İ', 'Σ', 'ß', 'ẞ',
                'ﬁ', '㍿', 'Ⅻ', '℃', 'Ω', 'K', '\u{301}', '\u{308}', '\u{345}', '\u{3099}', 'ᾼ',
                '¨', '´', 'ㄱ', '가', '\u{1100}', '\u{1161}', 'ǅ', 'Ǆ', 'ﾟ', '①', '＠', '．',
            ][..]
        ),
    ];
    prop_oneof![
        3 => prop::collection::vec(c, 0..64).prop_map(|v| v.into_iter().collect()),
        1 => any::<String>(),
        1 => (any::<char>(), prop::collection::vec(0x300u32..0x370, 0..20_000))
            .prop_map(|(base, marks)| {
                std::iter::once(base).chain(marks.into_iter().filter_map(char::from_u32)).collect()
            }),
    ]
}

/// What a keyboard in Japan types: kana of both widths, kanji, ASCII and full-width ASCII, and
/// spaces of both widths.
fn keyboard_text() -> impl Strategy<Value = String> {
    let c = prop_oneof![
        0x20u32..0x7f,
        0xff01u32..0xff5f,
        0xff61u32..0xffa0,
        0x3041u32..0x3097,
        0x30a1u32..0x30fb,
        0x4e00u32..0x5000,
        prop::sample::select(&[0x3000u32, 0x3001, 0x3002, 0x30fc, 0x301c, 0x09, 0x0a][..]),
    ];
    prop::collection::vec(c.prop_filter_map("a character", char::from_u32), 0..48)
        .prop_map(|v| v.into_iter().collect())
}

fn a_move() -> impl Strategy<Value = Move> {
    let text = prop_oneof![
        prop::sample::select(
            &[
                "1",
                "２",
                "3.",
                "はい",
                "いいえ",
                "届いている",
                "/back",
                "/restart",
                "/help",
                "/start",
                "/start q5",
                "/start nope",
                "/",
                "分からない",
                "taro@example.jp",
                "ＴＡＲＯ＠ＥＸＡＭＰＬＥ．ＪＰ",
                "確定する",
                "修正する",
                "続きから",
                "最初から",
            ][..]
        )
        .prop_map(str::to_owned),
        tricky_text(),
        (1..40_000usize).prop_map(|n| "あ".repeat(n)),
    ];
    let token = prop_oneof![
        (any::<u64>(), "[a-z0-9_]{1,12}", "[0-9bcrsx]|u[0-9]|f[0-9]")
            .prop_map(|(r, n, a)| format!("{}:{n}:{a}", r % 64)),
        any::<String>(),
    ];
    prop_oneof![
        8 => any::<Index>().prop_map(Move::Button),
        3 => token.clone().prop_map(Move::Press),
        4 => text.clone().prop_map(Move::Text),
        3 => text.clone().prop_map(Move::Answer),
        1 => (token, text).prop_map(|(t, s)| Move::AnswerToken(t, s)),
        1 => Just(Move::Back),
        1 => Just(Move::Restart),
        1 => Just(Move::Help),
        1 => prop::option::of(prop_oneof!["q[1-7]", "taiou[1-5]", any::<String>()]).prop_map(Move::Start),
        1 => prop_oneof![0..120_000u64, 3_600_000..40_000_000u64, Just(u64::MAX)].prop_map(Move::Wait),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (0..10u8).prop_map(Action::Choice),
        Just(Action::Back),
        Just(Action::Restart),
        Just(Action::Resume),
        Just(Action::Submit),
        Just(Action::Fix),
        (0..10u8).prop_map(Action::Unknown),
        (0..10u8).prop_map(Action::Field),
    ]
}

// ------------------------------------------------------------------------------------ tests

proptest! {
    #![proptest_config(budget(96))]

    /// Anything at all as a flow file.
    #[test]
    fn any_text_as_a_flow_loads_or_is_refused(source in arbitrary_text()) {
        bounded(move || check_flow(&source, &Params::new()))?;
    }

    /// The G-MIS flow with lines deleted, doubled, swapped, re-indented, cut, replaced, aliased,
    /// blown up, nested and given placeholders: the cases that reach the compiler.
    #[test]
    fn an_edited_flow_loads_or_is_refused(edits in prop::collection::vec(edit(), 1..7)) {
        bounded(move || check_flow(&edited(&GMIS_SOURCE, &edits), &Params::new()))?;
    }

    /// Parameters built from parameters, used many times, with big values: loading stays within
    /// the deadline (the bounds of `flowbot_core::bounds` refuse what would grow too much).
    #[test]
    fn parameters_that_grow_load_in_bounded_time(g in growth()) {
        bounded(move || {
            let (source, params) = grown(&g);
            check_flow(&source, &params)
        })?;
    }

    /// Anything at all, and edits of the shipped scripts, as a script file.
    #[test]
    fn any_script_file_parses_or_is_refused(
        source in prop_oneof![
            arbitrary_text(),
            prop::collection::vec(edit(), 1..6).prop_map(|e| edited(&GMIS_SCRIPTS, &e)),
        ]
    ) {
        bounded(move || check_scripts(&source))?;
    }

    /// Well-formed script files with steps of every kind and odd values, run to the end.
    #[test]
    fn any_script_runs_or_fails_with_a_reason(source in script_file()) {
        bounded(move || check_scripts(&source))?;
    }

    /// Inputs of every kind, in any order and at any time, on the G-MIS flow.
    #[test]
    fn any_inputs_step_the_engine(moves in prop::collection::vec(a_move(), 1..40)) {
        bounded(move || check_moves(&moves))?;
    }
}

proptest! {
    #![proptest_config(budget(2048))]

    /// A token the core prints parses back to itself, within the length promised.
    #[test]
    fn a_printed_token_parses_back(rev in any::<u64>(), node in "[A-Za-z0-9_-]{1,64}", action in action()) {
        let token = Token { rev, node: &node, action };
        let printed = token.to_string();
        prop_assert!(printed.len() <= flowbot_core::max_token_len(&node));
        prop_assert_eq!(Token::parse(&printed), Some(token));
    }

    /// Any string parses or not without a panic; one that parses prints as a token that parses
    /// to the same value and is no longer than the string.
    #[test]
    fn any_string_as_a_token(s in prop_oneof![
        any::<String>(),
        "[0-9]{0,22}:[a-z0-9:_-]{0,8}:[0-9a-z]{0,3}",
        (any::<u64>(), "[0-9]{0,3}", ".{0,130}").prop_map(|(r, z, rest)| format!("{z}{r}:{rest}")),
    ]) {
        if let Some(token) = Token::parse(&s) {
            let printed = token.to_string();
            prop_assert_eq!(Token::parse(&printed), Some(token));
            prop_assert!(printed.len() <= s.len(), "{:?} prints as the longer {:?}", s, printed);
        }
    }

    /// Typed answers: what both normalisers promise, on any text.
    #[test]
    fn normalizing_folds_width_space_and_case(input in tricky_text()) {
        bounded(move || check_normalized(&input))?;
    }

    /// Typed answers as typed in Japan: normalising twice changes nothing.
    #[test]
    fn normalizing_typed_japanese_is_idempotent(input in keyboard_text()) {
        bounded(move || check_idempotent(&input))?;
    }
}

// ------------------------------------------------------------------- what the fuzzers found

/// The harness itself: a case that fails, panics or overruns fails, and after an overrun the
/// property's later cases are skipped rather than run beside the runaway.
#[test]
fn the_harness_catches_failures_panics_and_overruns() {
    let fails = |r: Result<(), TestCaseError>, what: &str| {
        assert!(matches!(&r, Err(TestCaseError::Fail(m)) if m.message().contains(what)), "{r:?}");
    };
    fails(bounded(|| Err("no".into())), "no");
    fails(bounded(|| panic!("boom")), "panicked: boom");
    assert!(bounded(|| Ok(())).is_ok());
    let slow = || {
        std::thread::sleep(Duration::from_millis(400));
        Ok(())
    };
    fails(bounded_by(Duration::from_millis(20), slow), "took more than 20ms");
    assert!(matches!(bounded(|| Ok(())), Err(TestCaseError::Reject(_))));
}

/// Found by `an_edited_flow_loads_or_is_refused` (a value of 141,364 `{`): YAML flow
/// collections nested deep take the parser time quadratic in the depth (20,000 take 1.8 s in a
/// debug build, 40,000 take 9 s), well inside the loader's size bound.
#[test]
fn a_deeply_nested_flow_is_loaded_or_refused_in_bounded_time() {
    let deep = format!("flow: {}\n", "{".repeat(100_000));
    bounded(move || check_flow(&deep, &Params::new())).unwrap();
}

/// The same for a script file (found by `any_script_file_parses_or_is_refused`).
#[test]
fn a_deeply_nested_script_file_is_parsed_or_refused_in_bounded_time() {
    let deep = format!("flow: f\nscripts: {}\n", "[".repeat(100_000));
    bounded(move || check_scripts(&deep)).unwrap();
}

/// Found by `any_script_runs_or_fails_with_a_reason`: a wait longer than the clock counts
/// panicked (`attempt to multiply with overflow`) instead of failing the script.
#[test]
fn a_wait_longer_than_the_clock_fails_the_script() {
    let source = "flow: gmis-mail-trouble\nscripts:\n  - name: s0\n    steps:\n      - wait_hours: \"5124095576031\"\n";
    let file = ScriptFile::parse(source, ORIGIN).unwrap();
    let mut coverage = Coverage::new(&GMIS);
    let failure = run_script(&GMIS, &file.scripts[0], &mut coverage).unwrap_err();
    assert_eq!(failure.step, 1);
    assert!(failure.message.contains("5124095576031 hours is too long"), "{failure}");
}
