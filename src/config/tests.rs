use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use super::declaration::setting_args;
use super::sources::FileSource;
use super::*;
use crate::model::Source;

/// A command line shaped like the binary's (`cli::Cli`: the settings flattened, global,
/// and a subcommand), declared here because config sits below `cli` and may not import it.
#[derive(Debug, Parser)]
#[command(name = "hooklatch", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Debug, Subcommand)]
enum Command {
    Migrate,
}

impl Cli {
    fn load<T: Into<OsString> + Clone>(
        args: impl IntoIterator<Item = T>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<(Cli, Config), LoadError> {
        super::load(args, env)
    }
}

fn load(args: &[&str], toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooklatch.toml");
    std::fs::write(&path, toml).unwrap();
    let mut argv = vec![
        "hooklatch".to_owned(),
        format!("--config={}", path.display()),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    let env = env
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    match Cli::load(argv, env) {
        Ok((_, config)) => Ok(config),
        Err(LoadError::Invalid(error)) => Err(error),
        Err(LoadError::Display(e)) => panic!("unexpected display: {e}"),
    }
}

fn error(args: &[&str], toml: &str, env: &[(&str, &str)]) -> String {
    match load(args, toml, env) {
        Ok(_) => panic!("loaded: {args:?} {toml:?} {env:?}"),
        Err(e) => e.0,
    }
}

fn source(name: &str) -> Source {
    Source::parse(name).unwrap()
}

#[test]
fn database_urls() {
    assert_eq!(
        DatabaseUrl::parse("sqlite://hooklatch.db").unwrap(),
        DatabaseUrl::Sqlite("hooklatch.db".into())
    );
    assert_eq!(
        DatabaseUrl::parse("sqlite:///var/lib/h.db").unwrap(),
        DatabaseUrl::Sqlite("/var/lib/h.db".into())
    );
    assert_eq!(
        DatabaseUrl::parse("sqlite::memory:").unwrap(),
        DatabaseUrl::SqliteMemory
    );
    assert!(matches!(
        DatabaseUrl::parse("postgresql://u@h/db").unwrap(),
        DatabaseUrl::Postgres(_)
    ));
    for bad in ["mysql://x", "hooklatch.db", "sqlite://", "postgres:/x", ""] {
        let err = DatabaseUrl::parse(bad).unwrap_err();
        assert!(err.0.contains("sqlite://PATH"), "{err}");
    }
    let pg = DatabaseUrl::parse("postgres://app:hunter2@db:5432/x").unwrap();
    assert_eq!(format!("{pg:?}"), "postgres://app:***@db:5432/x");
}

#[test]
fn no_spelling_of_a_password_is_ever_printed() {
    let urls = [
        "postgres://app:hunter2@db:5432/x",
        "postgres://u@h/db?password=hunter2",
        "postgres://u@h/db?sslmode=disable&PASSWORD=hunter2&application_name=a",
        "postgresql://u@h/db?pass%77ord=hunter2",
        "postgresql://u@h/db?sslpassword=hunter2",
        "postgres://u:hun@ter2@h/db",
        "postgres://u:hunter2@h/db?password=hunter2@x",
        "postgres://h/db?password=hunter2@x",
        "postgres://u:hun?ter2@h/db",
    ];
    for url in urls {
        let shown = format!("{:?} {}", DatabaseUrl::parse(url).unwrap(), redact(url));
        assert!(
            !shown.contains("hunter2") && !shown.contains("ter2"),
            "{url} -> {shown}"
        );
    }
    // What is not a secret stays readable.
    assert_eq!(
        redact("postgres://u@h:5432/db?sslmode=disable&password=x"),
        "postgres://u@h:5432/db?sslmode=disable&password=***"
    );
    // Rejected forms are echoed redacted, including libpq's key=value form.
    let rejected = [
        "mysql://root:hunter2@db/x",
        "host=h password=hunter2 user=u",
        "host=h PASSWORD = hunter2",
        "host=h password='hunter2 with spaces' user=u",
        "host=h password='it\\'s hunter2'",
    ];
    for text in rejected {
        let err = DatabaseUrl::parse(text).unwrap_err().0;
        assert!(!err.contains("hunter2"), "{text} -> {err}");
    }
    assert_eq!(
        redact("host=h password='a b' user=u"),
        "host=h password=*** user=u"
    );
    // Through the loader, from the environment and from a flag.
    for (args, env) in [
        (vec![], vec![("DATABASE_URL", "host=h password=hunter2")]),
        (vec!["--database-url=mysql://u:hunter2@h/x"], vec![]),
    ] {
        let err = error(&args, "", &env);
        assert!(
            err.contains("sqlite://PATH") && !err.contains("hunter2"),
            "{err}"
        );
    }
}

#[test]
fn defaults_are_the_declared_ones() {
    let config = Config::default();
    assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8000)));
    assert_eq!(
        config.database_url,
        DatabaseUrl::Sqlite("hooklatch.db".into())
    );
    assert_eq!(config.max_body_bytes, 1024 * 1024);
    assert_eq!(config.on_conflict, OnConflict::Accept);
    assert_eq!(config.store.pool_size, 16);
    assert_eq!(config.store.connect_timeout, Duration::from_secs(5));
    assert_eq!(config.store.statement_timeout, Duration::from_secs(5));
    assert!(config.store.sqlite_full_sync);
    assert_eq!(config.body_timeout, Duration::from_secs(10));
    assert_eq!(config.shutdown_grace, Duration::from_secs(30));
    assert!(!config.allow_unsigned);
    assert_eq!(config.admin_token, None);
    assert_eq!(config.payload_retention, None);
    assert_eq!(config.log_format, LogFormat::Text);
    let forward = &config.forward;
    assert_eq!(forward.secret, None);
    assert_eq!(forward.timeout, Duration::from_secs(10));
    assert_eq!(forward.retry_initial, Duration::from_secs(5));
    assert_eq!(forward.retry_max, Duration::from_secs(3600));
    assert_eq!(forward.max_attempts, 20);
    assert_eq!(forward.concurrency, 8);
    assert!(!config.sources.exposed());
}

