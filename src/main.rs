//! The `pixdrop` binary: parse the command line, load settings, set up logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pixdrop::app::{Application, Role, connect_queue};
use pixdrop::config::Settings;
use pixdrop::redis_connect::{RedisTarget, redact};
use pixdrop::signals::StopSignals;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,actix_server=warn".into()),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pixdrop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Before any thread starts, so every thread leaves the stop signals to it.
    let signals = StopSignals::install()?;
    let settings = Settings::load(cli.config.as_deref())?;
    let redis = RedisTarget::resolve(&settings.redis, &settings.storage.dir)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        let role = match cli.command.unwrap_or(Command::Serve { no_workers: false }) {
            Command::Serve { no_workers: false } => Role::All,
            Command::Serve { no_workers: true } => Role::HttpOnly,
            Command::Worker => Role::WorkerOnly,
            Command::Check => return check(&settings, &redis.url).await,
        };
        let app = Application::build(&settings, &redis.url, role).await?;
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
