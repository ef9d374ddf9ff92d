//! The engine's conversation rules, driven through the public API of `flowbot-core`.

use flowbot_core::{
    Action, Conversation, Event, Flow, Input, NoticeKind, Outcome, Reply, Timestamp, Token,
    max_token_len,
};
use flowbot_tests::gmis;

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn at(flow: &Flow, conv: &Conversation) -> String {
    flow.node(conv.node()).id().to_owned()
}

/// The token of the button labelled `label` on the prompt an outcome shows.
fn token(outcome: &Outcome<'_>, label: &str) -> String {
    let prompt = outcome.prompt_shown().expect("a prompt");
    prompt
        .buttons()
        .find(|b| b.label == label)
        .unwrap_or_else(|| panic!("no button {label} at {}", prompt.node.id()))
        .token
        .to_string()
}

fn notices(outcome: &Outcome<'_>) -> Vec<NoticeKind> {
    outcome.notices().collect()
}

/// Types each line and returns where the conversation ends up.
fn typed(flow: &Flow, lines: &[&str]) -> (Conversation, String) {
    let (mut conv, _) = Conversation::start(flow, None, NOW);
    for line in lines {
        conv.step(flow, Input::Text(line), NOW);
    }
    let node = at(flow, &conv);
    (conv, node)
}

#[test]
fn start_shows_the_greeting_then_the_first_question_without_navigation() {
    let flow = gmis();
    let (conv, out) = Conversation::start(&flow, None, NOW);
    assert_eq!(at(&flow, &conv), "q1");
    assert!(
        matches!(out.replies[0], Reply::Say { text, .. } if text.contains("3週間") && text.contains("info@g-mis.net"))
    );
    let prompt = out.prompt_shown().unwrap();
    let labels: Vec<_> = prompt.buttons().map(|b| b.label).collect();
    assert_eq!(labels, ["届いていない", "届いている", "担当者が退職等で不在であり、不明"]);
    assert!(matches!(out.event, Some(Event::Started { .. })));
}

#[test]
fn later_questions_offer_back_and_restart() {
    let flow = gmis();
    let (mut conv, out) = Conversation::start(&flow, None, NOW);
    let out = conv.step(&flow, Input::Press(&token(&out, "届いている")), NOW);
    let actions: Vec<_> =
        out.prompt_shown().unwrap().buttons().map(|b| (b.label, b.token.action)).collect();
    assert_eq!(actions[3..], [("戻る", Action::Back), ("最初から", Action::Restart)]);
    for b in out.prompt_shown().unwrap().buttons() {
        assert!(b.token.to_string().len() <= max_token_len(b.token.node));
        assert!(b.token.to_string().len() <= 64);
    }
}

#[test]
fn a_press_on_an_old_message_changes_nothing() {
    let flow = gmis();
    let (mut conv, first) = Conversation::start(&flow, None, NOW);
    let old_no = token(&first, "届いていない");
    conv.step(&flow, Input::Press(&token(&first, "届いている")), NOW);
    let before = conv.clone();

    let out = conv.step(&flow, Input::Press(&old_no), NOW);
    assert_eq!(conv, before);
    assert!(!out.changed);
    assert_eq!(notices(&out), [NoticeKind::Stale]);
    assert_eq!(out.prompt_shown().unwrap().node.id(), "q2", "the current question is shown again");
}

#[test]
fn a_double_press_applies_once() {
    let flow = gmis();
    let (mut conv, first) = Conversation::start(&flow, None, NOW);
    let yes = token(&first, "届いている");
    let once = conv.step(&flow, Input::Press(&yes), NOW);
    assert!(once.changed);
    let after_once = conv.clone();
    let twice = conv.step(&flow, Input::Press(&yes), NOW);
    assert!(!twice.changed);
    assert_eq!(conv, after_once);
    assert_eq!(at(&flow, &conv), "q2");
}

#[test]
fn a_press_on_a_question_shown_again_after_going_back_is_stale() {
    let flow = gmis();
    let (mut conv, first) = Conversation::start(&flow, None, NOW);
    let q2 = conv.step(&flow, Input::Press(&token(&first, "届いている")), NOW);
    let old_q2_yes = token(&q2, "届いている");
    conv.step(&flow, Input::Back, NOW);
    conv.step(&flow, Input::Text("届いている"), NOW);
    assert_eq!(at(&flow, &conv), "q2");
    let out = conv.step(&flow, Input::Press(&old_q2_yes), NOW);
    assert_eq!(notices(&out), [NoticeKind::Stale], "same question, but an older visit");
    assert_eq!(at(&flow, &conv), "q2");
}