#[test]
fn flag_beats_env_beats_file_beats_default() {
    let toml = "listen = \"127.0.0.1:9000\"\nforward_timeout = 2.5\non_conflict = \"reject\"\nmax_body_bytes = 10\n";
    let file = load(&[], toml, &[]).unwrap();
    assert_eq!(file.listen.port(), 9000);
    assert_eq!(file.forward.timeout, Duration::from_millis(2500));
    assert_eq!(file.on_conflict, OnConflict::Reject);
    assert_eq!(file.max_body_bytes, 10);
    assert_eq!(
        file.store.pool_size, 16,
        "untouched settings keep their default"
    );

    let env = [
        ("HOOKLATCH_LISTEN", "127.0.0.1:9100"),
        ("HOOKLATCH_FORWARD_TIMEOUT", "0.5"),
    ];
    let from_env = load(&[], toml, &env).unwrap();
    assert_eq!(from_env.listen.port(), 9100);
    assert_eq!(from_env.forward.timeout, Duration::from_millis(500));
    assert_eq!(from_env.on_conflict, OnConflict::Reject);

    let flags = load(
        &["--listen", "127.0.0.1:9200", "--on-conflict=accept"],
        toml,
        &env,
    )
    .unwrap();
    assert_eq!(flags.listen.port(), 9200);
    assert_eq!(flags.on_conflict, OnConflict::Accept);
    assert_eq!(flags.forward.timeout, Duration::from_millis(500));
    // Flags after a subcommand are the same settings.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(&path, toml).unwrap();
    let (cli, config) = Cli::load(
        ["hooklatch", "migrate", "--listen", "127.0.0.1:9300"],
        [(OsString::from("HOOKLATCH_CONFIG"), path.into_os_string())],
    )
    .unwrap();
    assert!(matches!(cli.command, Some(Command::Migrate)));
    assert_eq!(config.listen.port(), 9300);
    assert_eq!(config.max_body_bytes, 10, "HOOKLATCH_CONFIG names the file");
}

