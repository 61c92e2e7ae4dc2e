//! What the machine is and how busy it was: the numbers only mean something
//! next to these.

use std::fmt;
use std::time::Duration;

use crate::server::{clock_ticks_per_second, cpu_time};

pub fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    format!("{cpus} CPUs ({model}), {:.0} GB RAM", mem_kb as f64 / 1048576.0)
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// How fast this host is right now: one core's time for a fixed piece of
/// arithmetic, and for a fixed walk through memory larger than the caches
/// (random reads, each waiting for the last). Taken before and after each
/// mode. On a shared host both can move with the neighbours' load (a fixed
/// Python loop took anywhere from 150 to 620 ms on one idle machine within
/// an hour): only runs with similar probes compare.
pub struct SpeedProbe {
    arithmetic: Duration,
    memory: Duration,
}

impl SpeedProbe {
    pub fn take() -> Self {
        let start = std::time::Instant::now();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000_000 {
            x = xorshift(x);
        }
        std::hint::black_box(x);
        let arithmetic = start.elapsed();

        // One cycle through every slot of 64 MiB, in a random order (Sattolo's shuffle).
        const SLOTS: usize = 16 << 20;
        let mut next: Vec<u32> = (0..SLOTS as u32).collect();
        for i in (1..SLOTS).rev() {
            x = xorshift(x);
            next.swap(i, (x % i as u64) as usize);
        }
        let start = std::time::Instant::now();
        let mut at = 0u32;
        for _ in 0..2_000_000 {
            at = next[at as usize];
        }
        std::hint::black_box(at);
        SpeedProbe { arithmetic, memory: start.elapsed() }
    }
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

impl fmt::Display for SpeedProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arithmetic {:.0} ms, memory {:.0} ms",
            self.arithmetic.as_secs_f64() * 1e3,
            self.memory.as_secs_f64() * 1e3
        )
    }
}

/// CPU used so far: the whole machine, the servers, and this process.
pub struct CpuSnapshot {
    machine_busy: u64,
    servers: Duration,
    bench: Duration,
}

impl CpuSnapshot {
    pub fn take(server_pids: &[u32]) -> Self {
        CpuSnapshot {
            machine_busy: machine_busy_ticks(),
            servers: server_pids.iter().filter_map(|p| cpu_time(&p.to_string())).sum(),
            bench: cpu_time("self").unwrap_or_default(),
        }
    }

    /// CPU used since `before`, over `wall` seconds in which `requests` requests were answered.
    pub fn since(&self, before: &CpuSnapshot, wall: Duration, requests: u64) -> CpuUse {
        let machine = Duration::from_millis(
            self.machine_busy.saturating_sub(before.machine_busy) * 1000 / clock_ticks_per_second(),
        );
        let servers = self.servers.saturating_sub(before.servers);
        CpuUse { wall, requests, machine, servers, bench: self.bench.saturating_sub(before.bench) }
    }
}

/// Busy CPU time (all CPUs) from the first line of /proc/stat, in clock ticks.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return 0 };
    let ticks: Vec<u64> = cpu.split_whitespace().filter_map(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal ...: busy is everything but idle and iowait.
    ticks.iter().take(8).sum::<u64>() - ticks.get(3).copied().unwrap_or(0) - ticks.get(4).copied().unwrap_or(0)
}

pub struct CpuUse {
    wall: Duration,
    requests: u64,
    machine: Duration,
    servers: Duration,
    bench: Duration,
}

impl fmt::Display for CpuUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cores = |d: Duration| d.as_secs_f64() / self.wall.as_secs_f64().max(1e-9);
        let per_request = |d: Duration| d.as_secs_f64() * 1e6 / (self.requests.max(1) as f64);
        writeln!(
            f,
            "CPU during the run (cores busy): machine {:.2} (all processes, PostgreSQL and other users included), nts {:.2}, load generator {:.2}",
            cores(self.machine),
            cores(self.servers),
            cores(self.bench)
        )?;
        // Less sensitive to other users of the machine than throughput is.
        write!(
            f,
            "CPU per request answered: nts {:.1} µs, load generator {:.1} µs, machine {:.1} µs",
            per_request(self.servers),
            per_request(self.bench),
            per_request(self.machine)
        )
    }
}
