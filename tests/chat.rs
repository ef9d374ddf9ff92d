//! `flowbot chat` as a process: every root-to-ending path of the G-MIS flow, typed in.

use flowbot_core::{Conversation, Flow, Input, NodeKind, Timestamp};
use flowbot_tests::{flowbot, gmis, run, run_with_input, stdout};

/// What each ending must say, from `shared/docs/seed-reading.md` ("What each ending must say").
fn must_say(ending: &str) -> &'static [&'static str] {
    match ending {
        "done" => &["G-MIS利用案内メールに記載されるURLから", "「パスワード設定」を行って"],
        "m1" => &[
            "対応方法1",
            "ご利用中のメールソフトウェアにより",
            "メールサーバからメールが再送されます",
            "G-MIS利用案内メールの再送はできません",
            "都道府県窓口に「ユーザ名（ログインID）」をご確認",
            "https://www.med-login.mhlw.go.jp/",
            "「パスワードをお忘れですか？」",
            "パスワードリセット",
        ],
        "m2" => &[
            "対応方法2",
            "「受信トレイ」など安全なフォルダに移動",
            "メールに記載のURLにアクセスする",
            "パスワード設定用のURLにアクセスし、パスワード設定を実施",
            "info@g-mis.net",
            "「安全なアドレス」",
            "【Outlookの場合の例】",
            "右クリック",
            "「迷惑メール(J)」→「迷惑メールのオプション(O)」",
            "「信頼できる差出人のリスト」",
            "「追加(D)」",
            "「適用(A)」",
        ],
        "m3_reapply" => &[
            "対応方法3",
            "「不達」",
            "新しいメールアドレスで「新規ユーザ登録申請」",
            "https://www.g-mis.mhlw.go.jp/user-Registration-Form",
        ],
        "m3_change_self" | "m3_noperm_self" => &[
            "対応方法3",
            "メールアドレスの変更依頼",
            "報告機関名",
            "機関コード",
            "機関コードが分からない場合、都道府県で調べます",
            "変更前メールアドレス",
            "変更後メールアドレス",
            "約２週間程度",
            "「ユーザ名（ログインID）」をお知らせします",
            "https://www.med-login.mhlw.go.jp/",
            "「パスワードをお忘れですか？」",
            "パスワードリセット",
        ],
        "m4" => &[
            "対応方法4",
            "「このサイトにアクセスできません」",
            "ブラウザのキャッシュが溜まっている",
            "「キャッシュクリア」",
            "【Edgeの場合の例】",
            "「設定」→「プライバシー、検索、サービス」",
            "「閲覧データのクリア」→「クリアするデータの選択」",
            "サイトにフィルターがかかっている",
            "情報システム管理者",
            "https://www.g-mis.mhlw.go.jp/",
            "メンテナンス中",
            "しばらくお待ちいただいてから",
        ],
        "m5_reapply" => &[
            "対応方法5",
            "「新規ユーザ登録申請」を改めて実施する必要があります",
            "https://www.g-mis.mhlw.go.jp/user-Registration-Form",
        ],
        "existing" => &[
            "既存アカウント",
            "【厚生労働省G-MIS事務局】報告機関内でのG-MISご利用者の確認依頼",
            "info@g-mis.net",
            "既存アカウントのユーザ名（ログインID）でログインできるか",
            "代理申請の場合、メール③は配信されません",
            "都度個別にご連絡します",
            "メール通知されません",
            "「医療機能情報提供制度」ボタン",
            "各種報告ボタン",
        ],
        other => panic!("no expectations for ending `{other}`: add them from seed-reading.md"),
    }
}

/// Every path from the first question to an ending, as the labels typed and the ending reached.
fn paths(flow: &Flow) -> Vec<(Vec<String>, String)> {
    flow.paths()
        .into_iter()
        .map(|path| {
            let (mut conv, _) = Conversation::start(flow, None, Timestamp(0));
            let mut labels = Vec::new();
            for choice in path {
                let NodeKind::Question(q) = flow.node(conv.node()).kind() else {
                    panic!("not a question")
                };
                let label = q.choices()[usize::from(choice)].label();
                conv.step(flow, Input::Text(label), Timestamp(0));
                labels.push(label.to_owned());
            }
            (labels, flow.node(conv.node()).id().to_owned())
        })
        .collect()
}

/// The part of a transcript after the last typed line: what the bot said last.
fn last_reply(transcript: &str) -> &str {
    transcript.rfind("\n> ").map_or(transcript, |i| &transcript[i..])
}

