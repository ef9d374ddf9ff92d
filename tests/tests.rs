//! The workspace's integration tests, compiled into one binary.

mod chat;
mod check;
mod discord;
mod engine;
mod handoff;
mod link;
mod process;
mod render;
mod scripts;
mod store;
mod telegram;
mod telegram_fake;
mod web;
