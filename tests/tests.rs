//! The workspace's integration tests, compiled into one binary.

mod chat;
mod check;
mod delivery;
mod discord;
mod engine;
mod handoff;
mod link;
mod process;
mod render;
mod scripts;
mod split;
mod store;
mod telegram;
mod telegram_fake;
mod view;
mod web;
mod worker;
