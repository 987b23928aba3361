//! What the load driver needs besides its own loop: stand-ins for Slack and for a trace
//! collector that count what the stack sends them, and latency summaries.

pub mod report;
pub mod sinks;
