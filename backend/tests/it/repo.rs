use std::time::Duration;

use halyard_backend::repo::Repository;
use serde_json::json;

#[tokio::test]
async fn contents_survive_a_restart_and_watchers_see_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("repo.db");
    let repo = Repository::open(&db).await.unwrap();
    let mut watch = repo.watch();
    repo.set("/sg/counter/max-restarts", 3).await.unwrap();
    repo.set("/sg/counter/probation", "60s").await.unwrap();
    repo.set("/sg/other/x", true).await.unwrap();
    assert_eq!(watch.recv().await.unwrap().key, "/sg/counter/max-restarts");
    repo.journal("state-changed", "counterd-a", &json!({"to": "primary"}))
        .await
        .unwrap();
    let v = repo.set("/sg/counter/max-restarts", 4).await.unwrap();
    assert_eq!(v, 2, "versions count writes");
    repo.close().await;
    drop(repo);

    let repo = Repository::open(&db).await.unwrap();
    assert_eq!(
        repo.get_as::<u32>("/sg/counter/max-restarts")
            .await
            .unwrap(),
        Some(4)
    );
    let keys: Vec<String> = repo
        .list("/sg/counter")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["/sg/counter/max-restarts", "/sg/counter/probation"]);
    assert_eq!(
        repo.journal_entries("state-changed").await.unwrap().len(),
        1
    );
    repo.delete("/sg/counter").await.unwrap();
    assert!(repo.list("/sg/counter").await.unwrap().is_empty());
    assert_eq!(
        repo.get_as::<bool>("/sg/other/x").await.unwrap(),
        Some(true)
    );
    // Bad keys are typed errors.
    assert!(repo.set("no-slash", 1).await.is_err());
    assert!(repo.get("/a//b").await.is_err());
}

#[tokio::test]
async fn a_crash_mid_write_leaves_the_old_value_or_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("repo.db");
    for round in 0..3 {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_repo-stress"))
            .arg(&db)
            .arg("/stress/value")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until it is writing, then kill it at an arbitrary moment.
        let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line),
        )
        .await
        .unwrap()
        .unwrap();
        tokio::time::sleep(Duration::from_millis(37 + round * 53)).await;
        child.start_kill().unwrap();
        child.wait().await.unwrap();

        let repo = Repository::open(&db).await.unwrap();
        let v = repo.get("/stress/value").await.unwrap().expect("a value");
        let n = v["n"].as_u64().unwrap();
        assert_eq!(
            v["blob"].as_str().unwrap(),
            format!("{n:020}").repeat(2000),
            "torn value"
        );
        // Both keys were written in one transaction: they agree.
        assert_eq!(
            repo.get_as::<u64>("/stress/value-n").await.unwrap(),
            Some(n)
        );
        repo.close().await;
    }
}