#[test]
fn forged_tokens_are_refused_without_panic() {
    let flow = gmis();
    let (mut conv, first) = Conversation::start(&flow, None, NOW);
    let real = token(&first, "届いている");
    let before = conv.clone();
    let mut forged: Vec<String> = vec![
        String::new(),
        ":".into(),
        "1:q1".into(),
        "1:q1:0:0".into(),
        "1:q1:9".into(),
        "1:q1:b".into(),
        "1:q2:0".into(),
        "1:nosuch:0".into(),
        "18446744073709551616:q1:0".into(),
        "1:q1:\u{0}".into(),
        "1:ｑ1:0".into(),
        "x".repeat(100_000),
        real.replace(':', "："),
        format!("{real} "),
        format!(" {real}"),
    ];
    // Every prefix and every single-byte corruption of a real token.
    for i in 0..real.len() {
        forged.push(real[..i].to_owned());
        let mut bytes = real.clone().into_bytes();
        for b in [b'0', b'9', b':', b'b', b'r', 0xff] {
            bytes[i] = b;
            forged.push(String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    let buttons: Vec<String> =
        first.prompt_shown().unwrap().buttons().map(|b| b.token.to_string()).collect();
    let mut refused = 0;
    for t in &forged {
        // A corruption can spell a real button (`…:q1:0` is 届いていない): that press is fair.
        let real_button =
            Token::parse(t).is_some_and(|p| buttons.iter().any(|b| Token::parse(b) == Some(p)));
        let out = conv.step(&flow, Input::Press(t), NOW);
        if real_button {
            assert!(out.changed, "{t:?}");
            conv = before.clone();
            continue;
        }
        refused += 1;
        assert!(!out.changed, "{t:?}");
        assert_eq!(notices(&out), [NoticeKind::Stale], "{t:?}");
        assert_eq!(conv, before, "{t:?}");
    }
    assert!(refused > 50, "{refused}");
}

#[test]
fn typed_answers_by_number_label_and_yes_no() {
    let flow = gmis();
    assert_eq!(typed(&flow, &["2"]).1, "q2");
    assert_eq!(typed(&flow, &["２"]).1, "q2", "full-width digit");
    assert_eq!(typed(&flow, &["2."]).1, "q2");
    assert_eq!(typed(&flow, &["　届いている "]).1, "q2", "label, whitespace trimmed");
    assert_eq!(typed(&flow, &["はい"]).1, "q2");
    assert_eq!(typed(&flow, &["YES"]).1, "q2");
    assert_eq!(typed(&flow, &["ｙｅｓ"]).1, "q2", "full-width latin");
    assert_eq!(typed(&flow, &["いいえ"]).1, "q3");
    assert_eq!(typed(&flow, &["no"]).1, "q3");
    assert_eq!(
        typed(&flow, &["はい", "はい", "はい", "ｱｸｾｽできた"]).1,
        "done",
        "half-width katakana label"
    );
    assert_eq!(typed(&flow, &["4"]).1, "q1", "out of range");
    assert_eq!(typed(&flow, &["0"]).1, "q1");
    // Q3 marks no choice as yes or no: はい is not an answer there.
    let (_, node) = typed(&flow, &["いいえ", "はい"]);
    assert_eq!(node, "q3");
}

#[test]
fn unmatched_text_reasks_and_the_third_miss_offers_the_contact() {
    let flow = gmis();
    let (mut conv, _) = Conversation::start(&flow, None, NOW);
    let first = conv.step(&flow, Input::Text("わかりません"), NOW);
    assert_eq!(notices(&first), [NoticeKind::NoMatch]);
    assert_eq!(first.prompt_shown().unwrap().node.id(), "q1");
    let second = conv.step(&flow, Input::Text("？"), NOW);
    assert_eq!(notices(&second), [NoticeKind::NoMatch]);
    let third = conv.step(&flow, Input::Text("help me"), NOW);
    assert_eq!(notices(&third), [NoticeKind::NoMatch, NoticeKind::Contact]);
    assert!(
        third
            .replies
            .iter()
            .any(|r| matches!(r, Reply::Notice { text, .. } if text.contains("都道府県の窓口")))
    );
    // An answer resets the count.
    conv.step(&flow, Input::Text("1"), NOW);
    let again = conv.step(&flow, Input::Text("???"), NOW);
    assert_eq!(notices(&again), [NoticeKind::NoMatch]);
}

#[test]
fn oversized_and_odd_text_is_a_miss_not_a_crash() {
    let flow = gmis();
    for text in ["", " ", "\u{0}", "\u{202e}届いている", &"届".repeat(100_000), "🙂", "\r\n"]
    {
        let (mut conv, _) = Conversation::start(&flow, None, NOW);
        let out = conv.step(&flow, Input::Text(text), NOW);
        assert_eq!(at(&flow, &conv), "q1", "{text:?}");
        assert!(out.prompt_shown().is_some());
    }
}

#[test]
fn back_walks_the_path_and_restart_begins_again() {
    let flow = gmis();
    let (mut conv, node) = typed(&flow, &["届いていない", "空き容量は十分にある"]);
    assert_eq!(node, "q4");
    assert_eq!(conv.path().len(), 2);
    let out = conv.step(&flow, Input::Back, NOW);
    assert_eq!(at(&flow, &conv), "q3");
    assert!(matches!(out.event, Some(Event::Back { .. })));
    conv.step(&flow, Input::Text("/back"), NOW);
    assert_eq!(at(&flow, &conv), "q1");
    let out = conv.step(&flow, Input::Text("戻る"), NOW);
    assert_eq!(notices(&out), [NoticeKind::CannotGoBack]);
    assert!(!out.changed);

    let (mut conv, _) = typed(&flow, &["1", "2", "2"]);
    assert_eq!(at(&flow, &conv), "q5");
    let out = conv.step(&flow, Input::Text("最初から"), NOW);
    assert_eq!(at(&flow, &conv), "q1");
    assert!(conv.path().is_empty());
    assert!(matches!(out.replies[0], Reply::Say { .. }), "the greeting again");
}

#[test]
fn navigation_buttons_work_once() {
    let flow = gmis();
    let (mut conv, first) = Conversation::start(&flow, None, NOW);
    let q2 = conv.step(&flow, Input::Press(&token(&first, "届いている")), NOW);
    let back = token(&q2, "戻る");
    conv.step(&flow, Input::Press(&back), NOW);
    assert_eq!(at(&flow, &conv), "q1");
    let again = conv.step(&flow, Input::Press(&back), NOW);
    assert_eq!(notices(&again), [NoticeKind::Stale]);
    assert_eq!(at(&flow, &conv), "q1");
}

#[test]
fn endings_answer_typed_text_with_ended_and_keep_their_buttons() {
    let flow = gmis();
    let (mut conv, node) = typed(&flow, &["1", "1", "1"]);
    assert_eq!(node, "m1");
    assert!(conv.is_finished(&flow));
    let out = conv.step(&flow, Input::Text("1"), NOW);
    assert_eq!(notices(&out), [NoticeKind::Ended]);
    assert!(!out.changed);
    let labels: Vec<_> = out.prompt_shown().unwrap().buttons().map(|b| b.label).collect();
    assert_eq!(labels, ["戻る", "最初から"]);
}

#[test]
fn entries_open_named_points_only() {
    let flow = gmis();
    let (conv, out) = Conversation::start(&flow, Some("taiou3"), NOW);
    assert_eq!(at(&flow, &conv), "m3_absent");
    assert!(notices(&out).is_empty());
    let prompt = out.prompt_shown().unwrap();
    assert!(!prompt.back, "nothing to go back to");
    assert!(prompt.restart, "the beginning is elsewhere");

    // A node id that is not an entry name is not accepted from outside.
    let (conv, out) = Conversation::start(&flow, Some("m3_change"), NOW);
    assert_eq!(at(&flow, &conv), "q1");
    assert_eq!(notices(&out), [NoticeKind::UnknownEntry]);

    let (mut conv, _) = typed(&flow, &["1", "1"]);
    conv.step(&flow, Input::Text("/start taiou5"), NOW);
    assert_eq!(at(&flow, &conv), "m5");
    assert!(conv.path().is_empty());
    conv.step(&flow, Input::Text("/start@gmis_bot q7"), NOW);
    assert_eq!(at(&flow, &conv), "q7");
}

#[test]
fn help_and_unknown_commands_change_nothing() {
    let flow = gmis();
    let (mut conv, _) = typed(&flow, &["2"]);
    let before = conv.clone();
    let help = conv.step(&flow, Input::Text("/help"), NOW);
    assert_eq!(notices(&help), [NoticeKind::Help, NoticeKind::Contact]);
    let unknown = conv.step(&flow, Input::Text("/frobnicate now"), NOW);
    assert_eq!(notices(&unknown), [NoticeKind::UnknownCommand]);
    assert_eq!(conv, before);
}

#[test]
fn events_record_the_edges_taken_and_time_comes_from_the_caller() {
    let flow = gmis();
    let (mut conv, first) = Conversation::start(&flow, None, Timestamp(5));
    let out = conv.step(&flow, Input::Press(&token(&first, "届いている")), Timestamp(9));
    let q1 = flow.find("q1").unwrap();
    let q2 = flow.find("q2").unwrap();
    assert_eq!(out.event, Some(Event::Answered { from: q1, choice: 1, to: q2 }));
    assert_eq!(conv.started_at(), Timestamp(5));
    assert_eq!(conv.updated_at(), Timestamp(9));
}

#[test]
fn the_same_inputs_give_the_same_conversation() {
    let flow = gmis();
    let lines = ["はい", "x", "2", "/back", "いいえ", "1", "/restart", "3", "まだ確認していない"];
    assert_eq!(typed(&flow, &lines).0, typed(&flow, &lines).0);
}

const DAY: u64 = 24 * 3_600_000;

#[test]
fn after_a_pause_a_returning_user_is_asked_whether_to_resume() {
    let flow = gmis();
    let (mut conv, first) = Conversation::start(&flow, None, NOW);
    let q2 = conv.step(&flow, Input::Press(&token(&first, "届いている")), NOW);
    let later = Timestamp(NOW.0 + DAY + 1);

    // Typing, or a plain /start (tapping the bot's link again), after a day asks first.
    for input in [Input::Text("こんにちは"), Input::Start { entry: None }, Input::Text("/start")]
    {
        let mut c = conv.clone();
        let out = c.step(&flow, input, later);
        let prompt = out.prompt_shown().unwrap();
        assert!(prompt.resume, "{input:?}");
        assert_eq!(prompt.text(), "前回の続きから再開しますか？ それとも最初からやり直しますか？");
        let labels: Vec<_> = prompt.buttons().map(|b| b.label).collect();
        assert_eq!(labels, ["続きから", "最初から"]);
        assert_eq!(at(&flow, &c), "q2", "nothing moved");

        // 続きから shows the question again; 1 does the same; 2 starts again.
        let mut resumed = c.clone();
        let out = resumed.step(&flow, Input::Press(&token(&out, "続きから")), later);
        assert_eq!(
            out.prompt_shown().unwrap().text(),
            "「G-MIS利用案内メール（★）」は届いていますか？"
        );
        assert!(matches!(out.event, Some(Event::Resumed { .. })));
        let mut by_number = c.clone();
        by_number.step(&flow, Input::Text("１"), later);
        assert!(!by_number.is_awaiting_resume());
        assert_eq!(at(&flow, &by_number), "q2");
        let mut again = c.clone();
        again.step(&flow, Input::Text("2"), later);
        assert_eq!(at(&flow, &again), "q1");
        assert!(again.path().is_empty());
        // The question's own buttons still answer it while the resume question is open.
        let mut direct = c.clone();
        direct.step(&flow, Input::Press(&token(&q2, "届いていない")), later);
        assert_eq!(at(&flow, &direct), "q3");
    }

    // A press of the question shown is an answer, not a reason to ask.
    let mut c = conv.clone();
    c.step(&flow, Input::Press(&token(&q2, "届いている")), later);
    assert_eq!(at(&flow, &c), "q6");
    // A named entry goes there.
    let mut c = conv.clone();
    c.step(&flow, Input::Text("/start taiou4"), later);
    assert_eq!(at(&flow, &c), "m4");
    // Within the pause nothing is asked; with the pause switched off, never.
    let mut c = conv.clone();
    assert_eq!(
        notices(&c.step(&flow, Input::Text("??"), Timestamp(NOW.0 + DAY - 1))),
        [NoticeKind::NoMatch]
    );
    let never = gmis().with_resume_after(None);
    let mut c = conv.clone();
    assert!(
        !c.step(&never, Input::Text("??"), Timestamp(NOW.0 + 400 * DAY))
            .prompt_shown()
            .unwrap()
            .resume
    );
}

#[test]
fn no_resume_question_at_the_beginning_or_at_an_ending() {
    let flow = gmis();
    let later = Timestamp(NOW.0 + 3 * DAY);
    let (mut fresh, _) = Conversation::start(&flow, None, NOW);
    assert_eq!(fresh.step(&flow, Input::Text("2"), later).prompt_shown().unwrap().node.id(), "q2");
    let (mut ended, _) = typed(&flow, &["1", "1", "1"]);
    let out = ended.step(&flow, Input::Text("hello"), later);
    assert_eq!(notices(&out), [NoticeKind::Ended]);
}

#[test]
fn a_snapshot_restores_the_same_conversation() {
    let flow = gmis();
    let (mut conv, _) = typed(&flow, &["1", "2", "x", "x"]);
    conv.step(&flow, Input::Text("?"), Timestamp(NOW.0 + 2 * DAY));
    let snapshot = conv.snapshot(&flow);
    assert_eq!(snapshot.node, "q4");
    assert_eq!(snapshot.path_text(), "q1:0 q3:1");
    assert_eq!(flowbot_core::Snapshot::parse_path(&snapshot.path_text()).unwrap(), snapshot.path);
    assert_eq!(Conversation::restore(&flow, &snapshot).unwrap(), conv);
    let mut broken = snapshot.clone();
    broken.node = "gone".into();
    assert!(Conversation::restore(&flow, &broken).is_err());
    broken = snapshot;
    broken.path.push(("q1".into(), 7));
    assert!(Conversation::restore(&flow, &broken).is_err());
    assert!(flowbot_core::Snapshot::parse_path("q1:x").is_err());
}

/// A conversation at the address-change form's first field (報告機関名).
fn at_form(flow: &Flow) -> (Conversation, Outcome<'_>) {
    let (mut conv, out) = Conversation::start(flow, Some("taiou3-view"), NOW);
    let offer = token(&out, "変更依頼を入力する");
    let out = conv.step(flow, Input::Press(&offer), NOW);
    assert_eq!(at(flow, &conv), "m3_noperm_form");
    (conv, out)
}

fn input_token(outcome: &Outcome<'_>) -> String {
    outcome.prompt_shown().and_then(|p| p.input()).expect("a form field").0.token.to_string()
}

#[test]
fn form_buttons_only_act_at_their_own_step() {
    let flow = gmis();
    let (mut conv, first) = at_form(&flow);
    let field0 = input_token(&first);
    let rev = conv.entered();
    // Buttons the first field does not show: no 分からない (the name is required), no submit.
    for action in [
        Action::Unknown(0),
        Action::Unknown(1),
        Action::Submit,
        Action::Fix,
        Action::Field(1),
        Action::Choice(0),
    ] {
        let forged = Token { rev, node: "m3_noperm_form", action }.to_string();
        let before = conv.clone();
        let out = conv.step(&flow, Input::Press(&forged), NOW);
        assert!(!out.changed, "{forged}");
        assert_eq!(notices(&out), [NoticeKind::Stale], "{forged}");
        assert_eq!(conv, before);
    }
    // The input button itself changes nothing; its answer does.
    let out = conv.step(&flow, Input::Press(&field0), NOW);
    assert!(!out.changed);
    let out = conv.step(&flow, Input::Answer { token: &field0, text: " 病院Ａ " }, NOW);
    assert!(out.changed);
    assert_eq!(
        out.prompt_shown().unwrap().text(),
        flow.form_of(conv.node()).unwrap().fields()[1].ask()
    );
    // The first field's box is stale now: a second answer through it changes nothing.
    let before = conv.clone();
    let out = conv.step(&flow, Input::Answer { token: &field0, text: "病院B" }, NOW);
    assert_eq!((out.changed, notices(&out)), (false, vec![NoticeKind::Stale]));
    assert_eq!(conv, before);
    assert_eq!(
        conv.draft().unwrap().answers()[0],
        Some(flowbot_core::Answer::Given("病院A".into()))
    );
}

#[test]
fn form_answers_are_checked_and_odd_input_is_refused_without_panic() {
    let flow = gmis();
    let (mut conv, _) = at_form(&flow);
    conv.step(&flow, Input::Text("病院"), NOW);
    for bad in ["コード!", "1234567890123456789012"] {
        let out = conv.step(&flow, Input::Text(bad), NOW);
        assert_eq!(notices(&out), [NoticeKind::Invalid], "{bad}");
    }
    conv.step(&flow, Input::Text("分からない"), NOW);
    let huge = "ａ".repeat(100_000);
    for odd in [huge.as_str(), "\u{0}\u{7}", "　\t ", "a@b"] {
        let out = conv.step(&flow, Input::Text(odd), NOW);
        assert!(notices(&out).contains(&NoticeKind::Invalid), "{:?}", &odd[..odd.len().min(9)]);
    }
    let out = conv.step(&flow, Input::Text("ＯＬＤ＠ｅｘａｍｐｌｅ．ＪＰ"), NOW);
    assert!(notices(&out).is_empty());
    let answers = conv.draft().unwrap().answers();
    assert_eq!(answers[1], Some(flowbot_core::Answer::Unknown));
    assert_eq!(answers[2], Some(flowbot_core::Answer::Given("OLD@example.JP".into())));
}

#[test]
fn a_form_survives_a_snapshot_and_leaving_it_forgets_the_answers() {
    let flow = gmis();
    let (mut conv, _) = at_form(&flow);
    for line in ["病院\n本院", "分からない", "a@example.jp", "b@example.jp"] {
        conv.step(&flow, Input::Text(line), NOW);
    }
    let snapshot = conv.snapshot(&flow);
    assert!(snapshot.form.as_deref().is_some_and(|f| f.starts_with('c')), "{snapshot:?}");
    let restored = Conversation::restore(&flow, &snapshot).unwrap();
    assert_eq!(restored, conv);
    // A draft that does not fit starts the form again rather than failing.
    let mut broken = snapshot.clone();
    broken.form = Some("c\n=only one".into());
    let again = Conversation::restore(&flow, &broken).unwrap();
    assert_eq!(again.draft().unwrap().answers(), [None, None, None, None]);
    // Back to the first field and out of the form: the answers are gone from the state.
    for _ in 0..4 {
        conv.step(&flow, Input::Back, NOW);
    }
    assert_eq!(at(&flow, &conv), "m3_noperm_form");
    let out = conv.step(&flow, Input::Back, NOW);
    assert!(matches!(out.event, Some(Event::Back { .. })));
    assert_eq!(at(&flow, &conv), "m3_noperm");
    assert_eq!(conv.snapshot(&flow).form, None);
}

#[test]
fn submitting_hands_off_the_answers_and_the_path() {
    let flow = gmis();
    let (mut conv, out) = Conversation::start(&flow, None, NOW);
    let mut out = out;
    for label in
        ["届いている", "届いている", "閲覧権限が無く見ることができない", "変更依頼を入力する"]
    {
        let t = token(&out, label);
        out = conv.step(&flow, Input::Press(&t), NOW);
    }
    for line in ["〇〇病院", "0123456789", "old@example.jp", "new@example.jp"] {
        out = conv.step(&flow, Input::Text(line), NOW);
    }
    let submit = token(&out, "確定する");
    let out = conv.step(&flow, Input::Press(&submit), NOW);
    assert_eq!(at(&flow, &conv), "m3_noperm_sent");
    let from = flow.find("m3_noperm_form").unwrap();
    assert_eq!(out.event, Some(Event::Submitted { from, to: conv.node() }));
    assert!(matches!(out.replies[0], Reply::Handoff));
    let handoff = out.handoff.as_ref().expect("a hand-off");
    let s = &handoff.submission;
    assert_eq!(s.ending, "m3_noperm_sent");
    let values: Vec<_> = s.answers.iter().map(|a| a.value.clone().unwrap_or_default()).collect();
    assert_eq!(values, ["〇〇病院", "0123456789", "old@example.jp", "new@example.jp"]);
    let path: Vec<&str> = s.path.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(
        path,
        ["届いている", "届いている", "閲覧権限が無く見ることができない", "変更依頼を入力する"]
    );
    let text = handoff.text();
    assert!(text.contains(&format!("受付番号：{}", s.reference)), "{text}");
    assert!(text.contains("・メールの閲覧：閲覧権限が無く見ることができない"), "{text}");
    assert!(!s.delivered && handoff.message().starts_with("次の内容をコピーして"));
    assert_eq!(conv.snapshot(&flow).form, None, "the answers live in the request, not the state");
    // Pressing 確定する again is stale: one submission per confirmation.
    let again = conv.step(&flow, Input::Press(&submit), NOW);
    assert!(again.handoff.is_none() && !again.changed);
}
