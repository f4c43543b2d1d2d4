//! Every command that prints ends quietly when its reader goes away early (`sluice dataflows | head -c1`), as
//! `ls` and `rg` do: exit status 0 (or death by SIGPIPE, the other convention), and nothing "panicked" on
//! stderr.
//!
//! Two readers, neither left to chance: one reads a single byte and closes, on a pipe shrunk to one page so
//! that the longer listings here are still being written when it goes; the other is gone before the
//! command's first write. A `println!` panics under either, every time.

mod support;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

/// Dataflows in the configuration: enough that `dataflows` and `check` print more than a page.
const DATAFLOWS: usize = 60;
/// The smallest pipe Linux makes: one page.
const PAGE: libc::c_int = 4096;

#[derive(Clone, Copy, Debug)]
enum Reader {
    /// Reads one byte, then closes its end (`| head -c1`).
    OneByte,
    /// Closed its end before the command wrote anything.
    Gone,
}

/// Runs `sluice ARGS` in `dir` with stdout going to `reader`: its exit status and stderr.
fn with_reader(dir: &Path, args: &[&str], reader: Reader) -> (ExitStatus, String) {
    let (read_end, write_end) = std::io::pipe().expect("a pipe");
    // SAFETY: fcntl on a pipe descriptor this function owns, with an integer argument; no memory is shared.
    let resized = unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETPIPE_SZ, PAGE) };
    assert!(resized >= PAGE, "F_SETPIPE_SZ: {}", std::io::Error::last_os_error());
    let read_end = match reader {
        Reader::OneByte => Some(read_end),
        Reader::Gone => {
            drop(read_end);
            None
        }
    };
    let mut command = sluice(dir);
    command.args(args).stdout(write_end).stderr(Stdio::piped());
    let child = command.spawn().expect("running sluice");
    // The command holds the parent's copy of the write end: dropped, so a read ends at the child's EOF.
    drop(command);
    if let Some(mut read_end) = read_end {
        read_end.read_exact(&mut [0u8; 1]).expect("the command printed something");
    }
    let output = child.wait_with_output().expect("waiting for sluice");
    (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
}

fn sluice(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .current_dir(dir)
        .env("SLUICE_CACHE_DIR", support::root().join("target").join("test-plugin-cache"));
    command
}

/// Runs `sluice ARGS` in `dir` to the end: its stdout, after checking it succeeded.
fn run_to_the_end(dir: &Path, args: &[&str]) -> String {
    let output = sluice(dir).args(args).output().expect("running sluice");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    assert!(output.status.success(), "sluice {args:?}: {}{}", text(&output.stdout), text(&output.stderr));
    text(&output.stdout)
}

/// A configuration of many dataflows, each run once: `Many` took 80 objects in one run, and `Big` reads a
/// file of 3,000 rows.
fn many_dataflows() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut config = String::from(
        "[state]\nurl = \"sqlite://state.db\"\n[sink]\nurl = \"sqlite://tables.db\"\n\n\
         [dataflows.Many]\nsource = { type = \"local\", path = \"data\", prefix = \"many/\" }\n\
         format = { plugin = \"csv\" }\n\n\
         [dataflows.Big]\nsource = { type = \"local\", path = \"data\", prefix = \"big/\" }\n\
         format = { plugin = \"csv\" }\n",
    );
    let write = |file: String, contents: &str| {
        let path = dir.path().join("data").join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    };
    for n in 1..=DATAFLOWS {
        config.push_str(&format!(
            "\n[dataflows.Flow{n:02}]\nsource = {{ type = \"local\", path = \"data\", prefix = \"flow{n:02}/\" }}\n\
             format = {{ plugin = \"csv\" }}\n"
        ));
        write(format!("flow{n:02}/a.csv"), "id,name\n1,Ann\n2,Bo\n");
    }
    for n in 1..=80 {
        write(format!("many/an-object-whose-key-is-long-enough-to-fill-a-line-{n:03}.csv"), "id\n1\n");
    }
    let big: String = std::iter::once("id,name,note\n".to_string())
        .chain((0..3000).map(|n| format!("{n},name {n},\"a note, quoted\"\n")))
        .collect();
    write("big/rows.csv".to_string(), &big);
    std::fs::write(dir.path().join("connector.toml"), config).unwrap();
    run_to_the_end(dir.path(), &["run"]);
    dir
}

#[test]
fn every_command_that_prints_ends_quietly_when_its_reader_goes_away() {
    let dir = many_dataflows();
    let csv = support::daemon::bundled_wasm("sluice_csv");
    let csv = csv.to_str().unwrap();
    let history: serde_json::Value =
        serde_json::from_str(&run_to_the_end(dir.path(), &["history", "Many", "--json"])).unwrap();
    let many_run = history[0]["run"].to_string();
    let commands: &[&[&str]] = &[
        &["dataflows"],
        &["dataflows", "--json"],
        &["dataflows", "--tables"],
        &["dataflows", "--tables", "--json"],
        &["history", "Many"],
        &["history", "Many", "--json"],
        &["history", "Many", "--run", &many_run],
        &["history", "Many", "--run", &many_run, "--json"],
        &["preview", "Big", "--records", "500"],
        &["parse", "--format", "csv", "data/big/rows.csv"],
        &["check"],
        &["plugin", "inspect", csv],
        &["plugin", "test", csv, "data/big/rows.csv"],
        &["run"],
    ];
    for args in commands {
        for reader in [Reader::OneByte, Reader::Gone] {
            let (status, stderr) = with_reader(dir.path(), args, reader);
            assert!(
                status.success() || status.signal() == Some(libc::SIGPIPE),
                "sluice {args:?} with a reader {reader:?}: {status}\n{stderr}"
            );
            for unwanted in ["panicked", "Broken pipe", "failed printing"] {
                assert!(!stderr.contains(unwanted), "sluice {args:?} with a reader {reader:?}: {stderr}");
            }
        }
    }
}

#[test]
fn a_run_whose_reader_is_gone_still_runs_every_dataflow() {
    let dir = many_dataflows();
    // New files for the first dataflow whose summary has nowhere to go, and for the last.
    for flow in ["flow01", &format!("flow{DATAFLOWS:02}")] {
        std::fs::write(dir.path().join("data").join(flow).join("b.csv"), "id,name\n3,Cy\n").unwrap();
    }
    let (status, stderr) = with_reader(dir.path(), &["run"], Reader::Gone);
    assert!(status.success(), "{status}: {stderr}");
    for flow in ["Flow01", &format!("Flow{DATAFLOWS:02}")] {
        let runs: serde_json::Value =
            serde_json::from_str(&run_to_the_end(dir.path(), &["history", flow, "--json"])).unwrap();
        assert_eq!(runs.as_array().unwrap().len(), 2, "{flow}: {runs}");
        assert_eq!(runs[0]["rows_written"], 1, "{flow}: {runs}");
    }
}
