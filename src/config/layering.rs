//! The layering engine: flag, then environment, then the TOML file, then the default.
//!
//! clap reads flags and applies defaults; the layers below the flags are folded in by
//! [`load`] as *defaults* of the declared arguments (an environment value replaces a
//! file value, which replaces the declared default), so clap still parses and validates
//! every value with the one declared parser, wherever it came from. The environment is
//! passed in rather than read by clap, so tests never race on the process environment.
//! [`load`] is generic over the command line, which lives above config (`cli::Cli`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, FromArgMatches, Parser};

use super::declaration::{NOT_IN_FILE, Settings, setting_args, without_env};
use super::{Config, ConfigError, sources};

/// Why [`load`] did not produce settings.
#[derive(Debug)]
pub enum LoadError {
    /// `--help` or `--version`: print it and exit 0 (`clap::Error::exit`).
    Display(clap::Error),
    /// Anything else: one line, exit 1.
    Invalid(ConfigError),
}

impl From<ConfigError> for LoadError {
    fn from(error: ConfigError) -> Self {
        LoadError::Invalid(error)
    }
}

/// Where a value below the flags came from, to name it in an error.
enum Origin {
    Env(String),
    File(PathBuf),
}

/// Parses the command line `C` (which flattens [`Settings`]) and resolves every setting:
/// flag, then `env`, then the TOML file (`--config` / `HOOKLATCH_CONFIG`), then the
/// declared default.
pub fn load<C: Parser, T: Into<OsString> + Clone>(
    args: impl IntoIterator<Item = T>,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(C, Config), LoadError> {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let env = utf8_env(env)?;
    let command = without_env(C::command());

    // Flags alone first: help, version and bad flags are answered from the
    // declaration as written, and --config is known.
    let flags = command
        .clone()
        .try_get_matches_from(&args)
        .map_err(|error| {
            match error.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    // Render help with the environment names shown but never their values.
                    let help = C::command()
                        .mut_args(|arg| arg.hide_env_values(true))
                        .try_get_matches_from(&args)
                        .err()
                        .unwrap_or(error);
                    LoadError::Display(help)
                }
                _ => LoadError::Invalid(clap_line(&error)),
            }
        })?;
    for arg in setting_args(&C::command()) {
        if arg.is_hide_set()
            && flags.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
        {
            let env = arg
                .get_env()
                .map(|e| e.to_string_lossy())
                .unwrap_or_default();
            return Err(ConfigError(format!(
                "--{} would be visible to every user of this machine; set {env} or {} in the file",
                arg.get_long().unwrap_or_default(),
                arg.get_id()
            ))
            .into());
        }
    }

    // The layers below the flags become the arguments' defaults: file, then env.
    let config_path = Settings::from_arg_matches(&flags)
        .ok()
        .and_then(|s| s.config)
        .or_else(|| env.get("HOOKLATCH_CONFIG").map(PathBuf::from));
    let mut layered: HashMap<String, (String, Origin)> = HashMap::new();
    let mut file_sources = toml::Table::new();
    if let Some(path) = &config_path {
        let mut table = read_file(path)?;
        if let Some(sources) = table.remove("sources") {
            file_sources = match sources {
                toml::Value::Table(table) => table,
                _ => {
                    return Err(
                        file_error(path, "sources must be a table of [sources.<name>]").into(),
                    );
                }
            };
        }
        for (key, value) in table {
            let known = setting_args(&command)
                .any(|arg| arg.get_id().as_str() == key && !NOT_IN_FILE.contains(&key.as_str()));
            if !known {
                return Err(file_error(
                    path,
                    &format!("unknown key `{key}`; known keys: {}", file_keys(&command)),
                )
                .into());
            }
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(n) => n.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                // A list of names (acme_domains) is read like its environment form.
                toml::Value::Array(items)
                    if super::https::LIST_KEYS.contains(&key.as_str())
                        && items.iter().all(toml::Value::is_str) =>
                {
                    items
                        .iter()
                        .filter_map(toml::Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                }
                _ => {
                    return Err(file_error(path, &format!("{key} must be a single value")).into());
                }
            };
            layered.insert(key, (text, Origin::File(path.clone())));
        }
    }
    for arg in setting_args(&C::command()) {
        let Some(name) = arg.get_env().map(|e| e.to_string_lossy().into_owned()) else {
            continue;
        };
        if let Some(value) = env.get(&name) {
            layered.insert(arg.get_id().to_string(), (value.clone(), Origin::Env(name)));
        }
    }
    layered.remove("config");

    let mut layered_command = command.clone();
    for (id, (value, origin)) in layered {
        let arg = setting_args(&command)
            .find(|arg| arg.get_id().as_str() == id)
            .expect("layered keys are declared settings");
        check_value(arg, &value, &origin)?;
        layered_command = layered_command.mut_arg(&id, |arg| arg.default_value(value));
    }
    let matches = layered_command
        .try_get_matches_from(&args)
        .map_err(|error| LoadError::Invalid(clap_line(&error)))?;
    let cli =
        C::from_arg_matches(&matches).map_err(|error| LoadError::Invalid(clap_line(&error)))?;
    let settings = Settings::from_arg_matches(&matches)
        .map_err(|error| LoadError::Invalid(clap_line(&error)))?;

    let sources = sources::load(file_sources, config_path.as_deref(), &env)?;
    let config = Config::resolve(settings, sources)?;
    if config.forward.retry_initial > config.forward.retry_max {
        return Err(
            ConfigError("forward_retry_initial must not exceed forward_retry_max".into()).into(),
        );
    }
    Ok((cli, config))
}

