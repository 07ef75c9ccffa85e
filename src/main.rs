//! The binary: read the settings, start the server, stop it on SIGINT/SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use sipgateio_callevents::app::App;
use sipgateio_callevents::config::{Config, VARIABLES, default_of};
use sipgateio_callevents::doctor;
use sipgateio_callevents::health;
use sipgateio_callevents::journal::history;
use sipgateio_callevents::output::EventSink;
use sipgateio_callevents::register;
use sipgateio_callevents::routes;
use sipgateio_callevents::rules::commands;
use sipgateio_callevents::server::{Server, ServerOptions, Stopper};
use sipgateio_callevents::simulate;
use sipgateio_callevents::warnings;

/// How long requests in progress get to finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long queued event lines then get to reach stdout.
const STDOUT_GRACE: Duration = Duration::from_secs(1);

/// How long events still queued for the call journal then get to be written.
const JOURNAL_GRACE: Duration = Duration::from_secs(5);

/// A reason to exit early: the exit code and the one line that explains it.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A bad argument or setting: exit code 2.
    fn usage(message: impl ToString) -> Failure {
        Failure {
            code: 2,
            message: message.to_string(),
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("sipgateio-callevents: error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run() -> Result<(), Failure> {
    if let Some(arg) = std::env::args().nth(1) {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(());
            }
            "-V" | "--version" => {
                println!("{}", version());
                return Ok(());
            }
            "health" => return health_command(),
            "register" => return register_command(),
            "doctor" => return doctor_command(),
            "calls" => return calls_command(),
            "simulate" => {
                let webhook_url = || {
                    settings()
                        .map(|config| config.webhook_url.to_string())
                        .map_err(|failure| failure.message)
                };
                return simulate::main(std::env::args().skip(2), webhook_url).map_err(|error| {
                    Failure {
                        code: error.exit_code(),
                        message: error.message,
                    }
                });
            }
            "check-rules" => {
                let args: Vec<String> = std::env::args().skip(2).collect();
                if asks_for_help(&args) {
                    print!("{}", commands::CHECK_RULES_USAGE);
                    return Ok(());
                }
                let config = settings()?;
                print!(
                    "{}",
                    commands::check_rules(&args, &config).map_err(Failure::usage)?
                );
                return Ok(());
            }
            "answer" => {
                let args: Vec<String> = std::env::args().skip(2).collect();
                if asks_for_help(&args) {
                    print!("{}", commands::ANSWER_USAGE);
                    return Ok(());
                }
                let config = settings()?;
                let answered = commands::answer(&args, &config, std::time::SystemTime::now())
                    .map_err(Failure::usage)?;
                eprintln!("{}", answered.note);
                print!("{}", answered.xml);
                return Ok(());
            }
            other => {
                return Err(Failure::usage(format!(
                    "unknown argument {other:?}; the server takes its settings from the environment, see --help"
                )));
            }
        }
    }

    let config = settings()?;
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or(default_of("RUST_LOG")),
    )
    .init();
    check_log_filter();
    for retired in &config.retired_settings {
        log::warn!(
            "{} is set but no longer used: {}",
            retired.name,
            retired.replaced_by
        );
    }

    let app = App::from_config(&config).map_err(Failure::usage)?;
    let options = ServerOptions {
        metrics: app.metrics(),
        ..ServerOptions::new(&config)
    };
    for warning in [
        warnings::plain_http(&config.webhook_url),
        warnings::other_port(&config.webhook_url, config.listen_addr),
    ]
    .into_iter()
    .flatten()
    {
        log::warn!("{warning}");
    }
    let app = Arc::new(app);
    sweep_calls(
        Arc::clone(&app),
        SWEEP_EVERY.min(Duration::from_secs(config.call_ttl_seconds)),
    )?;
    // Before listening: once "listening" is logged, a stop signal must stop gracefully, and
    // a flood of connections must not take the descriptors the handlers need.
    let signals = catch_signals(config.call_rules_file.is_some())?;
    let sink = EventSink::stdout(config.event_format);
    let routed = Arc::clone(&app);
    let server = Server::start(
        &options,
        Arc::new(move |request| routed.route(request)),
        sink.clone(),
    )
    .map_err(Failure::usage)?;
    handle_signals(signals, server.stopper(), Arc::clone(&app))?;
    log::info!(
        "listening on {} for up to {} connections at once; set the sipgate console's webhook URL to {}",
        server.local_addr(),
        server.max_connections(),
        config.webhook_url.callback(routes::NEW_CALL)
    );

    if config.register_on_start {
        register_in_background(config.clone());
    }

    let served = server.wait(SHUTDOWN_GRACE);
    app.close_journal(JOURNAL_GRACE);
    // Also after a listener failure: what was accepted is printed before we go (or logged,
    // if stdout does not take it in time).
    sink.finish(STDOUT_GRACE);
    served.map_err(|error| Failure {
        code: 1,
        message: error.to_string(),
    })?;
    log::info!("stopped");
    Ok(())
}