#[test]
fn every_new_setting_loads_from_file_and_env() {
    let toml = r#"
admin_token = "0123456789abcdef"
payload_retention = "90d"
log_format = "json"
forward_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
forward_retry_initial = 1
forward_retry_max = 60
forward_max_attempts = 3
forward_concurrency = 2
allow_unsigned = true

[sources.shop]
preset = "shopify"
secrets = ["k"]
forward_to = "https://app.example/hooks"
allow_unsigned = true
"#;
    let config = load(
        &[],
        toml,
        &[("HOOKLATCH_FORWARD_TO_MY_APP", "http://127.0.0.1:3000/in")],
    )
    .unwrap();
    assert_eq!(config.admin_token.as_deref(), Some("0123456789abcdef"));
    assert_eq!(
        config.payload_retention,
        Some(Duration::from_secs(90 * 86_400))
    );
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.forward.secret.as_ref().map(Vec::len), Some(24));
    assert_eq!(config.forward.retry_initial, Duration::from_secs(1));
    assert_eq!(config.forward.retry_max, Duration::from_secs(60));
    assert_eq!(config.forward.max_attempts, 3);
    assert_eq!(config.forward.concurrency, 2);
    assert!(config.allow_unsigned);
    let shop = config.sources.settings(&source("shop"));
    assert!(shop.allow_unsigned);
    assert_eq!(
        shop.forward_to.as_deref(),
        Some("https://app.example/hooks")
    );
    assert_eq!(
        config.sources.forward_to(&source("shop")),
        Some("https://app.example/hooks")
    );
    // A source named only in the environment forwards too; `-` is `_` in the name.
    assert_eq!(
        config.sources.forward_to(&source("my-app")),
        Some("http://127.0.0.1:3000/in")
    );
    assert_eq!(config.sources.forward_to(&source("other")), None);
    assert!(config.sources.is_known(&source("my-app")));

    let env = [
        ("HOOKLATCH_ADMIN_TOKEN", "fedcba9876543210"),
        ("HOOKLATCH_PAYLOAD_RETENTION", "12h"),
        ("HOOKLATCH_LOG_FORMAT", "text"),
        ("HOOKLATCH_ALLOW_UNSIGNED", "false"),
        ("HOOKLATCH_FORWARD_TO_SHOP", "http://override.example/x"),
    ];
    let config = load(&[], toml, &env).unwrap();
    assert_eq!(config.admin_token.as_deref(), Some("fedcba9876543210"));
    assert_eq!(
        config.payload_retention,
        Some(Duration::from_secs(12 * 3600))
    );
    assert_eq!(config.log_format, LogFormat::Text);
    assert!(!config.allow_unsigned);
    assert_eq!(
        config.sources.forward_to(&source("shop")),
        Some("http://override.example/x")
    );
    assert!(load(&["--allow-unsigned"], "", &[]).unwrap().allow_unsigned);
}

#[test]
fn unknown_keys_are_refused_at_the_top_and_in_sources() {
    let top = error(&[], "lisen = \"x\"", &[]);
    assert!(top.contains("lisen") && top.contains("known keys"), "{top}");
    let nested = error(&[], "[sources.x]\nsecret = [\"a\"]", &[]);
    assert!(
        nested.contains("secret") && nested.contains("[sources.x]"),
        "{nested}"
    );
    // The file cannot name another file.
    assert!(error(&[], "config = \"other.toml\"", &[]).contains("unknown key `config`"));
    assert!(error(&[], "listen = [\"a\"]", &[]).contains("single value"));
    assert!(error(&[], "acme_email = [\"a\"]", &[]).contains("single value"));
    assert!(error(&[], "[sources.x]\npreset = \"paypal\"", &[]).contains("unknown preset"));
    assert!(error(&[], "[sources.x]\npreset = \"generic\"", &[]).contains("signature_header"));
    assert!(error(&[], "[sources.X]\nsecrets = [\"a\"]", &[]).contains("source name"));
}