/// The environment as text. Only the variables hooklatch reads must be UTF-8.
fn utf8_env(
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    for (key, value) in env {
        let Ok(key) = key.into_string() else { continue };
        if !(key.starts_with("HOOKLATCH_") || key == "DATABASE_URL") {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| ConfigError(format!("{key} is not valid UTF-8")))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn read_file(path: &std::path::Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| file_error(path, e.message()))
}

pub(super) fn file_error(path: &std::path::Path, message: &str) -> ConfigError {
    ConfigError(format!("config file {}: {message}", path.display()))
}

fn file_keys(command: &clap::Command) -> String {
    let mut keys: Vec<&str> = setting_args(command)
        .map(|arg| arg.get_id().as_str())
        .filter(|key| !NOT_IN_FILE.contains(key))
        .collect();
    keys.push("sources");
    keys.join(", ")
}

/// Validates one value from the file or the environment with the setting's own parser,
/// so the error can say where the value came from. Secret values are never echoed.
fn check_value(arg: &Arg, value: &str, origin: &Origin) -> Result<(), ConfigError> {
    let long = arg.get_long().unwrap_or_default();
    let probe = clap::Command::new("hooklatch").no_binary_name(true).arg(
        Arg::new(arg.get_id().clone())
            .long(long.to_owned())
            .action(ArgAction::Set)
            .value_parser(arg.get_value_parser().clone()),
    );
    let Err(error) = probe.try_get_matches_from([format!("--{long}={value}")]) else {
        return Ok(());
    };
    let reason = match std::error::Error::source(&error) {
        Some(cause) => cause.to_string(),
        None if arg.is_hide_env_values_set() => "invalid value".to_owned(),
        None => clap_line(&error).0,
    };
    let shown = if arg.is_hide_env_values_set() {
        String::new()
    } else {
        format!(" = {value:?}")
    };
    Err(ConfigError(match origin {
        Origin::Env(name) => format!("{name}{shown}: {reason}"),
        Origin::File(path) => format!(
            "config file {}: {}{shown}: {reason}",
            path.display(),
            arg.get_id()
        ),
    }))
}

/// A clap error as one line (startup errors are one line and exit 1). A value the
/// parser refused is not echoed: it may be a URL with a password.
fn clap_line(error: &clap::Error) -> ConfigError {
    let arg = error.get(clap::error::ContextKind::InvalidArg);
    if let (Some(arg), Some(cause)) = (arg, std::error::Error::source(error)) {
        return ConfigError(format!("{arg}: {cause}"));
    }
    let rendered = error.render().to_string();
    let text = rendered
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("For more information")
                && !line.starts_with("Usage:")
        })
        .collect::<Vec<_>>()
        .join(" ");
    ConfigError(text.trim_start_matches("error: ").to_owned())
}
