//! Serves the demo element: `cargo run -p halyard-http --example demo [addr]`.
//! Anonymous reads; user `admin` / password `admin` (role admin) and the
//! bearer token `demo-operator-token-0001` (role operator) for writes.

use std::sync::Arc;

use halyard_cluster_model::memory::demo_element;
use halyard_http::{HttpConfig, HttpServer, Role, UserConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()?;
    let config = HttpConfig {
        listen: vec![addr],
        users: vec![
            UserConfig {
                name: "admin".into(),
                password: Some("admin".into()),
                tokens: vec![],
                role: Role::Admin,
            },
            UserConfig {
                name: "operator".into(),
                password: None,
                tokens: vec!["demo-operator-token-0001".into()],
                role: Role::Operator,
            },
        ],
        allow_anonymous_read: true,
        ..HttpConfig::default()
    };
    let server = HttpServer::bind(config, Arc::new(demo_element()))?;
    println!("console: http://{}/", server.local_addrs()[0]);
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