#[test]
fn an_empty_secret_anywhere_stops_startup_naming_the_source() {
    // Issue 8 item 1: the environment's empty value used to replace the file's secrets
    // and leave the source unsigned.
    let file = "[sources.refersion]\nsecrets = [\"real_secret\"]\n";
    let env = error(&[], file, &[("HOOKLATCH_SECRET_REFERSION", "")]);
    assert!(
        env.contains("HOOKLATCH_SECRET_REFERSION") && env.contains("empty"),
        "{env}"
    );
    let gap = error(&[], "", &[("HOOKLATCH_SECRET_SHOPIFY", "a,,b")]);
    assert!(gap.contains("HOOKLATCH_SECRET_SHOPIFY"), "{gap}");
    let spaces = error(&[], "", &[("HOOKLATCH_SECRET_SHOPIFY", "  ")]);
    assert!(spaces.contains("empty"), "{spaces}");
    let listed = error(&[], "[sources.refersion]\nsecrets = []\n", &[]);
    assert!(
        listed.contains("[sources.refersion]") && listed.contains("empty"),
        "{listed}"
    );
    let blank = error(
        &[],
        "[sources.shop]\npreset = \"shopify\"\nsecrets = [\"\"]\n",
        &[],
    );
    assert!(
        blank.contains("[sources.shop]") && blank.contains("empty"),
        "{blank}"
    );
    // Still fine: no secrets key at all, and the environment replacing the file's.
    let config = load(&[], file, &[("HOOKLATCH_SECRET_REFERSION", "new, old")]).unwrap();
    assert_eq!(
        config.sources.settings(&source("refersion")).secrets,
        ["new", "old"]
    );
}

#[test]
fn environment_secrets_are_validated_like_file_ones() {
    // Issue 8 item 3: this used to start and then answer every delivery 401.
    let err = error(&[], "", &[("HOOKLATCH_SECRET_ACME", "whsec_!!!")]);
    assert!(
        err.contains("HOOKLATCH_SECRET_ACME") && err.contains("whsec_"),
        "{err}"
    );
    let file = error(&[], "[sources.x]\nsecrets = [\"not base64!\"]", &[]);
    assert!(
        file.contains("[sources.x]") && file.contains("whsec_"),
        "{file}"
    );
    // A configured preset decides: a shopify source takes any text.
    let shop = "[sources.my-shop]\npreset = \"shopify\"\n";
    assert!(load(&[], shop, &[("HOOKLATCH_SECRET_MY_SHOP", "whsec_!!!")]).is_ok());
    let ok = load(
        &[],
        "",
        &[(
            "HOOKLATCH_SECRET_ACME",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )],
    );
    assert!(ok.is_ok());
    assert!(error(&[], "", &[("HOOKLATCH_SECRET_", "x")]).contains("source name"));
}

#[test]
fn a_secret_that_does_not_decode_is_named_by_its_setting_never_quoted() {
    // Issue 17 item 16: the error used to print the secret's first 6 characters.
    let secret = "Qz!xK9wV";
    let windows = |text: &str| {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(2)
            .map(|w| w.iter().collect::<String>())
            .filter(|w| text.contains(w.as_str()))
            .collect::<Vec<_>>()
    };
    let env = error(&[], "", &[("HOOKLATCH_SECRET_ACME", secret)]);
    assert!(env.contains("HOOKLATCH_SECRET_ACME"), "{env}");
    assert_eq!(windows(&env), Vec::<String>::new(), "{env}");
    let file = error(&[], &format!("[sources.x]\nsecrets = [\"{secret}\"]"), &[]);
    assert!(file.contains("[sources.x]"), "{file}");
    assert_eq!(windows(&file), Vec::<String>::new(), "{file}");
    assert!(error(&[], "", &[("HOOKLATCH_SECRET_acme", "x")]).contains("upper-cased"));
}

