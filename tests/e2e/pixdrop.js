// Runs the real pixdrop binary for the end-to-end tests: in a fresh temp dir, on a free port, with
// no redis.url so it starts its own redis-server, its output kept in a log shown on failure.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const READY_TIMEOUT_MS = 60_000;
// At the end of a test nothing runs, so pixdrop stops in well under a second; 20 s is generous.
const STOP_TIMEOUT_MS = 20_000;

export function binaryPath() {
  const configured = process.env.PIXDROP_BIN || 'target/debug/pixdrop';
  return path.resolve(repoRoot, configured);
}

/** A port nothing listens on now (the kernel's choice, released at once for pixdrop to take). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One pixdrop instance the tests own. `start` and `stop` may be called again on the same object:
 * the port and storage stay, so a restart looks to the page like a server that went away and came
 * back with its jobs (the embedded Redis keeps them in its AOF under the storage dir).
 */
export class Pixdrop {
  /** `env` adds settings (PIXDROP__SECTION__KEY) to the test's own. */
  constructor({ dir, port, args = ['serve'], env = {} }) {
    this.dir = dir;
    this.port = port;
    this.args = args;
    this.env = env;
    this.logPath = path.join(dir, 'pixdrop.log');
    this.child = null;
    this.exited = null;
  }

  static async create(options = {}) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pixdrop-e2e-'));
    const port = await freePort();
    const pixdrop = new Pixdrop({ dir, port, ...options });
    await pixdrop.start();
    return pixdrop;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(args = this.args) {
    const binary = binaryPath();
    if (!fs.existsSync(binary)) {
      throw new Error(`no pixdrop binary at ${binary}: build it (cargo build --bin pixdrop) or set PIXDROP_BIN`);
    }
    const env = { ...process.env, ...this.env };
    // The test's pixdrop must own a private redis-server, never share one from the environment.
    delete env.PIXDROP__REDIS__URL;
    env.PIXDROP__SERVER__BIND = `127.0.0.1:${this.port}`;
    env.PIXDROP__STORAGE__DIR = path.join(this.dir, 'uploads');
    env.RUST_LOG = env.RUST_LOG || 'info';
    env.NO_COLOR = '1';
    const log = fs.openSync(this.logPath, 'a');
    fs.writeSync(log, `\n==== pixdrop ${args.join(' ')} on :${this.port} ====\n`);
    const child = spawn(binary, args, { cwd: this.dir, env, stdio: ['ignore', log, log] });
    fs.closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
    });
    await this.waitReady(child);
  }

  async waitReady(child) {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let exited = null;
    this.exited.then((status) => {
      exited = status;
    });
    while (Date.now() < deadline) {
      if (exited) {
        throw new Error(`pixdrop exited before it was ready (${JSON.stringify(exited)})\n${this.log()}`);
      }
      try {
        const response = await fetch(`${this.url}/readyz`);
        if (response.status === 200) return;
      } catch {
        // Not listening yet.
      }
      await sleep(100);
    }
    child.kill('SIGKILL');
    throw new Error(`pixdrop was not ready within ${READY_TIMEOUT_MS} ms\n${this.log()}`);
  }

  /** SIGTERM, then insists on a clean exit (code 0) in time; kills it and throws otherwise. */
  async stop() {
    const child = this.child;
    if (!child) return;
    this.child = null;
    child.kill('SIGTERM');
    const timedOut = Symbol('timed out');
    let timer;
    const deadline = new Promise((resolve) => {
      timer = setTimeout(() => resolve(timedOut), STOP_TIMEOUT_MS);
    });
    const status = await Promise.race([this.exited, deadline]);
    clearTimeout(timer);
    if (status === timedOut) {
      child.kill('SIGKILL');
      await this.exited;
      throw new Error(`pixdrop did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM\n${this.log()}`);
    }
    if (status.code !== 0) {
      throw new Error(`pixdrop exited with ${JSON.stringify(status)} after SIGTERM\n${this.log()}`);
    }
  }

  /** Last resort for a failed test: no process outlives the run. */
  kill() {
    if (this.child) this.child.kill('SIGKILL');
    this.child = null;
  }

  log() {
    try {
      return `---- ${this.logPath} ----\n${fs.readFileSync(this.logPath, 'utf8')}`;
    } catch {
      return `(no log at ${this.logPath})`;
    }
  }

  /** Removes the temp dir; only after a pass, so a failure's files stay to look at. */
  cleanUp() {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
