//! The `pixdrop` binary: parse the command line, load settings, set up logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pixdrop::app::{Application, Role, connect_queue};
use pixdrop::auth::tokens::{new_token, token_digest};
use pixdrop::config::Settings;
use pixdrop::queue::Subject;
use pixdrop::redis_connect::{RedisTarget, redact};
use pixdrop::signals::Signals;

#[derive(Parser)]
#[command(version, about = "Photos in, web-ready WebP variants out.")]
struct Cli {
    /// Settings file (default: ./config.toml if present). PIXDROP__SECTION__KEY variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the worker pool (the default).
    Serve {
        /// HTTP only: leave the jobs to `pixdrop worker` processes.
        #[arg(long)]
        no_workers: bool,
    },
    /// Run workers only, against the same Redis as the HTTP processes.
    Worker,
    /// Check that Redis suits the queue and report the queue's depth.
    Check,
    /// API tokens for `auth.mode = "tokens"`.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a fresh random token for SUBJECT and the config lines that let it in.
    New {
        /// Who the token signs in as: the owner of what it uploads.
        subject: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pixdrop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Tunes glibc's allocator for a job's pixel buffers (tens of MB each, freed when the job ends):
/// kept in the heap for the next job rather than handed back to the kernel, which would fault in
/// and zero fresh pages for every decode. Two arenas instead of one per thread make the blocking
/// threads reuse each other's freed buffers. Measured side by side on the `wide` photos: 6% less
/// CPU, the system time down by about 40% (README, Performance). The price is resident memory
/// staying near its peak; past the pipeline's memory budget, freed memory is handed back.
fn keep_freed_memory(budget_bytes: u64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const MMAP_THRESHOLD_MAX: libc::c_int = 32 << 20;
        let trim = libc::c_int::try_from(budget_bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets the allocator's parameters; any value is accepted or refused.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX);
            libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = budget_bytes;
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Token {
        action: TokenCommand::New { subject },
    }) = &cli.command
    {
        return print_new_token(subject);
    }
    // Before any thread starts, so every thread leaves the stop signals to it.
    let signals = Signals::install()?;
    let settings = Settings::load(cli.config.as_deref())?;
    settings.log.install();
    keep_freed_memory(settings.pipeline.memory_budget_bytes);
    let redis = RedisTarget::resolve(&settings.redis, &settings.storage.dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let role = match cli.command.unwrap_or(Command::Serve { no_workers: false }) {
            Command::Serve { no_workers: false } => Role::All,
            Command::Serve { no_workers: true } => Role::HttpOnly,
            Command::Worker => Role::WorkerOnly,
            Command::Check => return check(&settings, &redis.url).await,
            Command::Token { .. } => unreachable!("answered before start-up"),
        };
        let app = Application::build(&settings, &redis.url, role).await?;
        tokio::spawn(reload_on_hangup(
            signals.hangups(),
            cli.config.clone(),
            app.authenticator(),
        ));
        if let Some(port) = app.port() {
            let host = settings
                .server
                .bind
                .rsplit_once(':')
                .map_or("127.0.0.1", |(h, _)| h);
            println!("pixdrop is running: http://{host}:{port}/");
        }
        let lost = redis.lost();
        app.run_until_stopped(async {
            tokio::select! {
                () = signals.first() => {}
                () = lost => {}
            }
        })
        .await?;
        if redis.is_lost() {
            anyhow::bail!("stopped: the embedded redis-server could not be kept running");
        }
        Ok(())
    });
    drop(runtime);
    // Last, once every job is finished or handed back: the embedded server stops if this
    // process runs it (another process using it then takes it over).
    drop(redis);
    result
}

fn print_new_token(subject: &str) -> anyhow::Result<()> {
    Subject::parse(subject).map_err(|e| anyhow::anyhow!("cannot use {subject:?}: {e}"))?;
    let token = new_token();
    println!(
        "A new token for {subject}. It is shown this once: store it as you would a password.\n\n\
         {token}\n\n\
         Let it in: add these lines to config.toml (with auth.mode = \"tokens\"), then restart\n\
         pixdrop or send it SIGHUP. Remove them (and SIGHUP) to revoke it.\n\n\
         [[auth.tokens]]\n\
         subject = \"{subject}\"\n\
         sha256 = \"{}\"",
        token_digest(&token)
    );
    Ok(())
}

/// On each SIGHUP, reads the settings again and puts their tokens in force. Settings that fail
/// their checks change nothing.
async fn reload_on_hangup(
    mut hangups: tokio::sync::watch::Receiver<u64>,
    config: Option<PathBuf>,
    auth: std::sync::Arc<pixdrop::auth::Authenticator>,
) {
    while hangups.changed().await.is_ok() {
        let reloaded = Settings::load(config.as_deref()).and_then(|s| auth.reload(&s.auth));
        if let Err(e) = reloaded {
            tracing::error!(error = %format!("{e:#}"), "SIGHUP: settings not reloaded; the ones in force stay");
        }
    }
}

async fn check(settings: &Settings, url: &str) -> anyhow::Result<()> {
    let queue = connect_queue(settings, url)?;
    let report = queue.check_server().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot use the Redis at {}: {e} (check redis.url, or unset it to let pixdrop start its own redis-server)",
            redact(url)
        )
    })?;
    for warning in &report.warnings {
        tracing::warn!("{warning}");
    }
    let depths = queue.depths().await?;
    println!(
        "{} {} at {}: ok ({} warnings); {} jobs waiting, {} waiting to retry",
        report.server,
        report.version,
        redact(url),
        report.warnings.len(),
        depths.waiting,
        depths.retrying
    );
    Ok(())
}