#[test]
fn zero_or_negative_timeouts_and_sizes_are_one_line_errors() {
    // Issue 8 item 5: a zero connect timeout panicked in r2d2; a zero store timeout
    // turned PostgreSQL's statement timeout off.
    for (key, variable) in [
        ("connect_timeout", "HOOKLATCH_CONNECT_TIMEOUT"),
        ("store_timeout", "HOOKLATCH_STORE_TIMEOUT"),
        ("body_timeout", "HOOKLATCH_BODY_TIMEOUT"),
        ("shutdown_grace", "HOOKLATCH_SHUTDOWN_GRACE"),
        ("forward_timeout", "HOOKLATCH_FORWARD_TIMEOUT"),
        ("forward_retry_initial", "HOOKLATCH_FORWARD_RETRY_INITIAL"),
        ("forward_retry_max", "HOOKLATCH_FORWARD_RETRY_MAX"),
        (
            "http2_keepalive_interval",
            "HOOKLATCH_HTTP2_KEEPALIVE_INTERVAL",
        ),
        (
            "http2_keepalive_timeout",
            "HOOKLATCH_HTTP2_KEEPALIVE_TIMEOUT",
        ),
    ] {
        for bad in ["0", "-1", "0.0"] {
            let env = error(&[], "", &[(variable, bad)]);
            assert!(
                env.starts_with(variable) && env.contains("positive"),
                "{env}"
            );
            let file = error(&[], &format!("{key} = {bad}"), &[]);
            assert!(
                file.contains(key) && file.contains("positive") && !file.contains('\n'),
                "{file}"
            );
        }
        let flag = error(&[&format!("--{}=0", key.replace('_', "-"))], "", &[]);
        assert!(flag.contains("positive") && !flag.contains('\n'), "{flag}");
    }
    for (key, variable) in [
        ("max_body_bytes", "HOOKLATCH_MAX_BODY_BYTES"),
        ("pool_size", "HOOKLATCH_POOL_SIZE"),
        ("forward_max_attempts", "HOOKLATCH_FORWARD_MAX_ATTEMPTS"),
        ("forward_concurrency", "HOOKLATCH_FORWARD_CONCURRENCY"),
        ("max_connections", "HOOKLATCH_MAX_CONNECTIONS"),
        ("max_requests", "HOOKLATCH_MAX_REQUESTS"),
    ] {
        assert!(error(&[], "", &[(variable, "0")]).contains("at least 1"));
        assert!(error(&[], &format!("{key} = 0"), &[]).contains("at least 1"));
        assert!(!error(&[], &format!("{key} = -3"), &[]).is_empty());
    }
    let order = error(
        &[],
        "forward_retry_initial = 10\nforward_retry_max = 5",
        &[],
    );
    assert!(order.contains("forward_retry_initial"), "{order}");
}

#[test]
fn secrets_are_validated_and_never_echoed() {
    let short = error(&[], "", &[("HOOKLATCH_ADMIN_TOKEN", "tooshort-secret")]);
    assert!(
        short.contains("16 characters") && !short.contains("tooshort"),
        "{short}"
    );
    let file = error(&[], "admin_token = \"tooshort-secret\"", &[]);
    assert!(
        file.contains("admin_token") && !file.contains("tooshort"),
        "{file}"
    );
    let forward = error(
        &[],
        "",
        &[("HOOKLATCH_FORWARD_SECRET", "whsec_!!!notbase64")],
    );
    assert!(
        forward.contains("whsec_ followed by base64") && !forward.contains("notbase64"),
        "{forward}"
    );
    let unprefixed = error(
        &[],
        "",
        &[(
            "HOOKLATCH_FORWARD_SECRET",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        )],
    );
    assert!(!unprefixed.contains("MfKQ9"), "{unprefixed}");
    // On the command line a secret would be visible in `ps`.
    let flag = error(&["--admin-token=0123456789abcdef"], "", &[]);
    assert!(
        flag.contains("HOOKLATCH_ADMIN_TOKEN") && !flag.contains("0123456789abcdef"),
        "{flag}"
    );
}

