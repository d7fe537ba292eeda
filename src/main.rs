//! The `pixdrop` binary: parse the command line, load settings, set up logging, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pixdrop::config::Settings;
use pixdrop::queue::Queue;
use pixdrop::redis_connect::{RedisTarget, redact};

#[derive(Parser)]
#[command(version, about = "Photos in, web-ready WebP variants out.")]
struct Cli {
    /// Settings file (default: ./config.toml if present). PIXDROP__SECTION__KEY variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to Redis (or start the embedded one), check that it suits the queue, and report the
    /// queue's depth.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pixdrop=info".into()),
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
    let settings = Settings::load(cli.config.as_deref())?;
    // Started before the runtime, on the main thread: the embedded redis-server is tied to this
    // thread's life (see redis_server.rs).
    let redis = RedisTarget::resolve(&settings)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Command::Check => check(&settings, &redis.url).await,
        }
    })
}

async fn check(settings: &Settings, url: &str) -> anyhow::Result<()> {
    let queue = Queue::connect(url, &settings.redis, &settings.queue)?;
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
