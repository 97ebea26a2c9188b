//! Vendored demo and test data sets, embedded in the binary, and loaders that put them into
//! SQLite, PostgreSQL or MariaDB/MySQL.
//!
//! [`plant_ops`] is the demo; [`hospital_fm`] a second estate in another domain, loaded by a
//! plain CSV loader into SQLite. plant-ops' CSV files are the source of truth and are
//! loaded as they are: an empty field is SQL NULL, numbers are typed, timestamps follow the
//! backend's schema (ISO-8601 text in SQLite, TIMESTAMPTZ in PostgreSQL, DATETIME in UTC in
//! MariaDB). Bad data fails before the database is touched, with the table and CSV line.
//!
//! [`testing`] creates throw-away PostgreSQL/MariaDB databases (optionally loaded) for the
//! tests of this and other crates.

mod csv_sqlite;
mod error;
pub mod hospital_fm;
mod load;
pub mod plant_ops;
pub mod testing;

pub use error::DatasetError;
pub use load::{LoadReport, load_mysql, load_postgres, load_sqlite};
