//! The binary: settings → tracing → store → serve. Store work that blocks (connecting,
//! migrating, and finally dropping the pool) happens on the main thread, outside the
//! async runtime, where the sync PostgreSQL client is allowed to block.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use hooklatch::config::{Cli, Command, Config};
use hooklatch::{App, cli, store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // A failed log write must not become a failed request: with internal errors on,
        // tracing reports it with eprintln!, which panics when stderr cannot be written
        // (a full disk under the log file), so every request that logged lost its answer.
        .log_internal_errors(false)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hooklatch: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let config = Config::load(&cli.flags, std::env::vars()).map_err(|e| e.to_string())?;
    // Reads the store as it is: no migration, which could change what is copied.
    if let Some(Command::Backup { path }) = &cli.command {
        println!("{}", hooklatch::cli::backup::run(&config, path)?);
        return Ok(());
    }
    let store = store::open(&config.database_url, &config.store)
        .map_err(|e| format!("cannot open {}: {e}", config.database_url))?;
    store
        .migrate()
        .map_err(|e| format!("cannot migrate {}: {e}", config.database_url))?;
    tracing::info!(store = %config.database_url, "store ready");
    match &cli.command {
        // Backup returned above.
        None | Some(Command::Serve | Command::Backup { .. }) => {}
        Some(Command::Migrate) => return Ok(()),
        Some(Command::Events(command)) => {
            return cli::events::run(store.as_ref(), command, &mut std::io::stdout().lock());
        }
        Some(Command::Export(args)) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = cli::export::run(store.as_ref(), args, &mut out)?;
            tracing::info!(events = written, "export finished");
            return Ok(());
        }
        Some(Command::Import(args)) => return import(store.as_ref(), &config, args),
        Some(Command::Prune(args)) => {
            println!("{}", cli::prune::run(store.as_ref(), args)?);
            return Ok(());
        }
    }
    for source in config.sources.unsigned() {
        tracing::warn!(
            source,
            "source accepts unsigned deliveries: set HOOKLATCH_SECRET_{} or [sources.{source}] secrets",
            source.to_ascii_uppercase().replace('-', "_")
        );
    }
    tracing::warn!("any source name without a configured secret accepts unsigned deliveries");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let app = Arc::new(App::new(store.clone(), &config));
    let result = runtime.block_on(async {
        let shutdown = shutdown_signal().map_err(|e| format!("cannot handle signals: {e}"))?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let address = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%address, "hooklatch listening on {address}");
        hooklatch::serve(app, listener, shutdown, config.shutdown_grace).await;
        Ok(())
    });
    // Requests still running past the grace period are abandoned with the runtime;
    // every store write is one transaction, so none is left half-done.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    drop(store);
    result
}

/// `hooklatch import FILE|-`: prints the counts, and fails only when the input could not
/// be read or the store failed (the counts so far are printed either way).
fn import(
    store: &dyn store::Store,
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
