//! The workspace's integration tests, compiled into one binary.

mod bounds;
mod chat;
mod check;
mod delivery;
mod discord;
mod engine;
mod fuzz;
mod handoff;
mod link;
mod ops;
mod probe;
mod process;
mod reference;
mod render;
mod replicas;
mod scripts;
mod soak;
mod split;
mod store;
mod telegram;
mod telegram_fake;
mod view;
mod web;
mod web_secret;
mod worker;
