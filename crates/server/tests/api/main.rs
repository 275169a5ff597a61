//! The API suite: the real server over real HTTP, on SQLite by default and on
//! PostgreSQL when `ROLLCALL_TEST_POSTGRES_URL` is set.

mod helpers;

mod attendance;
mod audit;
mod auth;
mod backpressure;
mod camera_watchers;
mod cameras;
mod counts;
mod data_key;
mod disputes;
mod errors;
mod events;
mod evidence;
mod face;
mod face_index;
mod incidents;
mod liveness;
mod maintenance;
mod mobile;
mod operations;
mod rate_limits;
mod redis;
mod reports;
mod roles;
mod summary;
mod system;
mod trust;
mod users;
mod visitors;
mod webhooks;
mod worker_processes;
