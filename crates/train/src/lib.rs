//! (being written)
pub mod demo;
