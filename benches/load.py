#!/usr/bin/env python3
"""pixdrop beside the Node stack (Express + Multer + BullMQ + Sharp), end to end, in one run.

Starts a redis-server for each (AOF on, fsync every second), pixdrop (release build) and the
Node stack's server and worker (concurrency 2, as its README runs it), then uploads a folder of
photos to each with the same number in flight, rotating which goes first in each round. Every
upload is timed from its first byte sent to its job reading completed (both polled every 20 ms).
Prints, per stack and round: images/s, p50 and p99 upload-to-done, output bytes, CPU time per
image (the stack's processes, and its Redis apart); then the ratios.
With --quality, each variant is also compared with a reference resize of its original (Pillow's
Lanczos after the EXIF orientation): PSNR in dB, higher is closer.

    cargo build --release
    benches/photos.sh                          # builds benches/photos/{nature,wide} once
    benches/load.py benches/photos/nature --repeat 2
    benches/load.py benches/photos/wide --quality
    benches/load.py benches/photos/nature --also before=/tmp/pixdrop-old   # an older build too

Both stacks make the same variants: longest side 320 and 1280, WebP quality 80, no upscaling.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLL_SECS = 0.02
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited early (status {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not listen on port {port} within {timeout} s")


class Processes:
    """Everything started here, stopped on exit whatever happens."""

    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, name, argv, env=None, cwd=None):
        log = open(self.work / f"{name}.log", "wb")
        proc = subprocess.Popen(
            argv, env={**os.environ, **(env or {})}, cwd=cwd, stdout=log, stderr=log
        )
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def cpu_seconds(pids):
    """User + system CPU time the processes have used so far, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def start_redis(procs, name):
    port = free_port()
    data = procs.work / name
    data.mkdir()
    proc = procs.start(
        name,
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
         "--maxmemory-policy", "noeviction"],
    )
    wait_for_port(port, name, proc)
    return port, proc.pid


def multipart(field, filename, data):
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
        f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + data + tail, f"multipart/form-data; boundary={boundary}"


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class Stack:
    """What both stacks share: a multipart upload answered 202 with a job id, and a job view
    polled until its state reads completed. Each says its form field, where the id is and how a
    failure reads."""

    field = "file"

    def upload(self, path, data):
        body, kind = multipart(self.field, path.name, data)
        status, answer = request(self.port, "POST", "/upload", body, {"Content-Type": kind})
        if status != 202:
            raise RuntimeError(f"{self.name} answered {status}: {answer[:300]!r}")
        return self.job_id(json.loads(answer))

    def state(self, job):
        status, answer = request(self.port, "GET", f"/jobs/{job}")
        view = json.loads(answer)
        if view["state"] == "failed":
            raise RuntimeError(f"{self.name} job {job} failed: {view.get('error')}")
        return view["state"] == "completed", view


class Pixdrop(Stack):
    def __init__(self, procs, binary, name="pixdrop"):
        self.name = name
        self.redis, redis_pid = start_redis(procs, f"redis-{name}")
        self.port = free_port()
        self.dir = procs.work / f"{name}-data"
        self.dir.mkdir()
        env = {
            "PIXDROP__SERVER__BIND": f"127.0.0.1:{self.port}",
            "PIXDROP__REDIS__URL": f"redis://127.0.0.1:{self.redis}/0",
            "PIXDROP__STORAGE__DIR": str(self.dir),
            "RUST_LOG": "warn",
        }
        # Its own working directory, so no config.toml is picked up: the built-in defaults.
        proc = procs.start(name, [str(binary)], env=env, cwd=procs.work)
        wait_for_port(self.port, name, proc)
        self.pids = [proc.pid]
        self.redis_pids = [redis_pid]

    @staticmethod
    def job_id(answer):
        return answer["jobs"][0]["id"]

    def outputs(self, job, view):
        """(variant bytes, variant files) of a completed job."""
        files = []
        for variant in view["variants"]:
            status, data = request(self.port, "GET", variant["url"])
            files.append((variant["name"], data))
        return files


