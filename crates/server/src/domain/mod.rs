//! Use cases and policies: who may log in, what a valid user is, what gets audited.
//! No HTTP types here.

pub mod attendance;
pub mod attendance_counts;
pub mod audit;
pub mod auth;
pub mod calendar;
pub mod cameras;
pub mod demo;
pub mod disputes;
pub mod evidence;
pub mod face;
pub mod incidents;
pub mod liveness;
pub mod maintenance;
pub mod patterns;
pub mod report;
pub mod sites;
pub mod summary;
pub mod users;
pub mod visitors;
