//! Who may call what, in one layer in front of every RPC: the credential (a bearer JWT) becomes
//! the caller context, and [`roles::RPC_ROLES`] says which role each RPC needs. No service
//! handler checks credentials itself.

pub mod jwt;
mod layer;
pub mod roles;

pub use layer::{Auth, AuthLayer};
