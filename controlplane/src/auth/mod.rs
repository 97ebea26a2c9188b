//! Who may call what, in one layer in front of every RPC: the credential (a bearer JWT or an
//! API key) becomes the caller context, and [`roles::RPC_ROLES`] says which role each RPC
//! needs. No service handler checks credentials itself.

pub mod api_keys;
pub mod jwt;
mod layer;
pub mod roles;

pub use layer::{Auth, AuthLayer};
