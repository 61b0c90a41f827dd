use std::ffi::OsString;

use clap::CommandFactory;

use super::{Cli, Command, ForwardCommand};

#[test]
fn the_command_line_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn settings_come_before_or_after_a_subcommand() {
    let (cli, config) = Cli::load(
        [
            "hooklatch",
            "--max-body-bytes=10",
            "forward",
            "retry",
            "--failed",
            "--listen",
            "127.0.0.1:9300",
        ],
        [(OsString::from("HOOKLATCH_POOL_SIZE"), OsString::from("3"))],
    )
    .unwrap();
    assert!(matches!(
        cli.command,
        Some(Command::Forward(ForwardCommand::Retry {
            source: None,
            failed: true
        }))
    ));
    assert_eq!(config.listen.port(), 9300);
    assert_eq!(config.max_body_bytes, 10);
    assert_eq!(config.store.pool_size, 3);
}

#[test]
fn every_setting_of_the_declaration_is_a_flag_of_the_binary() {
    let command = Cli::command();
    let flags: Vec<&str> = command
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .collect();
    for key in crate::config::settings_table()
        .lines()
        .filter_map(|row| row.split("`--").nth(1))
        .filter_map(|rest| rest.split('`').next())
    {
        assert!(flags.contains(&key), "--{key} missing from {flags:?}");
    }
}
