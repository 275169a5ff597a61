//! Rollcall's server: the HTTP API, domain services, storage and background work.
