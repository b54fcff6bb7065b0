//! repo-stress: writes to a repository as fast as it can, forever.
//! Tests kill it with SIGKILL mid-write and check that the repository holds
//! the previous value or the new one, never a torn one.
//!
//! Usage: repo-stress <database> <key>

use halyard_backend::repo::Repository;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(key)) = (args.next(), args.next()) else {
        eprintln!("usage: repo-stress <database> <key>");
        std::process::exit(2);
    };
    let repo = Repository::open(std::path::Path::new(&db)).await?;
    for n in 0u64.. {
        // Large values make a torn write likely if writes were not atomic.
        let blob = format!("{n:020}").repeat(2000);
        repo.apply(vec![
            (
                key.clone(),
                Some(serde_json::json!({ "n": n, "blob": blob })),
            ),
            (format!("{key}-n"), Some(serde_json::json!(n))),
        ])
        .await?;
        if n == 5 {
            println!("writing");
        }
    }
    Ok(())
}
