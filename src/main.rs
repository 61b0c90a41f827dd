//! The binary: settings → tracing → store → serve. Store work that blocks (connecting,
//! migrating, and finally dropping the pool) happens on the main thread, outside the
//! async runtime, where the sync PostgreSQL client is allowed to block.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;

use hooklatch::cli::{Cli, Command};
use hooklatch::config::{Config, LoadError, LogFormat};
use hooklatch::forward::Forwarder;
use hooklatch::forward::worker::ForwarderHandle;
use hooklatch::tls::Tls;
use hooklatch::{App, cli, store};

fn main() -> ExitCode {
    let (cli, config) = match Cli::load(std::env::args_os(), std::env::vars_os()) {
        Ok(loaded) => loaded,
        Err(LoadError::Display(help)) => help.exit(),
        Err(LoadError::Invalid(error)) => {
            eprintln!("hooklatch: {error}");
            return ExitCode::FAILURE;
        }
    };
    init_logs(config.log_format);
    match run(cli.command.unwrap_or(Command::Serve), config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hooklatch: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, one line per event: text (coloured only on a terminal, so a file
/// or journald never gets escape codes) or one flat JSON object per line.
fn init_logs(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            // refinery logs each migration's name on lines of their own; its summary
            // at info adds nothing to "store ready".
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,refinery_core=warn")),
        )
        .with_writer(std::io::stderr)
        // A failed log write must not become a failed request: with internal errors on,
        // tracing reports it with eprintln!, which panics when stderr cannot be written
        // (a full disk under the log file), so every request that logged lost its answer.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

fn run(command: Command, config: Config) -> Result<(), String> {
    match command {
        // Reads the store as it is: no migration, which could change what is copied.
        Command::Backup { path } => {
            println!("{}", hooklatch::cli::backup::run(&config, &path)?);
            Ok(())
        }
        Command::Migrate => open_migrated(&config).map(drop),
        Command::Serve => serve(open_migrated(&config)?, config),
        Command::Events(command) => {
            let store = open_migrated(&config)?;
            cli::events::run(store.as_ref(), &command, &mut std::io::stdout().lock())
        }
        Command::Export(args) => {
            let store = open_migrated(&config)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = cli::export::run(store.as_ref(), &args, &mut out)?;
            tracing::info!(events = written, "export finished");
            Ok(())
        }
        Command::Import(args) => {
            let store = store::open_transfer(&config.database_url, &config.store)
                .map_err(|e| format!("cannot open {}: {e}", config.database_url))?;
            store
                .migrate()
                .map_err(|e| format!("cannot migrate {}: {e}", config.database_url))?;
            import(store.as_ref(), &config, &args)
        }
        Command::Copy(args) => {
            let report = cli::copy::run(&args, &config.store)?;
            println!("{report}");
            for (table, key) in &report.different {
                eprintln!(
                    "hooklatch: {table} {key}: present on the target with other content; left as it is"
                );
            }
            match report.different.len() {
                0 => Ok(()),
                n => Err(format!("{n} rows differ between the stores")),
            }
        }
        Command::Prune(args) => {
            println!(
                "{}",
                cli::prune::run(open_migrated(&config)?.as_ref(), &args)?
            );
            Ok(())
        }
        Command::VerifyTotals(args) => {
            println!(
                "{}",
                cli::totals::run(open_migrated(&config)?.as_ref(), &args)?
            );
            Ok(())
        }
        Command::Forward(command) => {
            let store = open_migrated(&config)?;
            let (line, alert) =
                cli::forward::execute(store.as_ref(), Some(&config.sources), &command)?;
            println!("{line}");
            if let Some(alert) = alert {
                send_alert(&config, alert);
            }
            Ok(())
        }
    }
}

/// Sends one alert from a command (its few retries included) before the process exits.
fn send_alert(config: &Config, alert: serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => {
            let alerter = hooklatch::forward::Alerter::new(&config.forward);
            if !runtime.block_on(alerter.send(alert)) {
                tracing::warn!("the alert could not be sent to alert_to");
            }
        }
        Err(e) => tracing::warn!(error = %e, "the alert could not be sent"),
    }
}

/// `hooklatch import FILE|-`: prints the counts, and fails when the input could not be
/// read (a line that is not a JSON object included) or the store failed (the counts so
/// far are printed either way).
fn import(
    store: &dyn store::Transfer,
    config: &Config,
    args: &cli::import::ImportArgs,
) -> Result<(), String> {
    let input: Box<dyn std::io::BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.file)
            .map_err(|e| format!("cannot open {}: {e}", args.file.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    match cli::import::run(store, &config.sources, input, &mut std::io::stderr()) {
        Ok(counts) => {
            println!("{counts}");
            Ok(())
        }
        Err((counts, error)) => {
            println!("{counts}");
            Err(error.to_string())
        }
    }
}

/// The store, migrated to this binary's schema.
fn open_migrated(config: &Config) -> Result<Arc<dyn store::Store>, String> {
    let store = store::open(&config.database_url, &config.store)
        .map_err(|e| format!("cannot open {}: {e}", config.database_url))?;
    store
        .migrate()
        .map_err(|e| format!("cannot migrate {}: {e}", config.database_url))?;
    tracing::info!(store = %config.database_url, "store ready");
    Ok(store)
}

fn serve(store: Arc<dyn store::Store>, config: Config) -> Result<(), String> {
    warn_about_settings(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let app = Arc::new(App::new(store.clone(), &config));
    let result = runtime.block_on(async {
        let forwarder = if config.sources.any_forwarding() {
            let forwarder = Forwarder::new(
                store.clone(),
                config.forward.clone(),
                config.sources.clone(),
                app.forward_wake.clone(),
            )?;
            Some(forwarder.spawn())
        } else {
            None
        };
        let shutdown = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let tls = Tls::start(&config.https).map_err(|e| e.to_string())?;
        if let Some(tls) = tls.as_ref().filter(|tls| tls.reloads_files()) {
            reload_on_hangup(tls.clone()).map_err(|e| format!("cannot handle signals: {e}"))?;
        }
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(%address, scheme, "hooklatch listening on {address}");
        if let Some(retention) = config.payload_retention {
            tokio::spawn(cli::prune::retention_task(store.clone(), retention));
        }
        // SPEC §6: the worker stops claiming the moment the signal comes, and its
        // attempts in flight finish alongside the HTTP grace, not after it.
        let stop_claiming = forwarder.as_ref().map(ForwarderHandle::stop_claiming);
        let shutdown = async move {
            shutdown.await;
            if let Some(stop) = stop_claiming {
                stop.now();
            }
        };
        hooklatch::serve_with(app, listener, tls, shutdown, config.shutdown_grace).await;
        if let Some(forwarder) = forwarder {
            forwarder.stop().await;
        }
        Ok(())
    });
    // Requests still running past the grace period are abandoned with the runtime;
    // every store write is one transaction, so none is left half-done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    close_store(store.as_ref(), &config.store);
    drop(store);
    result
}

/// Commits the duplicate counts and writes still pending (SPEC §3.5: SIGTERM commits
/// what is pending). Explicit, not left to `Drop`: a blocking task the runtime just
/// abandoned (a retention prune waiting on a lock) may still hold the store, and then
/// it is never dropped. Bounded: the statement under way, then the final commit with
/// its retries, each within the store timeout.
fn close_store(store: &dyn store::Store, options: &store::StoreOptions) {
    let within = options.statement_timeout * 2 + options.connect_timeout;
    tracing::info!(
        within_secs = within.as_secs(),
        "closing the store: committing pending duplicate counts and queued writes"
    );
    if store.close(within) {
        tracing::info!("store closed");
    } else {
        tracing::error!(
            within_secs = within.as_secs(),
            "the store did not close in time: duplicate counts still pending are lost"
        );
    }
}

/// What an operator should know before the first delivery: which sources take unsigned
/// deliveries (SPEC §7) and whether forwards go unsigned.
fn warn_about_settings(config: &Config) {
    let sources = &config.sources;
    for (source, accepted) in sources.without_secret() {
        let variable = hooklatch::config::secret_variable(&source);
        if accepted {
            tracing::warn!(
                source,
                "source accepts unsigned deliveries: set {variable} or [sources.{source}] secrets"
            );
        } else {
            tracing::info!(
                source,
                "source refuses deliveries until it has a secret: set {variable} or [sources.{source}] secrets"
            );
        }
    }
    if !sources.exposed() {
        tracing::warn!(
            "any source name without a configured secret accepts unsigned deliveries (listening on loopback)"
        );
    } else if config.allow_unsigned {
        tracing::warn!(
            "HOOKLATCH_ALLOW_UNSIGNED: any source name without a configured secret accepts unsigned deliveries"
        );
    }
    if sources.any_forwarding() && config.forward.secret.is_none() {
        tracing::warn!(
            "forwarded requests are not signed: set HOOKLATCH_FORWARD_SECRET or forward_secret"
        );
    }
}

/// SIGHUP reads the certificate files again; a bad new pair is logged and the old one
/// kept. Installed before the server says it listens, so a SIGHUP never ends it.
fn reload_on_hangup(tls: Tls) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup())?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: certificate and key reloaded"),
                    Err(e) => {
                        tracing::error!("SIGHUP: {e}; still serving the previous certificate")
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    drop(tls);
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed by this call, not when the
/// future is first polled: serving starts before the server's accept loop first polls
/// it, and a signal in between would otherwise end the process abruptly.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {},
                _ = interrupt.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
