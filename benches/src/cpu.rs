//! CPU time, measured from outside: what a process and everything it started used, from
//! `/proc/<pid>/stat`. The same work costs nearly the same CPU whatever else the machine does,
//! where throughput moves by 20 % from run to run; so the load figures are CPU per request.
//!
//! A process's tree is the process and its live descendants, each counted with its own time
//! (`utime + stime`) and that of its reaped children (`cutime + cstime`): a Postgres backend that
//! exits during a run is still counted, through its parent. The difference of two samples is
//! the tree's CPU in between.

use std::collections::BTreeMap;
use std::time::Duration;

/// CPU seconds of the tree of each named process, at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample(BTreeMap<String, Duration>);

/// The processes to watch: a name and a pid for each.
#[derive(Debug, Clone, Default)]
pub struct Watched(Vec<(String, u32)>);

impl Watched {
    /// `NAME=PID`, as given on a command line.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (name, pid) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected NAME=PID"))?;
        let pid = pid
            .parse()
            .map_err(|_| format!("{spec:?}: {pid:?} is not a pid"))?;
        self.0.push((name.to_owned(), pid));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every watched tree's CPU now, and as `client` this process's own with the commands it
    /// ran (the load driver, or the command `cpu-of` measures).
    pub fn sample(&self) -> Sample {
        let processes = processes();
        let mut sample: BTreeMap<String, Duration> = self
            .0
            .iter()
            .map(|(name, pid)| (name.clone(), tree(&processes, *pid)))
            .collect();
        sample.insert("client".to_owned(), own());
        Sample(sample)
    }
}

impl Sample {
    /// Each tree's CPU from `earlier` to this sample.
    pub fn since(&self, earlier: &Sample) -> BTreeMap<String, Duration> {
        self.0
            .iter()
            .map(|(name, now)| {
                let before = earlier.0.get(name).copied().unwrap_or_default();
                (name.clone(), now.saturating_sub(before))
            })
            .collect()
    }
}

/// One process of `/proc`: its parent, and its CPU with its reaped children's.
struct Process {
    parent: u32,
    cpu: Duration,
}

/// Clock ticks a second in `/proc`: Linux reports times in USER_HZ, which is 100 whatever the
/// kernel's own tick rate.
const TICKS: f64 = 100.0;

/// `/proc/<pid>/stat`: the fields after the command (which may hold spaces and parentheses).
fn stat(pid: u32) -> Option<Process> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    // fields[0] is the state (field 3): the parent is field 4, the times fields 14 to 17.
    let parent = fields.get(1)?.parse().ok()?;
    let cpu: u64 = fields
        .get(11..15)?
        .iter()
        .map(|field| field.parse::<u64>().unwrap_or(0))
        .sum();
    Some(Process {
        parent,
        cpu: Duration::from_secs_f64(cpu as f64 / TICKS),
    })
}

fn processes() -> BTreeMap<u32, Process> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .collect()
}

/// The CPU of `root` and its live descendants.
fn tree(processes: &BTreeMap<u32, Process>, root: u32) -> Duration {
    let mut total = Duration::ZERO;
    let mut pending = vec![root];
    while let Some(pid) = pending.pop() {
        if let Some(process) = processes.get(&pid) {
            total += process.cpu;
        }
        pending.extend(
            processes
                .iter()
                .filter(|(_, process)| process.parent == pid)
                .map(|(child, _)| *child),
        );
    }
    total
}

/// This process's CPU, and that of the children it waited for (a command it ran).
fn own() -> Duration {
    stat(std::process::id())
        .map(|process| process.cpu)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_child_is_counted_in_its_parents_tree_while_it_runs_and_after_it_exits() {
        let mut watched = Watched::default();
        watched.add(&format!("me={}", std::process::id())).unwrap();
        assert!(watched.add("nonsense").is_err());
        let before = watched.sample();
        // A child that spins until it has used a quarter of a second of CPU (its own utime and
        // stime, in ticks; not of wall time, which a busy machine would not give it all of),
        // then exits and is reaped.
        let status = std::process::Command::new("bash")
            .args([
                "-c",
                "while read -ra f < /proc/$$/stat; (( f[13] + f[14] < 25 )); do :; done",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        let spent = watched.sample().since(&before);
        assert!(
            spent["me"] >= Duration::from_millis(150),
            "the reaped child's CPU is missing: {spent:?}"
        );
        assert!(spent["client"] >= Duration::from_millis(150), "{spent:?}");
    }
}
