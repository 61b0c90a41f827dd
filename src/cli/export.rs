//! `hooklatch export`: every matching event as JSON lines on stdout, oldest first, so
//! `hooklatch import` replays them in the order they were first seen.

use std::io::Write;

use clap::Args;

use crate::read::{ExportFilter, MAX_LIMIT, Timestamp, parse_source};
use crate::store::Store;

#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ExportArgs {
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only events first seen at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Only events first seen before this RFC 3339 time.
    #[arg(long)]
    pub until: Option<String>,
}

impl ExportArgs {
    fn filter(&self) -> Result<ExportFilter, String> {
        let time = |text: &Option<String>, name: &str| {
            text.as_deref()
                .map(|t| Timestamp::parse(t, name))
                .transpose()
                .map_err(|e| e.to_string())
        };
        Ok(ExportFilter {
            source: self
                .source
                .as_deref()
                .map(|s| parse_source(s, "--source"))
                .transpose()
                .map_err(|e| e.to_string())?,
            since: time(&self.since, "--since")?,
            until: time(&self.until, "--until")?,
        })
    }
}

/// Writes the lines and returns how many. Pages through the store, so memory stays flat
/// however many events there are, and events arriving meanwhile are included up to the
/// moment the last page is read.
pub fn run(store: &dyn Store, args: &ExportArgs, out: &mut dyn Write) -> Result<u64, String> {
    let filter = args.filter()?;
    let mut cursor = None;
    let mut written = 0;
    loop {
        let page = store
            .export_events(&filter, cursor.as_ref(), MAX_LIMIT)
            .map_err(|e| e.to_string())?;
        for item in &page {
            let line = serde_json::to_string(item).map_err(|e| e.to_string())?;
            writeln!(out, "{line}").map_err(|e| format!("cannot write: {e}"))?;
            written += 1;
        }
        match page.last() {
            Some(last) if page.len() == MAX_LIMIT as usize => cursor = Some(last.cursor()),
            _ => break,
        }
    }
    out.flush().map_err(|e| format!("cannot write: {e}"))?;
    Ok(written)
}