class NodeStack(Stack):
    name = "node+sharp"
    field = "media"

    def __init__(self, procs, seed):
        self.redis, redis_pid = start_redis(procs, "redis-node")
        self.port = free_port()
        self.dir = procs.work / "node-uploads"
        self.dir.mkdir()
        if not (seed / "node_modules").is_dir():
            copy = procs.work / "node-seed"
            shutil.copytree(seed, copy)
            subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"],
                           cwd=copy, check=True)
            seed = copy
        env = {"REDIS_PORT": str(self.redis), "PORT": str(self.port),
               "UPLOAD_DIR": str(self.dir), "CONCURRENCY": "2"}
        server = procs.start("node-server", ["node", "server.js"], env=env, cwd=seed)
        worker = procs.start("node-worker", ["node", "worker.js"], env=env, cwd=seed)
        wait_for_port(self.port, "the Node server", server)
        self.pids = [server.pid, worker.pid]
        self.redis_pids = [redis_pid]

    @staticmethod
    def job_id(answer):
        return answer["jobId"]

    def outputs(self, job, view):
        data = subprocess.run(
            ["redis-cli", "-p", str(self.redis), "HGET", f"bull:media-processing:{job}", "data"],
            capture_output=True, check=True, text=True).stdout
        stored = Path(json.loads(data)["path"])
        return [(name, Path(f"{stored}.{name}.webp").read_bytes()) for name in ("thumb", "large")]


def run(stack, photos, in_flight):
    """Uploads every photo, `in_flight` at a time; returns per job (start, end, id, view, bytes)."""
    todo = list(enumerate(photos))
    lock = threading.Lock()
    done = []
    errors = []

    def client():
        while True:
            with lock:
                if not todo or errors:
                    return
                _, (path, data) = todo.pop(0)
            try:
                start = time.monotonic()
                job = stack.upload(path, data)
                while True:
                    finished, view = stack.state(job)
                    if finished:
                        break
                    time.sleep(POLL_SECS)
                elapsed = time.monotonic() - start
                with lock:
                    done.append((start, start + elapsed, job, view, data))
            except Exception as e:  # noqa: BLE001 - reported below, and the run stops
                with lock:
                    errors.append(f"{path.name}: {e}")

    threads = [threading.Thread(target=client) for _ in range(in_flight)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"{stack.name}: {errors[0]}")
    return done


def percentile(values, share):
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarise(stack, done):
    first = min(entry[0] for entry in done)
    last = max(entry[1] for entry in done)
    latencies = [end - start for start, end, *_ in done]
    out_bytes = sum(len(data) for _, _, job, view, _ in done
                    for _, data in stack.outputs(job, view))
    return {
        "images_per_s": len(done) / (last - first),
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "out_bytes": out_bytes,
    }


