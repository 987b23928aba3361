//! What the load driver needs besides its own loop: stand-ins for Slack and for a trace
//! collector that count what the stack sends them, latency summaries, the CPU time of the
//! processes under load, the event delivery lag of the measured requests, and the steady mixed
//! load of `--rate`.

pub mod cpu;
pub mod lag;
pub mod report;
pub mod sinks;
pub mod steady;
