//! The HTTP face: XML/JSON API, the operator web console and Prometheus
//! metrics over the information-model port.
//!
//! - `/api/v1`: the containment tree, objects by persistent name, class
//!   listings with scope and attribute filters, alarms and their summary,
//!   operations as jobs, events as server-sent events. XML by default,
//!   described by an XML Schema generated from the cluster schema
//!   (`/api/v1/schema.xsd`); JSON when the client asks for it.
//! - `/`: the operator console (embedded assets, live through SSE).
//! - `/metrics`: OpenMetrics text from `prometheus-client`, families
//!   generated from the schema's metric metadata.
//!
//! The agent builds an [`HttpConfig`], calls [`HttpServer::bind`] with its
//! information model and runs the server until shutdown.

pub mod auth;
pub mod body;
pub mod client;
pub mod config;
pub mod error;
pub mod exposition;
pub mod metrics;
pub mod repr;
pub mod xml;

mod api;
mod conn;
mod console;
mod serve;
mod server;
mod state;
pub mod tls;
mod xsd;

pub use config::{HttpConfig, Limits, Role, TlsConfig, UserConfig};
pub use error::{ApiError, HttpError, status_of};
pub use prometheus_client::registry::Registry;
pub use server::HttpServer;