def psnr_of(stack, done):
    """Mean PSNR (dB) of each variant against Pillow's Lanczos resize of its original."""
    try:
        import numpy as np
        from PIL import Image, ImageOps
    except ImportError:
        sys.exit("--quality needs Pillow and numpy: python3 -m pip install pillow numpy")
    import io

    scores = []
    for _, _, job, view, uploaded in done:
        original = ImageOps.exif_transpose(Image.open(io.BytesIO(uploaded)))
        mode = "RGBA" if "A" in original.getbands() else "RGB"
        original = original.convert(mode)
        for _, data in stack.outputs(job, view):
            variant = Image.open(io.BytesIO(data)).convert(mode)
            reference = original.resize(variant.size, Image.LANCZOS)
            a = np.asarray(variant, dtype=np.float64)
            b = np.asarray(reference, dtype=np.float64)
            mse = float(((a - b) ** 2).mean())
            scores.append(99.0 if mse == 0 else 10 * np.log10(255 * 255 / mse))
    return sum(scores) / len(scores)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders of photos")
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="runs of each stack, alternating")
    parser.add_argument("--repeat", type=int, default=1, help="upload the set this many times")
    parser.add_argument("--same-bytes", action="store_true",
                        help="repeats within a round upload identical bytes (measures reuse); "
                             "by default every upload is bytes never seen before")
    parser.add_argument("--quality", action="store_true", help="report PSNR against Pillow")
    parser.add_argument("--pixdrop", type=Path, default=ROOT / "target/release/pixdrop")
    parser.add_argument("--node-seed", type=Path, default=ROOT.parent / "shared/peers/node-seed")
    parser.add_argument("--no-node", action="store_true",
                        help="pixdrop alone (to profile it); no ratios")
    parser.add_argument("--also", action="append", default=[], metavar="NAME=BINARY",
                        help="another pixdrop build to measure in the same run (an older one)")
    args = parser.parse_args()

    paths = sorted(p for folder in args.folders for p in folder.iterdir()
                   if p.suffix.lower() in PHOTO_SUFFIXES)
    if not paths:
        sys.exit("no photos in " + ", ".join(map(str, args.folders)))
    if not args.pixdrop.is_file():
        sys.exit(f"{args.pixdrop} is missing: cargo build --release")
    originals = [(p, p.read_bytes()) for p in paths]

    def photos_for(round_):
        """The uploads of a round. Each copy gets a trailer after the image's end (which every
        decoder ignores) naming the round and copy, so no upload is bytes seen in an earlier
        round, nor, unless --same-bytes, in this one: pixdrop reuses the variants of bytes it has
        processed, and a benchmark of processing must not measure that by accident."""
        return [(p, data + f"\nround {round_} copy {0 if args.same_bytes else copy}".encode())
                for copy in range(args.repeat) for p, data in originals]

    photos = photos_for(0)

    with tempfile.TemporaryDirectory(prefix="pixdrop-load-") as tmp:
        procs = Processes(Path(tmp))
        try:
            stacks = [] if args.no_node else [NodeStack(procs, args.node_seed.resolve())]
            stacks.append(Pixdrop(procs, args.pixdrop))
            for extra in args.also:
                name, _, binary = extra.partition("=")
                stacks.append(Pixdrop(procs, Path(binary), name))
            print(f"{len(photos)} uploads ({len(paths)} photos x {args.repeat}), "
                  f"{args.in_flight} in flight, {os.cpu_count()} cores")
            results = {s.name: [] for s in stacks}
            for round_ in range(args.rounds):
                order = stacks[round_ % len(stacks):] + stacks[:round_ % len(stacks)]
                photos = photos_for(round_)
                for stack in order:
                    cpu = cpu_seconds(stack.pids), cpu_seconds(stack.redis_pids)
                    done = run(stack, photos, args.in_flight)
                    figures = summarise(stack, done)
                    figures["cpu_ms"] = (cpu_seconds(stack.pids) - cpu[0]) * 1000 / len(done)
                    figures["redis_cpu_ms"] = (
                        (cpu_seconds(stack.redis_pids) - cpu[1]) * 1000 / len(done))
                    if args.quality:
                        figures["psnr"] = psnr_of(stack, done)
                    results[stack.name].append(figures)
                    quality = f"  PSNR {figures['psnr']:.2f} dB" if "psnr" in figures else ""
                    print(f"round {round_ + 1} {stack.name:>10}: "
                          f"{figures['images_per_s']:6.2f} images/s  "
                          f"p50 {figures['p50']:6.2f} s  p99 {figures['p99']:6.2f} s  "
                          f"out {figures['out_bytes'] / 1e6:7.2f} MB  "
                          f"CPU/image {figures['cpu_ms']:5.0f} ms "
                          f"(+ Redis {figures['redis_cpu_ms']:4.1f} ms){quality}", flush=True)
        finally:
            procs.stop()

    if args.no_node:
        return
    node = results.pop("node+sharp")
    mean = lambda runs, key: statistics.mean(r[key] for r in runs)  # noqa: E731
    for name, runs in results.items():
        print(f"{name} / node: images/s {mean(runs, 'images_per_s') / mean(node, 'images_per_s'):.2f}x, "
              f"p99 / node's p50 {mean(runs, 'p99') / mean(node, 'p50'):.2f}, "
              f"output bytes {mean(runs, 'out_bytes') / mean(node, 'out_bytes'):.3f}, "
              f"CPU per image {mean(runs, 'cpu_ms') / mean(node, 'cpu_ms'):.2f}")


if __name__ == "__main__":
    main()
