//! Spawning the app for a test, and making the images the tests upload.

use std::io::Cursor;
use std::time::Duration;

use pixdrop::app::{Application, Role};
use pixdrop::config::Settings;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::support::{RedisProxy, TestRedis, quick_settings};

/// A running pixdrop with its own Redis and storage; stopped gracefully on `stop`, killed on drop.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub redis: TestRedis,
    /// Where the app's processes reach Redis: the server itself, or a proxy in front of it.
    pub redis_url: String,
    pub storage: tempfile::TempDir,
    process: Process,
}

/// One pixdrop process (an `Application` run on its own task), as a test starts and stops it.
pub struct Process {
    /// `http://127.0.0.1:PORT`, or empty for a worker-only process.
    pub address: String,
    /// Its authenticator, to reload tokens as SIGHUP would.
    pub auth: Option<std::sync::Arc<pixdrop::auth::Authenticator>>,
    /// `http://127.0.0.1:PORT/metrics` of its `metrics.bind` listener, or empty.
    pub metrics_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Process {
    pub async fn start(settings: &Settings, redis_url: &str, role: Role) -> Self {
        let app = Application::build(settings, redis_url, role)
            .await
            .expect("app builds");
        let address = app
            .port()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .unwrap_or_default();
        let auth = Some(app.authenticator());
        let metrics_url = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}/metrics"))
            .unwrap_or_default();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(app.run_until_stopped(async {
            let _ = rx.await;
        }));
        Self {
            address,
            auth,
            metrics_url,
            stop: Some(tx),
            running: Some(running),
        }
    }

    /// Stops gracefully, as SIGTERM would.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }
}

pub fn test_settings(storage: &std::path::Path) -> Settings {
    let mut settings = Settings::default();
    settings.server.bind = "127.0.0.1:0".into();
    settings.storage.dir = storage.to_path_buf();
    settings.queue = quick_settings();
    settings.workers.concurrency = Some(2);
    settings.workers.shutdown_grace_secs = 2;
    // Resyncs after a Redis restart within a test's patience.
    settings.websocket.resync_spread_ms = 200;
    settings
}

impl TestApp {
    pub async fn spawn(role: Role) -> Self {
        Self::spawn_with(role, |_| {}).await
    }

    pub async fn spawn_with(role: Role, tweak: impl FnOnce(&mut Settings)) -> Self {
        let redis = TestRedis::start();
        let url = redis.url();
        Self::spawn_on(role, redis, url, tweak).await
    }

    /// An app reaching its Redis through a proxy that can lose a reply.
    pub async fn spawn_behind_proxy(role: Role) -> (Self, RedisProxy) {
        let redis = TestRedis::start();
        let proxy = RedisProxy::start(redis.server.port().expect("tests listen on a port")).await;
        let app = Self::spawn_on(role, redis, proxy.url(), |_| {}).await;
        (app, proxy)
    }

    async fn spawn_on(
        role: Role,
        redis: TestRedis,
        redis_url: String,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let storage = tempfile::tempdir().unwrap();
        let mut settings = test_settings(storage.path());
        tweak(&mut settings);
        let mut app = Self {
            address: String::new(),
            client: reqwest::Client::new(),
            settings,
            redis,
            redis_url,
            storage,
            process: Process {
                address: String::new(),
                auth: None,
                metrics_url: String::new(),
                stop: None,
                running: None,
            },
        };
        app.start(role).await;
        app
    }

    /// Starts (again) a pixdrop process on the same Redis and storage.
    pub async fn start(&mut self, role: Role) {
        self.process = Process::start(&self.settings, &self.redis_url, role).await;
        if !self.process.address.is_empty() {
            self.address = self.process.address.clone();
        }
    }

    /// Another pixdrop process on the same Redis and storage, as a second instance would be.
    pub async fn sibling(&self, role: Role) -> Process {
        Process::start(&self.settings, &self.redis_url, role).await
    }

    /// Stops gracefully, as SIGTERM would.
    pub async fn stop(&mut self) {
        self.process.stop().await;
    }

    /// Puts these settings' tokens in force, as SIGHUP does.
    pub fn reload_auth(&self, settings: &Settings) {
        let auth = self.process.auth.as_ref().expect("a running process");
        auth.reload(&settings.auth).expect("reloads");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn upload(&self, files: Vec<(&str, &str, Vec<u8>)>) -> reqwest::Response {
        let mut form = Form::new();
        for (field, name, bytes) in files {
            form = form.part(
                field.to_owned(),
                Part::bytes(bytes).file_name(name.to_owned()),
            );
        }
        self.upload_form(form).await
    }

    /// `POST /upload` with a form the test built.
    pub async fn upload_form(&self, form: Form) -> reqwest::Response {
        let url = self.url("/upload");
        self.client.post(url).multipart(form).send().await.unwrap()
    }

    /// `POST /upload` with a body as it is, and the given Content-Type if any.
    pub async fn upload_raw(
        &self,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url("/upload")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.unwrap()
    }

    /// Uploads one JPEG as `photo.jpg`, expecting 202, and returns its job id.
    pub async fn upload_one(&self, bytes: Vec<u8>) -> String {
        let response = self.upload(vec![("file", "photo.jpg", bytes)]).await;
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        body["jobs"][0]["id"].as_str().unwrap().to_owned()
    }

    /// `DELETE /jobs/{id}`.
    pub async fn cancel(&self, id: &str) -> reqwest::Response {
        let url = self.url(&format!("/jobs/{id}"));
        self.client.delete(url).send().await.unwrap()
    }

    /// `POST /jobs/{id}/retry`.
    pub async fn retry(&self, id: &str) -> reqwest::Response {
        let url = self.url(&format!("/jobs/{id}/retry"));
        self.client.post(url).send().await.unwrap()
    }

    pub async fn job(&self, id: &str) -> Value {
        self.client
            .get(self.url(&format!("/jobs/{id}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Polls the job until it is in one of `states`.
    pub async fn wait_for(&self, id: &str, states: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.job(id).await;
            if states.contains(&job["state"].as_str().unwrap_or_default()) {
                return job;
            }
            assert!(tokio::time::Instant::now() < deadline, "job stuck: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Files under storage (relative paths), excluding the temp dir's and Redis's own.
    pub fn stored_files(&self) -> Vec<String> {
        let mut found = Vec::new();
        let root = self.storage.path();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    found.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        found.sort();
        found
    }
}

/// A JPEG of the given size with a gradient, so it compresses like a photo.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 255 / width) as u8, (y * 255 / height) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, _| {
        image::Rgba([200, 10, 10, (x % 256) as u8])
    });
    let mut out = Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}
