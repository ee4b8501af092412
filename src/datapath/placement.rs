//! Where the threads run: which CPU each worker is pinned to and which CPUs the control threads
//! (VRRP, health checks, janitor, estimator, neighbour refresher, metrics, admin, the main
//! thread) share. Pure: [`place`] maps the process's allowed CPUs, `datapath.cpus` and the
//! number of workers to a [`Placement`]; start-up applies it.
//!
//! The default (`auto`) keeps the workers off CPU 0 whenever another CPU is allowed: CPU 0
//! carries most of the kernel's interrupt and softirq work (and, in the lab, the load
//! generator), and a worker sharing it loses about half its packets per second. Workers take the
//! CPUs round-robin; the control threads get what the workers leave, so a spinning worker never
//! competes with a health check or a VRRP advertisement.

use std::fmt::Write as _;

/// The outcome of [`place`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The CPU of each worker, in worker order.
    pub workers: Vec<usize>,
    /// The CPUs the control threads share, ascending; never empty.
    pub control: Vec<usize>,
}

/// Places `workers` workers and the control threads on the `allowed` CPUs (the process's
/// affinity set, ascending). `list` is `datapath.cpus` when it is a list (validated: non-empty,
/// no duplicates, every CPU allowed), `None` for `auto`.
///
/// - `auto`: the workers' CPUs are `allowed` less CPU 0 when more than one CPU is allowed,
///   otherwise the one allowed CPU;
/// - a list: the workers' CPUs are the list, in its order;
///
/// each worker takes the next of those CPUs, round-robin. The control threads get `allowed`
/// less the workers' CPUs (every listed CPU for a list; those the workers took for `auto`), or
/// every allowed CPU when that leaves none. `None` when there is no CPU at all (an empty
/// `allowed` or list; the kernel never reports an empty set).
pub fn place(allowed: &[usize], list: Option<&[usize]>, workers: usize) -> Option<Placement> {
    let pool: Vec<usize> = match list {
        Some(l) => l.to_vec(),
        None if allowed.len() > 1 => allowed.iter().copied().filter(|&c| c != 0).collect(),
        None => allowed.to_vec(),
    };
    if pool.is_empty() || allowed.is_empty() {
        return None;
    }
    let assigned: Vec<usize> = pool.iter().copied().cycle().take(workers).collect();
    let reserved = if list.is_some() { &pool } else { &assigned };
    let rest: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !reserved.contains(c))
        .collect();
    Some(Placement {
        workers: assigned,
        control: if rest.is_empty() {
            allowed.to_vec()
        } else {
            rest
        },
    })
}

impl Placement {
    /// The start-up log line: `Workers: queue 0 on CPU 1, queue 1 on CPU 1; control threads on
    /// CPU 0` (`queues[i]` is worker i's queue; `CPUs 0,2-3` for a set of several).
    pub fn describe(&self, queues: &[u32]) -> String {
        let workers: Vec<String> = queues
            .iter()
            .zip(&self.workers)
            .map(|(q, cpu)| format!("queue {q} on CPU {cpu}"))
            .collect();
        let plural = if self.control.len() == 1 { "" } else { "s" };
        format!(
            "Workers: {}; control threads on CPU{plural} {}",
            workers.join(", "),
            cpu_list(&self.control)
        )
    }
}

/// `cpus` in the kernel's list format (`cpuset(7)`): ascending, runs as ranges, `0-1,4`.
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let first = sorted[i];
        let mut last = first;
        while sorted.get(i + 1) == Some(&(last + 1)) {
            last += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        // Writing to a String cannot fail.
        let _ = if first == last {
            write!(out, "{first}")
        } else {
            write!(out, "{first}-{last}")
        };
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(workers: &[usize], control: &[usize]) -> Option<Placement> {
        Some(Placement {
            workers: workers.to_vec(),
            control: control.to_vec(),
        })
    }

    #[test]
    fn one_cpu_runs_everything() {
        assert_eq!(place(&[0], None, 1), p(&[0], &[0]));
        assert_eq!(place(&[0], None, 2), p(&[0, 0], &[0]));
        // Whatever that CPU is (taskset -c 1).
        assert_eq!(place(&[1], None, 1), p(&[1], &[1]));
    }

    #[test]
    fn two_cpus_keep_the_workers_off_cpu_0() {
        assert_eq!(place(&[0, 1], None, 1), p(&[1], &[0]));
        assert_eq!(place(&[0, 1], None, 2), p(&[1, 1], &[0]));
    }

    #[test]
    fn a_mask_without_cpu_0_spreads_workers_and_leaves_control_the_rest() {
        // systemd CPUAffinity=2 3
        assert_eq!(place(&[2, 3], None, 1), p(&[2], &[3]));
        // Every CPU has a worker: the control threads share them all.
        assert_eq!(place(&[2, 3], None, 2), p(&[2, 3], &[2, 3]));
        assert_eq!(place(&[0, 1, 2, 3], None, 2), p(&[1, 2], &[0, 3]));
    }

    #[test]
    fn an_explicit_list_is_honoured_in_its_order() {
        assert_eq!(place(&[0, 1], Some(&[0]), 1), p(&[0], &[1]));
        assert_eq!(place(&[0, 1, 2, 3], Some(&[3, 2]), 2), p(&[3, 2], &[0, 1]));
        // Every listed CPU is the workers', used or not.
        assert_eq!(place(&[0, 1, 2, 3], Some(&[2, 3]), 1), p(&[2], &[0, 1]));
        // A list of every allowed CPU leaves the control threads all of them.
        assert_eq!(place(&[0, 1], Some(&[0, 1]), 2), p(&[0, 1], &[0, 1]));
    }

    #[test]
    fn more_workers_than_cpus_take_them_round_robin() {
        assert_eq!(place(&[0, 1, 2], None, 5), p(&[1, 2, 1, 2, 1], &[0]));
        assert_eq!(place(&[0, 1, 2], Some(&[2, 0]), 3), p(&[2, 0, 2], &[1]));
    }

    #[test]
    fn no_workers_or_no_cpus() {
        assert_eq!(place(&[0, 1], None, 0), p(&[], &[0, 1]));
        assert_eq!(place(&[], None, 1), None);
        assert_eq!(place(&[0, 1], Some(&[]), 1), None);
    }

    #[test]
    fn cpu_lists_use_ranges() {
        assert_eq!(cpu_list(&[0]), "0");
        assert_eq!(cpu_list(&[0, 1]), "0-1");
        assert_eq!(cpu_list(&[4, 0, 2, 3, 7, 8, 9]), "0,2-4,7-9");
        assert_eq!(cpu_list(&[]), "");
    }

    #[test]
    fn the_log_line_names_each_queue_and_the_control_cpus() {
        let two = place(&[0, 1], None, 2).unwrap();
        assert_eq!(
            two.describe(&[0, 1]),
            "Workers: queue 0 on CPU 1, queue 1 on CPU 1; control threads on CPU 0"
        );
        let four = place(&[0, 1, 2, 3], None, 1).unwrap();
        assert_eq!(
            four.describe(&[3]),
            "Workers: queue 3 on CPU 1; control threads on CPUs 0,2-3"
        );
    }
}