#[test]
fn every_path_typed_into_chat_reaches_its_ending_and_says_what_it_must() {
    let flow = gmis();
    let all = paths(&flow);
    assert_eq!(all.len(), 25, "root-to-ending paths of the G-MIS tree");
    let endings: std::collections::BTreeSet<_> = all.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(endings.len(), 9, "{endings:?}");
    for (labels, ending) in &all {
        let input = labels.join("\n") + "\n";
        let out = run_with_input(&["chat"], &input);
        assert!(out.status.success(), "{labels:?}: {}", String::from_utf8_lossy(&out.stderr));
        let transcript = stdout(&out);
        let last = last_reply(&transcript);
        let node = flow.find(ending).map(|ix| flow.node(ix)).unwrap();
        assert!(last.contains(node.title()), "{labels:?} should end at {ending}; got:\n{last}");
        for phrase in must_say(ending) {
            assert!(
                last.contains(phrase),
                "{ending} via {labels:?} does not say `{phrase}`:\n{last}"
            );
        }
        assert!(last.contains("[最初から] /restart"), "{last}");
        assert!(!transcript.contains(".rest/"), "a garbled address leaked");
        assert!(!transcript.contains("! "), "no notice expected on a clean path:\n{transcript}");
    }
}

#[test]
fn the_scripted_example_from_the_issue() {
    let out = run_with_input(&["chat"], "届いている\n届いている\n");
    assert!(out.status.success());
    let transcript = stdout(&out);
    assert!(
        transcript.starts_with("アカウント発行通知に係るトラブル対処方法について"),
        "{transcript}"
    );
    assert!(transcript.contains("（★）メール送信元：G-MIS事務局〈info@g-mis.net〉"));
    assert!(
        last_reply(&transcript).contains("届いたメールを見ることはできますか？"),
        "{transcript}"
    );
    assert!(
        transcript
            .contains("  1. メールを見ることができた\n  2. 閲覧権限が無く見ることができない\n")
    );
}

#[test]
fn numbers_commands_and_misses_in_chat() {
    let out =
        run_with_input(&["chat"], "2\n２\n/back\n/restart\nなに\nなに\nなに\n/help\n/nosuch\n");
    let t = stdout(&out);
    assert!(out.status.success());
    assert!(t.contains("! 選択肢の番号（1、2…）か、ボタンの文言を入力してください。"), "{t}");
    assert!(t.contains("! うまく進めない場合は、都道府県の窓口にお問い合わせください。"), "{t}");
    assert!(t.contains("! そのコマンドは使えません。"), "{t}");
    assert!(last_reply(&t).contains("「事前確認メール（★）」は届いていますか？"), "{t}");
}

#[test]
fn entry_option_and_embedded_flow_without_any_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowbot_in(dir.path(), &["chat", "--entry", "taiou5"], "まだ確認していない\n");
    let t = stdout(&out);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.starts_with("対応方法5（メールが届いていない場合）"), "{t}");
    assert!(last_reply(&t).contains("確認が済みましたら"), "{t}");

    let out = flowbot_in(dir.path(), &["chat", "--entry", "nosuch"], "");
    assert!(
        stdout(&out).starts_with("! 指定された開始位置が見つからないため、最初から案内します。")
    );
}

#[test]
fn a_prefecture_note_comes_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("flowbot.toml");
    std::fs::write(
        &config,
        "[params]\ncause3_note = \"←福島県の場合、このケースは該当ありません。\"\n",
    )
    .unwrap();
    let input = "届いていない\n空き容量は十分にある\n迷惑メールフォルダにもメールがない\nない\n";
    let with = flowbot_in(dir.path(), &["--config", "flowbot.toml", "chat"], input);
    assert!(
        stdout(&with).contains(
            "機関コードを誤って登録してしまった←福島県の場合、このケースは該当ありません。"
        )
    );
    let without = flowbot_in(dir.path(), &["chat"], input);
    let t = stdout(&without);
    assert!(t.contains("機関コードを誤って登録してしまった\n"), "{t}");
    assert!(!t.contains("福島"), "{t}");
}

#[test]
fn invalid_utf8_and_huge_lines_do_not_break_the_chat() {
    let mut input = b"\xff\xfe\x00\n".to_vec();
    input.extend(std::iter::repeat_n(b'a', 1 << 20));
    input.extend(b"\n2\n");
    let out = run_bytes(&["chat"], &input);
    assert!(out.status.success());
    assert!(last_reply(&stdout(&out)).contains("「G-MIS利用案内メール（★）」は届いていますか？"));
}