/// How often calls past `CALL_TTL_SECONDS` are forgotten, and those that never had an
/// answer or a hangup event logged (more often with a shorter `CALL_TTL_SECONDS`).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

fn sweep_calls(app: Arc<App>, every: Duration) -> Result<(), Failure> {
    std::thread::Builder::new()
        .name("calls".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                app.sweep_calls(std::time::Instant::now());
            }
        })
        .map_err(|e| Failure::usage(format!("cannot start the calls thread: {e}")))?;
    Ok(())
}

/// `health`: exit 0 when the server answers `/health` with 200. Every failure exits 1, a
/// bad setting too: a container runtime reserves exit code 2 of a health check.
fn health_command() -> Result<(), Failure> {
    let unhealthy = |message: String| Failure { code: 1, message };
    let args: Vec<String> = std::env::args().skip(2).collect();
    match args.first().map(String::as_str) {
        None => {}
        Some("-h" | "--help") => {
            print!("{}", health::USAGE);
            return Ok(());
        }
        Some(other) => {
            return Err(unhealthy(format!(
                "health takes no arguments, got {other:?}; it reads LISTEN_ADDR and WEBHOOK_URL like the server (see health --help)"
            )));
        }
    }
    let config = settings().map_err(|failure| unhealthy(failure.message))?;
    let answered = health::check(&config, health::TIMEOUT).map_err(unhealthy)?;
    println!("healthy: {answered}");
    Ok(())
}

fn doctor_command() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    if asks_for_help(&args) {
        print!("{}", doctor::USAGE);
        return Ok(());
    }
    if let Some(other) = args.first() {
        return Err(Failure::usage(format!(
            "doctor takes no arguments, got {other:?}; it reads the settings like the server (see doctor --help)"
        )));
    }
    let config = settings()?;
    let ssl_cert_file = std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|path| !path.is_empty());
    let checks = doctor::run(&config, ssl_cert_file.as_deref(), &mut |check| {
        println!("{check}");
    })
    .map_err(Failure::usage)?;
    let failures = checks
        .iter()
        .filter(|check| check.outcome == doctor::Outcome::Failed)
        .count();
    if failures > 0 {
        return Err(Failure {
            code: 1,
            message: format!("{failures} check(s) failed; sipgate cannot deliver calls yet"),
        });
    }
    println!("sipgate can reach this server at {}", config.webhook_url);
    Ok(())
}

/// `calls`: the call history from the journal.
fn calls_command() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    if asks_for_help(&args) {
        print!("{}", history::USAGE);
        return Ok(());
    }
    let options = history::Options::from_args(&args).map_err(Failure::usage)?;
    let config = settings()?;
    let file = match (&options.file, &config.call_log) {
        (Some(file), _) => file.clone(),
        (None, Some(call_log)) => call_log.path.clone(),
        (None, None) => {
            return Err(Failure::usage(
                "no call journal to read: set CALL_LOG_FILE (in .env or the environment) as the server has it, or pass --file PATH",
            ));
        }
    };
    let shown = history::show(&options, &file, &config.timezone, jiff::Timestamp::now())
        .map_err(|message| Failure { code: 1, message })?;
    if history::is_empty(&shown, &options) {
        // On stderr, so that json and csv output stays parseable.
        eprintln!("{}", history::nothing_found(&options, &file));
    }
    print!("{shown}");
    Ok(())
}

fn register_command() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    if asks_for_help(&args) {
        print!("{}", register::USAGE);
        return Ok(());
    }
    let targets = register::Targets::from_args(&args).map_err(Failure::usage)?;
    let config = settings()?;
    let registered =
        register::register(&config, targets, register::TIMEOUT).map_err(|error| Failure {
            code: error.exit_code(),
            message: error.to_string(),
        })?;
    println!("{registered}");
    Ok(())
}

/// `REGISTER_ON_START`: sets the account's URLs beside the starting server, for tunnels
/// whose address changes each time. A failure is logged; the server serves on.
fn register_in_background(config: Config) {
    let started = std::thread::Builder::new()
        .name("register".into())
        .spawn(move || {
            match register::register(&config, register::Targets::BOTH, register::TIMEOUT) {
                Ok(registered) => log::info!(
                    "REGISTER_ON_START: sipgate.io URLs set; {}",
                    registered.to_string().replace('\n', "; ")
                ),
                Err(error) => log::error!(
                    "REGISTER_ON_START: the sipgate.io URLs were not set, the server serves on: {error}"
                ),
            }
        });
    if let Err(error) = started {
        log::error!("REGISTER_ON_START: cannot start the register thread: {error}");
    }
}

/// The version and the target triple the binary was built for (from build.rs).
fn version() -> String {
    format!(
        "sipgateio-callevents {} ({})",
        env!("CARGO_PKG_VERSION"),
        env!("SIPGATEIO_CALLEVENTS_TARGET")
    )
}