#[test]
fn ages_and_forward_urls() {
    assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_age("12h"), Ok(Duration::from_secs(43_200)));
    assert_eq!(parse_age("90d"), Ok(Duration::from_secs(90 * 86_400)));
    // Issue 17 item 15: seconds used to be refused.
    assert_eq!(parse_age("45s"), Ok(Duration::from_secs(45)));
    assert_eq!(parse_age("1h 30m"), Ok(Duration::from_secs(5400)));
    for bad in [
        "1M",
        "1y",
        "10ms",
        "5min",
        "0d",
        "90",
        "d",
        "-1d",
        "1.5h",
        "1w",
        "",
        "99999999999999999d",
    ] {
        assert!(parse_age(bad).is_err(), "{bad}");
    }
    let err = error(&[], "", &[("HOOKLATCH_PAYLOAD_RETENTION", "forever")]);
    assert!(
        err.contains("HOOKLATCH_PAYLOAD_RETENTION") && err.contains("90d"),
        "{err}"
    );

    for bad in ["ftp://x/y", "app.example/hook", "http://", "https:///path"] {
        let err = error(&[], &format!("[sources.shop]\nforward_to = {bad:?}"), &[]);
        assert!(err.contains("[sources.shop] forward_to"), "{bad}: {err}");
        let err = error(&[], "", &[("HOOKLATCH_FORWARD_TO_SHOP", bad)]);
        assert!(err.contains("HOOKLATCH_FORWARD_TO_SHOP"), "{bad}: {err}");
    }
    let err = error(
        &[],
        "",
        &[("HOOKLATCH_FORWARD_TO_SHOP", "ftp://u:hunter2@x/")],
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn per_source_variables_cannot_collide_with_settings() {
    // `HOOKLATCH_FORWARD_TO_TIMEOUT` (a source named `timeout`) and
    // `HOOKLATCH_FORWARD_TIMEOUT` (the setting) are different names by construction.
    let command = Cli::command();
    for arg in setting_args(&command) {
        let env = arg.get_env().unwrap().to_string_lossy().into_owned();
        assert!(
            !env.starts_with(SECRET_PREFIX) && !env.starts_with(FORWARD_TO_PREFIX),
            "{env}"
        );
    }
    let config = load(
        &[],
        "",
        &[
            ("HOOKLATCH_FORWARD_TIMEOUT", "3"),
            ("HOOKLATCH_FORWARD_TO_TIMEOUT", "http://a.example/"),
        ],
    )
    .unwrap();
    assert_eq!(config.forward.timeout, Duration::from_secs(3));
    assert_eq!(
        config.sources.forward_to(&source("timeout")),
        Some("http://a.example/")
    );
}

#[test]
fn off_loopback_sources_without_a_secret_refuse_unless_allowed() {
    use crate::sources::Unsigned;
    let toml = "[sources.open]\nallow_unsigned = true\n[sources.shut]\n";
    let local = load(&[], toml, &[]).unwrap();
    let policy = |config: &Config, name: &str| {
        config
            .sources
            .unsigned_policy(&config.sources.settings(&source(name)))
    };
    assert_eq!(
        policy(&local, "shut"),
        Unsigned::Accepted,
        "loopback keeps the quick start"
    );
    // The warning list names every preset, `standard` included (issue 8 item 2).
    let names: Vec<String> = local
        .sources
        .without_secret()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "github",
            "open",
            "refersion",
            "shopify",
            "shut",
            "standard",
            "stripe"
        ]
    );

    let exposed = load(&["--listen=0.0.0.0:8000"], toml, &[]).unwrap();
    assert!(exposed.sources.exposed());
    assert_eq!(policy(&exposed, "shut"), Unsigned::Refused);
    assert_eq!(policy(&exposed, "anything"), Unsigned::Refused);
    assert_eq!(policy(&exposed, "open"), Unsigned::Accepted);
    let ipv6 = load(&["--listen=[::1]:8000"], toml, &[]).unwrap();
    assert_eq!(policy(&ipv6, "shut"), Unsigned::Accepted);
    let allowed = load(
        &["--listen=0.0.0.0:8000"],
        toml,
        &[("HOOKLATCH_ALLOW_UNSIGNED", "true")],
    )
    .unwrap();
    assert_eq!(policy(&allowed, "shut"), Unsigned::Accepted);
    assert_eq!(policy(&allowed, "anything"), Unsigned::Accepted);
}