#[test]
fn a_broken_flow_file_is_refused_before_chatting() {
    let out = flowbot().args(["chat", "--flow", "tests/data/broken-flow.yaml"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("9 problems") && err.contains("broken-flow.yaml:41: node `orphan`"),
        "{err}"
    );
}

fn flowbot_in(dir: &std::path::Path, args: &[&str], input: &str) -> std::process::Output {
    let mut cmd = flowbot();
    cmd.current_dir(dir).args(args);
    run(cmd, input.as_bytes())
}

fn run_bytes(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut cmd = flowbot();
    cmd.args(args);
    run(cmd, input)
}

/// `flowbot chat --user ID` continues across runs; `flowbot stats` shows where people went.
#[test]
fn chat_with_a_user_continues_across_runs_and_stats_show_the_endings() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bot.sqlite").display());
    let chat = |user: &str, input: &str| {
        let out = run_with_input(&["chat", "--user", user, "--database-url", &url], input);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        stdout(&out)
    };
    let first = chat("alice", "届いている\n");
    assert!(last_reply(&first).contains("「G-MIS利用案内メール（★）」は届いていますか？"));
    // A new run shows the question alice was on, not the greeting.
    let second = chat("alice", "");
    assert!(second.starts_with("「G-MIS利用案内メール（★）」は届いていますか？"), "{second}");
    let third = chat("alice", "届いている\nメールを見ることができた\nアクセスできた\n");
    assert!(last_reply(&third).contains("「パスワード設定」を行ってください"), "{third}");
    let bob = chat("bob", "届いていない\n空き容量が不足している\n");
    assert!(
        bob.starts_with("アカウント発行通知に係るトラブル対処方法について"),
        "bob starts fresh"
    );
    chat("carol", "担当者が退職等で不在であり、不明\n");

    let out = flowbot().args(["stats", "--database-url", &url]).output().unwrap();
    let stats = stdout(&out);
    assert!(out.status.success(), "{stats}");
    assert!(stats.contains("(current): 3 conversations"), "{stats}");
    assert!(stats.contains("1  done  パスワード設定"), "{stats}");
    assert!(
        stats.contains("1  m1  対応方法1（メールボックスの空き容量が不足していた場合）"),
        "{stats}"
    );
    assert!(stats.contains("1  q1 [届いている -> q2]"), "{stats}");
    assert!(stats.contains("1  q1 [届いていない -> q3]"), "{stats}");
    assert!(stats.contains("1  m3_absent\n"), "carol stopped at 対応方法3: {stats}");

    let out = flowbot().args(["purge", "--database-url", &url]).output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("purged 0 expired conversations"), "{}", stdout(&out));
    assert!(
        chat("alice", "").contains("「パスワード設定」を行ってください"),
        "nothing recent purged"
    );
}

#[test]
fn the_default_store_is_a_file_under_the_state_directory() {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = flowbot();
    cmd.env("XDG_STATE_HOME", home.path()).args(["chat", "--user", "u"]);
    let out = run(cmd, "2\n".as_bytes());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(home.path().join("flowbot/flowbot.sqlite").is_file());
}

#[test]
fn a_bad_database_url_is_refused_without_echoing_the_password() {
    let out = flowbot()
        .args(["chat", "--user", "u", "--database-url", "mysql://me:s3cret@host/db"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unsupported database URL"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

/// The terminal's in-memory chat keeps nothing: its request shows no 受付番号 (no desk could
/// look one up); a stored conversation (`--user`) shows the one the store keeps.
#[test]
fn a_reference_is_shown_only_for_a_stored_request() {
    let answers = "「送信完了」だった\n変更依頼を入力する\n病院\nC-1\nold@example.jp\nnew@example.jp\n確定する\n";
    let out = flowbot_tests::run_with_input(&["chat", "--entry", "taiou3"], answers);
    let text = flowbot_tests::stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("【メールアドレスの変更依頼】\n報告機関名：病院"), "{text}");
    assert!(!text.contains("受付番号"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let args = ["chat", "--entry", "taiou3", "--user", "u1", "--database-url", &url];
    let out = flowbot_tests::run_with_input(&args, answers);
    let text = flowbot_tests::stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("【メールアドレスの変更依頼】\n受付番号："), "{text}");
}
