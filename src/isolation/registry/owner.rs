//! Who holds a registry row: the process, its host and its run, as the sweeper reads them.

use std::sync::OnceLock;

/// Who is asking: the run, the host and the process, recorded with every row.
#[derive(Debug, Clone)]
pub struct Owner {
    /// The run, as a short label for names: `SEEDBED_RUN_ID`, else `NEXTEST_RUN_ID`'s first
    /// characters, else one chosen per process.
    pub run_id: String,
    /// The run whole (`SEEDBED_RUN_ID`, else `NEXTEST_RUN_ID`, else the label chosen per
    /// process), as recorded in `seedbed.runs`: two runs whose labels agree are still two.
    pub run: String,
    /// The host name, reduced to lowercase letters, digits and dashes.
    pub host: String,
    /// This process.
    pub pid: u32,
}

impl Owner {
    /// The start of the names of the clones this process makes, to which a number is added:
    /// `seedbed_c_<host>_<run>_`.
    pub fn clone_prefix(&self) -> String {
        format!("seedbed_c_{}_{}_", self.host, self.run_id)
    }

    /// The owner for this process.
    pub fn current() -> &'static Owner {
        static OWNER: OnceLock<Owner> = OnceLock::new();
        OWNER.get_or_init(|| {
            let run = run();
            Owner {
                run_id: clean_label(&run, 8),
                run,
                host: host_name(),
                pid: std::process::id(),
            }
        })
    }
}

fn clean_label(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_alphanumeric()).then_some(c)
        })
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "x".into()
    } else {
        cleaned
    }
}

fn run() -> String {
    for var in ["SEEDBED_RUN_ID", "NEXTEST_RUN_ID"] {
        if let Some(v) = crate::util::env::text(var) {
            return v.chars().take(200).collect();
        }
    }
    let random = crate::context::token_for(
        "run",
        crate::context::process_base_seed(),
        std::process::id(),
    );
    clean_label(&random, 8)
}

#[cfg(unix)]
fn host_name() -> String {
    let uname = rustix::system::uname();
    clean_label(&uname.nodename().to_string_lossy(), 12)
}

#[cfg(not(unix))]
fn host_name() -> String {
    clean_label(
        &std::env::var("COMPUTERNAME").unwrap_or_else(|_| "host".into()),
        12,
    )
}