/// The keys `FileSource` accepts, read from serde's own "expected one of" message.
fn file_source_keys() -> Vec<String> {
    let err = toml::from_str::<FileSource>("__probe = 1")
        .unwrap_err()
        .message()
        .to_owned();
    let list = err
        .split("expected one of")
        .nth(1)
        .unwrap_or_else(|| panic!("{err}"));
    list.split(',')
        .map(|k| k.trim().trim_matches('`').to_owned())
        .collect()
}

#[test]
fn readme_table_matches_the_declaration() {
    let keys: Vec<&str> = SOURCE_KEYS.iter().map(|k| k.key).collect();
    assert_eq!(
        file_source_keys(),
        keys,
        "SOURCE_KEYS must list every [sources.<name>] key"
    );
    let expected = settings_table();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("| setting | flag |")
        .expect("README has the settings table");
    let table: Vec<&str> = readme[start..]
        .lines()
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert_eq!(
        table.join("\n"),
        expected,
        "README.md's settings table drifted from the declaration in src/config/declaration.rs; replace it with:\n{expected}\n"
    );
}

#[test]
fn help_names_the_environment_but_never_its_values() {
    let env = [(
        OsString::from("DATABASE_URL"),
        OsString::from("postgres://u:hunter2@h/db"),
    )];
    let Err(LoadError::Display(help)) = Cli::load(["hooklatch", "--help"], env) else {
        panic!("--help is displayed");
    };
    let text = help.render().to_string();
    assert!(
        text.contains("HOOKLATCH_LISTEN") && text.contains("--max-body-bytes"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let toml = "admin_token = \"AdminToken-0123456789\"\nforward_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n[sources.shop]\npreset = \"shopify\"\nsecrets = [\"FileSecret-1\"]\nforward_to = \"https://u:FwdPass@app.example/\"\n";
    let env = [(
        "HOOKLATCH_SECRET_ACME",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.toml");
    std::fs::write(&path, toml).unwrap();
    let args = [
        "hooklatch".to_owned(),
        format!("--config={}", path.display()),
    ];
    let env = env
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
    let (cli, config) = Cli::load(args, env).unwrap();
    let shown = format!(
        "{cli:?} {config:?} {:?}",
        config.sources.settings(&source("acme"))
    );
    for secret in [
        "AdminToken-0123456789",
        "MfKQ9r8",
        "FileSecret-1",
        "FwdPass",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}

#[test]
fn acme_domains_is_a_list_in_the_file_and_comma_separated_in_the_environment() {
    let from_file = load(&[], "acme_domains = [\"a.example\", \"B.example\"]", &[]).unwrap();
    let from_env = load(
        &[],
        "",
        &[("HOOKLATCH_ACME_DOMAINS", "a.example, b.example")],
    )
    .unwrap();
    for config in [from_file, from_env] {
        let Https::Acme(acme) = config.https else {
            panic!("ACME expected: {:?}", config.https)
        };
        assert_eq!(acme.domains, ["a.example", "b.example"]);
        assert_eq!(acme.directory, crate::config::LETS_ENCRYPT);
    }
    assert!(error(&["--tls-cert", "c.pem"], "", &[]).contains("tls_key is not"));
    assert!(
        error(
            &[
                "--tls-cert",
                "c.pem",
                "--tls-key",
                "k.pem",
                "--acme-domains",
                "a.example"
            ],
            "",
            &[]
        )
        .contains("acme_domains")
    );
    assert_eq!(load(&[], "", &[]).unwrap().https, Https::Off);
}
