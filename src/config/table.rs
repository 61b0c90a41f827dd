//! The README's settings table, generated from the declaration; a test
//! (`readme_table_matches_the_declaration`) keeps README.md equal to it.

use super::declaration::{NOT_IN_FILE, setting_args, settings_command};
use super::source_keys::SOURCE_KEYS;

/// The README's settings table, generated from the declaration.
pub fn settings_table() -> String {
    let command = settings_command();
    let code = |text: &str| format!("`{text}`");
    let mut rows = vec![
        "| setting | flag | environment | TOML key | default |".to_owned(),
        "|---|---|---|---|---|".to_owned(),
    ];
    for arg in setting_args(&command).filter(|arg| !NOT_IN_FILE.contains(&arg.get_id().as_str())) {
        let flag = match (arg.is_hide_set(), arg.get_long()) {
            (false, Some(long)) => code(&format!("--{long}")),
            _ => "–".to_owned(),
        };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| code(&v.to_string_lossy()))
            .collect();
        rows.push(format!(
            "| {} | {flag} | {} | {} | {} |",
            arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
            arg.get_env()
                .map_or("–".to_owned(), |e| code(&e.to_string_lossy())),
            code(arg.get_id().as_str()),
            if defaults.is_empty() {
                "none".to_owned()
            } else {
                defaults.join(", ")
            },
        ));
    }
    for key in SOURCE_KEYS {
        rows.push(format!(
            "| {} | – | {} | {} | {} |",
            key.about,
            key.env.map_or("–".to_owned(), code),
            code(&format!("[sources.<name>] {}", key.key)),
            key.default,
        ));
    }
    rows.join("\n")
}
