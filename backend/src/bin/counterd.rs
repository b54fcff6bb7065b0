//! counterd: the example HA-aware daemon (see `halyard_backend::counterd`).

#[tokio::main(flavor = "current_thread")]
async fn main() {
    if let Err(e) = halyard_backend::counterd::run().await {
        eprintln!("counterd: {e}");
        std::process::exit(1);
    }
}
