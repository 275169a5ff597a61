//! `rollcall demo-data`: synthetic people and attendance in a fresh database, the same for
//! the same seed, and never written twice into one database.

mod support;

use std::process::{Command, Output};

fn demo_data(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("demo-data")
        .args(args)
        .env_remove("ROLLCALL_DATABASE_URL")
        .env_remove("ROLLCALL_CONFIG")
        .env("ROLLCALL_DATA_DIR", data_dir)
        .output()
        .expect("rollcall runs")
}

/// (people, logs) from the command's report.
fn counts(output: &Output) -> (u64, u64) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let number_before = |word: &str| {
        let at = words.iter().position(|w| w.starts_with(word)).unwrap_or_else(|| panic!("{word} in {stdout}"));
        words[at - 1].parse::<u64>().unwrap()
    };
    (number_before("people"), number_before("attendance"))
}

#[test]
fn demo_data_fills_a_fresh_database_once_and_a_seed_repeats_it() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plan = ["--people", "40", "--days", "28", "--seed", "7"];
    let (people, logs) = counts(&demo_data(first.path(), &plan));
    assert_eq!(people, 40);
    // 20 working days, attendance rates of 0.7–0.99 (minus holidays), a quarter of the
    // days with a second arrival, and the odd weekend visit.
    assert!((400..=1300).contains(&logs), "{logs} logs");
    assert_eq!(counts(&demo_data(second.path(), &plan)), (40, logs), "the same seed, the same data");

    let again = demo_data(first.path(), &plan);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("demo data already"), "{again:?}");
    let refused = demo_data(second.path(), &["--people", "0"]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--people"));
}

/// `--faces` seals a template per person with the data key `serve` then uses: the server
/// starts with every demo person in its matching index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_people_with_faces_are_in_the_servers_index() {
    let dir = tempfile::tempdir().unwrap();
    // More than one page of the index load (2,000 templates), so the pages join up.
    let plan = ["--people", "2345", "--days", "1", "--faces"];
    assert_eq!(counts(&demo_data(&dir.path().join("data"), &plan)).0, 2345);
    let server = support::Server::start(dir.path(), &[]).await;
    let admin = support::admin(&server, &reqwest::Client::new()).await;
    let health = admin.get("/system/health/").await;
    assert_eq!(health["services"]["ai_workers"]["engine"]["enrolled"], 2345, "{health}");
}
