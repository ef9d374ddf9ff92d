//! The platform-neutral view of an outcome (`flowbot_core::View`): paragraphs, buttons sorted
//! into choices and navigation, the toast of a stale press, the answered mark.

use flowbot_core::{Action, Conversation, Input, Params, Part, Timestamp, View, load_flow};

const FLOW: &str = r#"
flow: demo
title: Demo
start: q
texts: { back: 戻る, restart: 最初から, stale: 古いボタンです。, no_match: 番号で答えてください。,
         contact: 窓口へどうぞ。, help: ボタンで答えてください。, cannot_go_back: 戻れません。,
         ended: 終了しました。, unknown_entry: 最初から始めます。, unknown_command: 使えません。,
         resume_question: 続きから再開しますか？, resume: 続きから, not_yours: 別の方のボタンです。,
         command_start: 始める, command_back: 戻る, command_restart: やり直す, command_help: 使い方 }
nodes:
  - id: q
    ask: 電源は入っていますか？
    note: 詳しくは https://example.com/help へ
    choices:
      - { label: はい, next: said }
      - { label: いいえ, next: off }
  - id: said
    say: 確認しました。
    next: ok
  - id: ok
    end: 窓口にご連絡ください。
  - id: off
    end: 電源を入れてください。
"#;

#[test]
fn a_view_sorts_paragraphs_buttons_toasts_and_marks() {
    let flow = load_flow(FLOW, "demo.yaml", &Params::new()).unwrap();
    let now = Timestamp(0);
    let (mut conv, start) = Conversation::start(&flow, None, now);
    let view = View::new(&start);
    let texts: Vec<&str> = view.paragraphs.iter().map(|p| &*p.text).collect();
    assert_eq!(texts, ["電源は入っていますか？", "詳しくは https://example.com/help へ"]);
    assert!(matches!(view.paragraphs[1].part, Part::Note));
    assert_eq!(view.paragraphs[1].segments().len(), 3);
    let prompt = view.prompt.as_ref().unwrap();
    let labels: Vec<&str> = prompt.choices.iter().map(|b| b.label).collect();
    assert_eq!(labels, ["はい", "いいえ"]);
    assert!(prompt.nav.is_empty() && prompt.input.is_none() && !prompt.ending);
    let yes = prompt.choices[0].token.to_string();

    let moved = conv.step(&flow, Input::Press(&yes), now);
    let view = View::of(&flow, &moved, Some(&yes));
    assert_eq!(view.toast, None);
    let answered = view.answered.as_ref().unwrap();
    assert_eq!(answered.asked, "電源は入っていますか？\n\n詳しくは https://example.com/help へ");
    assert_eq!(answered.label, "はい");
    assert!(!answered.keep_shown);
    let texts: Vec<&str> = view.paragraphs.iter().map(|p| &*p.text).collect();
    assert_eq!(texts, ["確認しました。", "窓口にご連絡ください。"]);
    let prompt = view.prompt.as_ref().unwrap();
    assert!(prompt.ending && prompt.choices.is_empty());
    let nav: Vec<Action> = prompt.nav.iter().map(|b| b.token.action).collect();
    assert_eq!(nav, [Action::Back, Action::Restart]);

    // The same button again: nothing changed, the notice is the toast, nothing is marked.
    let again = conv.step(&flow, Input::Press(&yes), now);
    let view = View::of(&flow, &again, Some(&yes));
    assert_eq!(view.toast, Some("古いボタンです。"));
    assert!(view.answered.is_none());
    assert_eq!(View::foreign_toast(&flow), "別の方のボタンです。");
}
