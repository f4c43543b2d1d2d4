//! The example program runs, and what it prints is what its invoices add up to.

#[test]
fn the_embedding_example_runs_and_its_second_run_reads_only_the_new_invoice() {
    let output =
        std::process::Command::new(env!("CARGO_BIN_EXE_embed")).output().expect("running the example");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout, "run 1: 2 invoices, 4 rows\nrun 2: 1 invoices, 1 rows\nacme: 23.00\nglobex: 10.00\n");
}
