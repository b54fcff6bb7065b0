//! How the core starts a component's processes (the component itself, its
//! health, stop and role commands): with the environment the agent was
//! started with. The agent restarts itself with glibc allocator settings
//! of its own (`GLIBC_TUNABLES`, marked by [`ALLOCATOR_MARK`]); those are
//! not passed on to the element's software.

/// Set, with `GLIBC_TUNABLES`, by the agent that tuned its own allocator.
pub const ALLOCATOR_MARK: &str = "HALYARD_ALLOCATOR_TUNED";

/// A command for `prog`, without the agent's own allocator settings.
pub fn command(prog: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(prog);
    if std::env::var_os(ALLOCATOR_MARK).is_some() {
        c.env_remove("GLIBC_TUNABLES").env_remove(ALLOCATOR_MARK);
    }
    c
}
