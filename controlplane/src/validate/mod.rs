//! VALIDATE: the checks every plan and every SQL statement pass before EXECUTE.

pub mod sql_guard;
