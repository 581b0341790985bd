//! The PostgreSQL backend: the server (a URL, or the embedded cluster seedbed starts), database
//! administration (create, clone from a sealed template, drop, markers), coordination (advisory
//! locks under one key scheme), introspection from `pg_catalog`, and the cleaner.

pub mod server;
internal!(admin, clean, coord, journal, marker);
mod introspect;
