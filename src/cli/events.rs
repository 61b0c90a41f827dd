//! `hooklatch events list|show`: the newest events, or one event with its payload and
//! conflicts, as a table or as JSON.

use std::io::Write;

use clap::{Args, Subcommand};

use super::escape_controls as shown;
use crate::read::{EventFilter, EventItem, MAX_LIMIT, Timestamp, parse_source};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum EventsCommand {
    /// The newest events, newest first.
    List(ListArgs),
    /// One event with its payload and conflicts; exit 1 if unknown.
    Show(ShowArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ListArgs {
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only events first seen at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// How many events [default: 50, at most 500].
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ShowArgs {
    pub source: String,
    pub event_id: String,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(store: &dyn Store, command: &EventsCommand, out: &mut dyn Write) -> Result<(), String> {
    match command {
        EventsCommand::List(args) => list(store, args, out),
        EventsCommand::Show(args) => show(store, args, out),
    }
}

fn list(store: &dyn Store, args: &ListArgs, out: &mut dyn Write) -> Result<(), String> {
    if !(1..=MAX_LIMIT).contains(&args.limit) {
        return Err(format!("--limit must be from 1 to {MAX_LIMIT}"));
    }
    let filter = EventFilter {
        source: args
            .source
            .as_deref()
            .map(|s| parse_source(s, "--source"))
            .transpose()
            .map_err(|e| e.to_string())?,
        since: args
            .since
            .as_deref()
            .map(|t| Timestamp::parse(t, "--since"))
            .transpose()
            .map_err(|e| e.to_string())?,
        ..EventFilter::default()
    };
    let events = store
        .list_events(&filter, None, args.limit)
        .map_err(|e| e.to_string())?;
    let written = if args.json {
        events.iter().try_for_each(|event| {
            let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
            writeln!(out, "{line}")
        })
    } else {
        table(&events, out)
    };
    written.map_err(|e| format!("cannot write: {e}"))
}

fn table(events: &[EventItem], out: &mut dyn Write) -> std::io::Result<()> {
    if events.is_empty() {
        return writeln!(out, "no events yet");
    }
    writeln!(
        out,
        "{:<27}  {:<16}  {:<32}  {:<24}  {:>10}  {:>9}  FORWARD",
        "FIRST SEEN (UTC)", "SOURCE", "EVENT ID", "TYPE", "DELIVERIES", "CONFLICTS"
    )?;
    for e in events {
        writeln!(
            out,
            "{:<27}  {:<16}  {:<32}  {:<24}  {:>10}  {:>9}  {}",
            e.first_seen_at,
            e.source,
            shown(&e.event_id),
            shown(e.event_type.as_deref().unwrap_or("-")),
            e.delivery_count,
            e.conflict_count,
            e.forward.as_ref().map(|f| f.state.as_str()).unwrap_or("-")
        )?;
    }
    Ok(())
}

fn show(store: &dyn Store, args: &ShowArgs, out: &mut dyn Write) -> Result<(), String> {
    let Some(event) = store
        .event_detail(&args.source, &args.event_id)
        .map_err(|e| e.to_string())?
    else {
        return Err(format!(
            "no event {} / {}",
            shown(&args.source),
            shown(&args.event_id)
        ));
    };
    let json = event.json();
    let written = if args.json {
        serde_json::to_string_pretty(&json)
            .map_err(std::io::Error::other)
            .and_then(|text| writeln!(out, "{text}"))
    } else {
        (|| {
            let item = &event.item;
            writeln!(out, "source          {}", item.source)?;
            writeln!(out, "event id        {}", shown(&item.event_id))?;
            writeln!(
                out,
                "event type      {}",
                shown(item.event_type.as_deref().unwrap_or("-"))
            )?;
            writeln!(out, "first seen      {}", item.first_seen_at)?;
            writeln!(out, "last seen       {}", item.last_seen_at)?;
            writeln!(out, "deliveries      {}", item.delivery_count)?;
            writeln!(out, "conflicts       {}", item.conflict_count)?;
            writeln!(out, "fingerprint     {}", event.fingerprint)?;
            if let Some(c) = &event.conversion {
                writeln!(
                    out,
                    "conversion      #{} {} {} commission {} {}",
                    c.conversion_id,
                    shown(c.status.as_deref().unwrap_or("-")),
                    c.sale_amount,
                    c.commission_amount,
                    shown(c.currency.as_deref().unwrap_or(""))
                )?;
            }
            if let Some(f) = &item.forward {
                writeln!(
                    out,
                    "forwarding      {} after {} attempt(s)",
                    f.state, f.attempts
                )?;
            }
            writeln!(out, "payload")?;
            writeln!(out, "{}", pretty(&json.payload))?;
            for (n, c) in json.conflicts.iter().enumerate() {
                writeln!(
                    out,
                    "conflict {} received {} fingerprint {}",
                    n + 1,
                    c.received_at,
                    c.fingerprint
                )?;
                writeln!(out, "{}", pretty(&c.payload))?;
            }
            Ok(())
        })()
    };
    written.map_err(|e: std::io::Error| format!("cannot write: {e}"))
}

/// JSON escapes C0 controls in strings but not DEL or C1 (`\u{9b}` starts a terminal
/// command on some terminals): those are escaped too, line by line.
fn pretty(value: &serde_json::Value) -> String {
    if value.is_null() {
        return "(pruned)".into();
    }
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.lines()
        .map(|line| shown(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}
