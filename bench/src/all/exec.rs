//! The sections that run an existing benchmark as a child process (`corestore-bench engine`,
//! `store`, `s3`, `raft`): its stdout is kept (`<name>.txt`), its JSON lines collected
//! (`<name>.json`), its header lines, table and summary lines copied into the report, and its
//! ratios plotted (`<name>.svg`).

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::{Run, Section, plot};

/// A child process that is killed when its handle drops (an error or a panic on our side leaves
/// no benchmark running).
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// What a child benchmark printed.
pub struct Captured {
    pub stdout: String,
    /// Its JSON lines, parsed.
    pub lines: Vec<Value>,
}

/// Runs `exe args`, stderr passed through (its progress), stdout captured; an error names the
/// command and its exit status.
pub fn run_capture(exe: &Path, args: &[String]) -> Result<Captured, String> {
    let mut command = Command::new(exe);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    // SAFETY: prctl is async-signal-safe. If this process dies, the benchmark goes too.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let shown = format!("{} {}", exe.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()), args.join(" "));
    let child = command.spawn().map_err(|e| format!("starting `{shown}`: {e}"))?;
    let mut guard = ChildGuard(child);
    let mut stdout = String::new();
    if let Some(mut pipe) = guard.0.stdout.take() {
        use std::io::Read as _;
        pipe.read_to_string(&mut stdout).map_err(|e| format!("reading the output of `{shown}`: {e}"))?;
    }
    let status = guard.0.wait().map_err(|e| format!("waiting for `{shown}`: {e}"))?;
    if !status.success() {
        let tail: Vec<&str> = stdout.lines().rev().take(5).collect();
        return Err(format!(
            "`{shown}` exited with {status} (its error is on stderr above); last output: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    let lines = stdout.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect();
    Ok(Captured { stdout, lines })
}

/// The benchmark's stdout as markdown: `# ` header lines as a list, tables as they are, other
/// lines (summaries) as a list; JSON lines left out (they are in the JSON file).
pub fn render_stdout(stdout: &str) -> String {
    let mut md = String::new();
    let mut in_table = false;
    for line in stdout.lines() {
        let table = line.starts_with('|');
        if table && !in_table {
            md.push('\n');
        }
        if !table && in_table {
            md.push('\n');
        }
        in_table = table;
        if table {
            md.push_str(line);
            md.push('\n');
        } else if let Some(header) = line.strip_prefix("# ") {
            md.push_str(&format!("- {header}\n"));
        } else if line.starts_with('{') || line.trim().is_empty() {
            continue;
        } else {
            md.push_str(&format!("- {line}\n"));
        }
    }
    md
}

/// Runs one benchmark, keeps its output in `<name>.txt` and `<name>.json`, plots `ratio` per
/// workload against 1 (the reference), and renders the section.
fn bench_section(run: &Run, title: &'static str, name: &str, args: Vec<String>, reference: &str) -> Result<Section, String> {
    let captured = run_capture(&run.bench_exe, &args)?;
    write(&run.out_file(&format!("{name}.txt")), &captured.stdout)?;
    let json = serde_json::to_string_pretty(&captured.lines).map_err(|e| format!("encoding {name}.json: {e}"))?;
    write(&run.out_file(&format!("{name}.json")), &json)?;
    let mut body = format!("`corestore-bench {}`\n\n", args.join(" "));
    body.push_str(&render_stdout(&captured.stdout));
    let bars: Vec<(String, f64)> =
        captured.lines.iter().filter_map(|l| Some((l["workload"].as_str()?.to_string(), l["ratio"].as_f64()?))).collect();
    if !bars.is_empty() {
        let svg = format!("{name}.svg");
        plot::ratio_bars(&run.out_file(&svg), &format!("{title}: ratio to {reference} (1 = {reference})"), &bars)?;
        body.push_str(&format!("\n![{title}]({svg})\n"));
    }
    Ok(Section::new(title, body))
}

pub fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

pub fn engine(run: &Run, title: &'static str) -> Result<Section, String> {
    let file = run.work.join("engine.fio-data");
    let mut args = strings(&["engine", "--file"]);
    args.push(file.display().to_string());
    if run.quick {
        args.push("--quick".into());
    }
    let section = bench_section(run, title, "engine", args, "fio");
    let _ = std::fs::remove_file(&file);
    section
}

/// Index objects of the store section's index-memory and start-up figures in the full run: the
/// object-count scaling section goes further (to 10^7), so this one need not repeat it.
const STORE_INDEX_OBJECTS_FULL: u64 = 1_000_000;

pub fn store(run: &Run, title: &'static str) -> Result<Section, String> {
    let dir = run.work_dir("store")?;
    let mut args = strings(&["store", "--dir"]);
    args.push(dir.display().to_string());
    if run.quick {
        args.push("--quick".into());
    } else {
        args.extend(["--index-objects".to_string(), STORE_INDEX_OBJECTS_FULL.to_string()]);
    }
    let section = bench_section(run, title, "store", args, "fio");
    let _ = std::fs::remove_dir_all(&dir);
    section
}

/// `bench s3`, over plain HTTP or (`tls`) with both servers on HTTPS.
pub fn s3(run: &Run, title: &'static str, tls: bool) -> Result<Section, String> {
    let name = if tls { "s3-tls" } else { "s3" };
    let dir = run.work_dir(name)?;
    let mut args = strings(&["s3", "--dir"]);
    args.push(dir.display().to_string());
    if run.quick {
        args.push("--quick".into());
    }
    if tls {
        args.push("--tls".into());
    }
    let section = bench_section(run, title, name, args, "nginx");
    let _ = std::fs::remove_dir_all(&dir);
    section
}

/// `corestore-bench raft` (raft vs etcd) is built on another branch: this section is its one
/// invocation, `raft [--quick] --json FILE`, and says skipped while this build lacks it.
pub fn raft(run: &Run, title: &'static str) -> Result<Section, String> {
    let help = Command::new(&run.bench_exe).args(["raft", "--help"]).stdin(Stdio::null()).output();
    match help {
        Ok(o) if o.status.success() => {}
        Ok(_) => {
            return Ok(Section::skipped(
                title,
                "this corestore-bench has no `raft` subcommand (`corestore-bench raft --help` fails); raft vs etcd lands with it",
            ));
        }
        Err(e) => return Err(format!("running {} raft --help: {e}", run.bench_exe.display())),
    }
    let mut args = strings(&["raft"]);
    if run.quick {
        args.push("--quick".into());
    }
    let captured = run_capture(&run.bench_exe, &args)?;
    write(&run.out_file("raft.txt"), &captured.stdout)?;
    // Like the other benchmarks, it prints one JSON line per run beside its tables.
    let json: String = captured.stdout.lines().filter(|l| l.starts_with('{')).map(|l| format!("{l}\n")).collect();
    write(&run.out_file("raft.json"), &json)?;
    let mut body = format!("`corestore-bench {}`\n\n", args.join(" "));
    body.push_str(&render_stdout(&captured.stdout));
    body.push_str("\nIts JSON lines: `raft.json`.\n");
    Ok(Section::new(title, body))
}

#[cfg(test)]
mod tests {
    use super::render_stdout;

    fn check(stdout: &str, expected: &str) {
        assert_eq!(render_stdout(stdout), expected, "from {stdout:?}");
    }

    #[test]
    fn renders_headers_tables_and_summaries_without_json() {
        check(
            "# a header\n{\"workload\":\"x\"}\n\n| a | b |\n|---|---|\n| 1 | 2 |\nmin ratio: 1\n",
            "- a header\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- min ratio: 1\n",
        );
        check("", "");
        check("| t |\n", "\n| t |\n");
    }
}