/// The settings, from the environment and the working directory's `.env`.
fn settings() -> Result<Config, Failure> {
    // Only the working directory's .env, not one found in a parent directory.
    if let Err(error) = dotenvy::from_path(".env") {
        if !error.not_found() {
            return Err(Failure::usage(format!(
                "cannot use .env in the working directory: {error}; lines must read NAME=value"
            )));
        }
    }
    let config = Config::from_env().map_err(Failure::usage)?;
    routes::check_base(&config.webhook_url).map_err(Failure::usage)?;
    Ok(config)
}

/// Whether a subcommand's arguments ask for its help.
fn asks_for_help(args: &[String]) -> bool {
    args.iter().any(|arg| arg == "-h" || arg == "--help")
}

/// A `RUST_LOG` that lets no line of this program through (a typo such as `verbose`, which
/// env_logger takes for the name of a module) hides even the line saying where the server
/// listens; said on stderr, as the log cannot say it.
fn check_log_filter() {
    let Ok(filter) = std::env::var("RUST_LOG") else {
        return;
    };
    if filter.trim().eq_ignore_ascii_case("off")
        || log::log_enabled!(target: "sipgateio_callevents", log::Level::Error)
    {
        return;
    }
    eprintln!(
        "sipgateio-callevents: warning: RUST_LOG={filter:?} lets no log line of this program through, not even errors; \
         use error, warn, info or debug (or leave it unset for info), or off to silence the log on purpose"
    );
}

/// Catches SIGINT and SIGTERM from here on, and SIGHUP when there are rules to reload
/// (otherwise it keeps ending the process, as when its terminal closes);
/// [`handle_signals`] acts on them.
fn catch_signals(reloadable: bool) -> Result<Signals, Failure> {
    let mut wanted = vec![SIGINT, SIGTERM];
    if reloadable {
        wanted.push(SIGHUP);
    }
    Signals::new(wanted)
        .map_err(|e| Failure::usage(format!("cannot install the signal handlers: {e}")))
}

/// SIGHUP reloads the rules. The first SIGINT or SIGTERM stops the server gracefully; a
/// second one exits at once.
fn handle_signals(mut signals: Signals, stopper: Stopper, app: Arc<App>) -> Result<(), Failure> {
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            for signal in signals.forever() {
                if signal == SIGHUP {
                    match app.reload_rules() {
                        Some(Ok(summary)) => log::info!("reloaded the call rules: {summary}"),
                        Some(Err(error)) => {
                            log::error!(
                                "kept the call rules in use; the new file is refused: {error}"
                            );
                        }
                        None => {}
                    }
                } else if !stopping {
                    stopping = true;
                    log::info!("stopping: answering requests in progress, refusing new ones");
                    stopper.stop();
                } else {
                    log::warn!("second stop signal: exiting now");
                    std::process::exit(130);
                }
            }
        })
        .map_err(|e| Failure::usage(format!("cannot start the signal thread: {e}")))?;
    Ok(())
}

fn usage() -> String {
    let mut text = format!(
        "{}\n\
         Receives sipgate.io call-event webhooks: answers newCall with XML that subscribes to\n\
         answer and hangup, and prints one line per event on stdout (logs go to stderr).\n\n\
         Usage: sipgateio-callevents [--help | --version]\n\
         \x20      sipgateio-callevents simulate [URL] [options]   play a call against a running\n\
         \x20      server the way sipgate would (see simulate --help)\n\
         \x20      sipgateio-callevents check-rules [FILE]   check a call rules file and show how\n\
         \x20      it is understood (FILE: CALL_RULES_FILE)\n\
         \x20      sipgateio-callevents answer --from N --to N [--direction in|out] [--user NAME]\n\
         \x20      [--at TIME]   print the XML the call rules give such a newCall\n\
         \x20      sipgateio-callevents health   exit 0 if the server on this machine answers\n\
         \x20      GET /health with 200, else 1 (a container's HEALTHCHECK; see health --help)\n\
         \x20      sipgateio-callevents register [--incoming] [--outgoing]   set the account's\n\
         \x20      sipgate.io URLs to WEBHOOK_URL/new-call (see register --help)\n\
         \x20      sipgateio-callevents doctor   check that sipgate can reach this server at\n\
         \x20      WEBHOOK_URL (see doctor --help)\n\
         \x20      sipgateio-callevents calls [--since 24h] [--missed] [--format table|json|csv]\n\
         \x20      the call history from CALL_LOG_FILE (see calls --help)\n\n\
         Routes (under WEBHOOK_URL's path): POST /new-call, /on-answer, /on-hangup, /on-dtmf; GET /health\n\n\
         Settings, from the environment or a .env file in the working directory:\n",
        version()
    );
    for variable in VARIABLES {
        text.push_str(&format!(
            "  {:<28} {}\n  {:<28} default: {}\n",
            variable.name, variable.meaning, "", variable.default
        ));
    }
    text
}
