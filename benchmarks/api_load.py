"""Load benchmark for the batch API: progress polling and bursts while a batch renders.

Starts ``python app.py`` on 127.0.0.1 with a throw-away workspace and renders a 20 s 640x360
presenter clip in ``--rounds`` rounds: each round renders it once with no API traffic (idle), then
once more while ``--clients`` clients poll ``GET /api/progress`` once a second and, every 5 s,
``--burst-rps`` more requests go out within one second (loaded). One render's speed on a shared
machine varies by several percent, so the rounds pair each loaded render with an idle one made
just before it, and the slowdown is over all rounds. Prints Markdown tables: request latency
(polling, bursts, all) and the achieved request rate, each round's fps idle and loaded, where the
CPU went, and the targets of issue 3 (p99 under 20 ms; render slowed by under 5 %). Progress goes
to the log (stderr).

    .venv/bin/python benchmarks/api_load.py [--clients 200] [--burst-rps 500] [--rounds 20]
                                            [--port P] [--client wrk|raw|httpx]

Everything is bounded: each request has a deadline, the number of requests is capped, every wait
has a deadline, and traffic goes only to 127.0.0.1. The load generator runs on the same machine
as the server and the renderer and takes CPU from both; the CPU table says how much.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import math
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from types import ModuleType

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the only address this script ever talks to
CLIP_SECONDS = 20.0
CLIP_SIZE = (640, 360)
WARMUP_SECONDS = 2.0  # a short untimed render first, so neither timed run pays for model loading
BURST_EVERY_S = 5.0
FIRST_BURST_S = 2.5  # offset of the first burst from the start of the load
SUBMIT_AFTER_S = 1.0  # a batch is submitted this long after its round's idle or loaded part begins
LOADED_MARGIN = 1.5  # the load of a round lasts 1 s + 1.5x the round's idle render
SERVER_START_S = 90.0
RENDER_DEADLINE_S = 900.0
WATCH_EVERY_S = 0.5  # how often the benchmark itself looks at the batch (not counted as load)
TARGET_P99_MS = 20.0
TARGET_SLOWDOWN_PCT = 5.0
FINISHED = ("completed", "completed_with_errors", "failed", "cancelled")

log = logging.getLogger("api_load")


# --------------------------------------------------------------------------- inputs


def load_make_samples() -> ModuleType:
    """examples/make_samples.py, imported by path (it is not a package)."""
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "examples" / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Inputs:
    """The files the benchmark uploads."""

    clip: Path          # 640x360, 20 s presenter clip (warm-up and idle run before the load)
    clip_loaded: Path   # the same frames, different bytes and name (loaded runs: not a duplicate)
    speech: Path        # speech looped to 20 s
    speech_warmup: Path  # the first 2 s of it (warm-up render)


def make_inputs(workdir: Path) -> Inputs:
    """Make the presenter clip and the speech with examples/make_samples.py and ffmpeg."""
    samples = load_make_samples()
    width, height = CLIP_SIZE
    clip = samples.make_presenter_clip(workdir / "presenter_idle.mp4", width, height, CLIP_SECONDS)
    loaded = workdir / "presenter_loaded.mp4"  # same frames, other bytes: never a duplicate
    samples.run_ffmpeg(["-i", str(clip), "-map", "0", "-c", "copy",
                        "-metadata", f"comment=api_load {loaded.stem}", str(loaded)])
    once = samples.make_speech(workdir / "speech_once.wav", samples.EN_TEXT)
    speech = workdir / "speech_20s.wav"
    samples.run_ffmpeg(["-stream_loop", "-1", "-i", str(once), "-t", f"{CLIP_SECONDS:.3f}",
                        "-ac", "1", str(speech)])
    warmup = workdir / "speech_warmup.wav"
    samples.run_ffmpeg(["-i", str(speech), "-t", f"{WARMUP_SECONDS:.3f}", str(warmup)])
    return Inputs(clip, loaded, speech, warmup)


# --------------------------------------------------------------------------- server


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """`python app.py` as a subprocess with its own workspace and port; output to a log file."""

    def __init__(self, workspace: Path, port: int) -> None:
        self.workspace = workspace
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = workspace.parent / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until /healthz answers (bounded)."""
        env = {**os.environ, "HEYGEM_HOST": HOST, "HEYGEM_PORT": str(self.port),
               "HEYGEM_WORKSPACE": str(self.workspace)}
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    log.info("server up at %s (pid %d)", self.url, self.proc.pid)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"server did not answer /healthz within {SERVER_START_S:.0f} s\n{self.log_tail()}")

    def check_alive(self) -> None:
        """Raise, with the end of its log, if the server process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        """Terminate the server (kill it if it does not stop within 20 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        began = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            log.warning("server ignored SIGTERM for 20 s; killing it")
            self.proc.kill()
            self.proc.wait(10)
        log.info("server stopped after %.1f s (exit status %s)", time.monotonic() - began,
                 self.proc.returncode)


@dataclass(frozen=True)
class CpuUse:
    """Where the machine's CPU went during a window, in CPU seconds."""

    wall_s: float
    machine: float   # all cores, all processes (psutil.cpu_times: not idle, not iowait)
    loadgen: float   # this process (the load generator and the benchmark itself)
    others: float    # processes outside this one and the server's process tree
    api: float = 0.0  # the server's own process (the API; its worker and ffmpeg are children)

    @property
    def server(self) -> float:
        """The server and its children (the renderer, ffmpeg): what is left."""
        return max(self.machine - self.loadgen - self.others, 0.0)

    def cores(self, cpu_s: float) -> float:
        """CPU seconds as cores kept busy on average."""
        return cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class CpuMeter:
    """Measures a CpuUse between start() and stop()."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def start(self) -> CpuMeter:
        """Take the starting readings."""
        self.t0, self.own0 = time.monotonic(), _own_cpu()
        self.machine0, self.others0, self.api0 = machine_busy_s(), self._others(), self._api()
        return self

    def stop(self) -> CpuUse:
        """CPU used since start()."""
        others_now = self._others()
        others = sum(cpu - self.others0.get(pid, 0.0) for pid, cpu in others_now.items())
        return CpuUse(time.monotonic() - self.t0, machine_busy_s() - self.machine0,
                      _own_cpu() - self.own0, max(others, 0.0), self._api() - self.api0)

    def _api(self) -> float:
        """CPU seconds so far of the server's own process, without its children."""
        if self.server.proc is None:
            return 0.0
        with suppress(psutil.Error):
            times = psutil.Process(self.server.proc.pid).cpu_times()
            return times.user + times.system
        return 0.0

    def _others(self) -> dict[int, float]:
        """CPU seconds so far of each process outside this one and the server's tree."""
        skip = {os.getpid()}
        if self.server.proc is not None:
            skip.add(self.server.proc.pid)
            with suppress(psutil.Error):
                skip |= {c.pid for c in psutil.Process(self.server.proc.pid).children(recursive=True)}
        found = {}
        for proc in psutil.process_iter(["cpu_times"]):
            times = proc.info["cpu_times"]
            if proc.pid not in skip and times is not None:
                found[proc.pid] = times.user + times.system
        return found


def _own_cpu() -> float:
    """CPU seconds of this process and its finished children (wrk; the server is waited for
    only at the very end)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def machine_busy_s() -> float:
    """CPU seconds all cores have spent busy since boot."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def submit(server: Server, audio: Path, video: Path) -> str:
    """POST /start_batch with one audio and one video; the new batch's id (201 expected)."""
    files = [("audio", (audio.name, audio.read_bytes(), "audio/wav")),
             ("videos", (video.name, video.read_bytes(), "video/mp4"))]
    response = httpx.post(f"{server.url}/start_batch", files=files, timeout=120)
    if response.status_code != 201:
        raise RuntimeError(f"start_batch answered {response.status_code}: {response.text[:500]}")
    batch_id = response.json()["batch_id"]
    log.info("submitted %s + %s as batch %s", video.name, audio.name, batch_id)
    return batch_id


# --------------------------------------------------------------------------- render fps


@dataclass(frozen=True)
class RenderResult:
    """One rendered item, from the batch's final snapshot."""

    frames: int
    seconds: float      # the item's finished_at - started_at
    finished_at: float  # unix time (the batch's; it has one item)

    @property
    def fps(self) -> float:
        """Frames rendered per second."""
        return self.frames / self.seconds


def render_result(snap: dict) -> RenderResult:
    """Frames and render time of the batch's single item; raise if it did not finish done."""
    item = snap["items"][0]
    if snap["status"] != "completed" or item["status"] != "done":
        raise RuntimeError(f"batch ended {snap['status']}, item {item['status']}: "
                           f"{item.get('error_code')} {item.get('error')}")
    return RenderResult(frames=int(item["frames_total"]), seconds=float(item["duration_s"]),
                        finished_at=float(snap["finished_at"]))


async def watch_batch(server: Server, batch_id: str, deadline_s: float = RENDER_DEADLINE_S) -> dict:
    """Poll /api/progress/{batch_id} every WATCH_EVERY_S until the batch ends; its final snapshot."""
    deadline = time.monotonic() + deadline_s
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        while time.monotonic() < deadline:
            server.check_alive()
            try:
                snap = (await client.get(f"/api/progress/{batch_id}")).json()
                if snap.get("status") in FINISHED:
                    return snap
            except (httpx.HTTPError, ValueError) as e:
                log.warning("watcher: %s: %s", type(e).__name__, e)
            await asyncio.sleep(WATCH_EVERY_S)
    raise RuntimeError(f"batch {batch_id} did not finish within {deadline_s:.0f} s")


def render_once(server: Server, audio: Path, video: Path, label: str) -> tuple[RenderResult, CpuUse]:
    """Submit a one-video batch, wait for it with no other traffic; its render figures and CPU.
    Like a loaded render, it starts SUBMIT_AFTER_S after the call, so that both find the machine
    equally settled after the render before them (its output still being written back, say)."""
    meter = CpuMeter(server).start()
    time.sleep(SUBMIT_AFTER_S)
    batch_id = submit(server, audio, video)
    result = render_result(asyncio.run(watch_batch(server, batch_id)))
    log.info("%s render: %d frames in %.2f s = %.1f fps", label, result.frames, result.seconds, result.fps)
    return result, meter.stop()


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Sample:
    """One request of the load."""

    kind: str             # "polling" or "burst"
    started: float        # loop time when it was sent
    ended: float          # loop time when it completed or failed
    status: int | None    # HTTP status, None when no response came
    error: str | None     # None for a 200; else "HTTP 503", "ReadTimeout", ...

    @property
    def latency_ms(self) -> float:
        return (self.ended - self.started) * 1000.0


@dataclass
class Recorder:
    """Collects samples and enforces the cap on the number of requests."""

    max_requests: int
    samples: list[Sample] = field(default_factory=list)
    issued: int = 0
    refused: int = 0  # requests not sent because the cap was reached

    def take(self) -> bool:
        """Whether one more request may be sent (counts it)."""
        if self.issued >= self.max_requests:
            self.refused += 1
            return False
        self.issued += 1
        return True


@dataclass(frozen=True)
class LoadConfig:
    """What the load generator does."""

    clients: int
    burst_rps: int
    seconds: float  # how long the load of one round lasts
    timeout_s: float
    max_requests: int  # per round (Python clients)
    client: str  # "wrk", "raw" or "httpx"


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that answers one GET at a time (a Protocol, not
    streams: its callbacks cost a fraction of StreamReader's per response)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None
        self.closed = False
        self.used_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None or self.waiter.done():
            return
        head = bytes(self.buffer[:end]).lower()
        length = int(head.split(b"\r\ncontent-length:", 1)[1].split(b"\r\n", 1)[0])
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[:end + 4 + length]
        status = int(head[9:12])
        self.waiter.set_result((status, b"\r\nconnection: close" in head))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("the server closed the connection"))

    async def get(self, request: bytes) -> tuple[int, bool]:
        """Send `request`; (status, whether the server will close the connection)."""
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class RawPool:
    """Minimal HTTP/1.1 keep-alive GET client on asyncio Protocols, for 127.0.0.1 only.

    About a tenth of httpx's CPU per request, which matters when the load generator shares two
    cores with the server. Idle connections are reused; a connection that failed or was
    cancelled mid-request is closed, never reused, and so is one idle for IDLE_REUSE_S or more
    (uvicorn closes idle keep-alive connections after 5 s; like a browser, the client does not
    send on one that may be closing). Bodies must carry Content-Length."""

    IDLE_REUSE_S = 4.0

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[_RawConnection] = []

    async def get(self, path: str) -> int:
        """GET `path`; the response's status code (the body is read and dropped)."""
        connection = await self._connection()
        try:
            status, closing = await connection.get(
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n\r\n".encode())
        except BaseException:
            connection.close()
            raise
        if closing:
            connection.close()
        else:
            connection.used_at = time.monotonic()
            self.idle.append(connection)
        return status

    async def _connection(self) -> _RawConnection:
        """The most recently used idle connection that is fresh and open, else a new one."""
        while self.idle:
            connection = self.idle.pop()
            if time.monotonic() - connection.used_at < self.IDLE_REUSE_S and not connection.closed:
                return connection
            connection.close()
        _, connection = await asyncio.get_running_loop().create_connection(_RawConnection, HOST, self.port)
        return connection

    async def aclose(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


class HttpxPool:
    """The same interface over one httpx.AsyncClient with `connections` kept-alive connections."""

    def __init__(self, url: str, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections,
                              keepalive_expiry=BURST_EVERY_S * 3)
        self.client = httpx.AsyncClient(base_url=url, limits=limits, timeout=None)  # deadline: one_request

    async def get(self, path: str) -> int:
        return (await self.client.get(path)).status_code

    async def aclose(self) -> None:
        await self.client.aclose()


Pool = RawPool | HttpxPool


def make_pool(cfg: LoadConfig, server: Server, connections: int) -> Pool:
    """The client the load uses (see --client)."""
    return RawPool(server.port) if cfg.client == "raw" else HttpxPool(server.url, connections)


async def one_request(pool: Pool, kind: str, rec: Recorder, timeout_s: float) -> None:
    """GET /api/progress once within `timeout_s` (whole request) and record latency and outcome."""
    if not rec.take():
        return
    loop = asyncio.get_running_loop()
    started = loop.time()
    status: int | None = None
    error: str | None = None
    try:
        async with asyncio.timeout(timeout_s):  # no extra task per request, unlike wait_for
            status = await pool.get("/api/progress")
        if status != 200:
            error = f"HTTP {status}"
    except asyncio.TimeoutError:
        error = f"no answer within {timeout_s:g} s"
    except (OSError, EOFError, ValueError, KeyError, httpx.HTTPError) as e:  # EOFError: IncompleteReadError
        error = type(e).__name__
    rec.samples.append(Sample(kind, started, loop.time(), status, error))


async def poller(pool: Pool, rec: Recorder, cfg: LoadConfig, start: float, stop_at: float) -> None:
    """One client: GET /api/progress once a second (a late poll skips to the next tick)."""
    loop = asyncio.get_running_loop()
    next_at = start + random.random()  # spread the clients over the second
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        if loop.time() >= stop_at:
            return
        await one_request(pool, "polling", rec, cfg.timeout_s)
        next_at += 1.0
        now = loop.time()
        if next_at < now:
            next_at += math.ceil(now - next_at)


async def burster(pool: Pool, rec: Recorder, cfg: LoadConfig, start: float,
                  stop_at: float, spans: list[tuple[float, float]]) -> None:
    """Every BURST_EVERY_S, fire cfg.burst_rps requests spread over one second (10 ms slices)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    t = start + FIRST_BURST_S
    while t + 1.0 <= stop_at and cfg.burst_rps > 0:
        first_sent: float | None = None
        for i in range(100):
            await asyncio.sleep(max(0.0, t + i / 100 - loop.time()))
            first_sent = loop.time() if first_sent is None else first_sent
            count = round((i + 1) * cfg.burst_rps / 100) - round(i * cfg.burst_rps / 100)
            for _ in range(count):
                task = asyncio.create_task(one_request(pool, "burst", rec, cfg.timeout_s))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        spans.append((first_sent or t, loop.time()))  # when the burst's sending began and ended
        t += BURST_EVERY_S
    if tasks:
        await asyncio.gather(*tasks)


@dataclass(frozen=True)
class LoadRound:
    """One loaded render and the traffic around it."""

    part: TrafficPart                   # what the traffic measured
    window_s: float                     # how long the load ran
    started_unix: float
    ended_unix: float
    cpu: CpuUse                         # during the load
    render: RenderResult


@dataclass
class TrafficPart:
    """Raw results of one load window, merged across rounds by `latency_rows`."""

    samples: list[Sample] = field(default_factory=list)   # Python clients: every request
    polling: list[dict] = field(default_factory=list)     # wrk: one report for the pollers
    bursts: list[dict] = field(default_factory=list)      # wrk: one report per burst
    spans: list[tuple[float, float]] = field(default_factory=list)  # when each burst ran
    refused: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def run_load(server: Server, cfg: LoadConfig, inputs: Inputs) -> LoadRound:
    """Start the pollers and bursts, render the loaded clip once 1 s later, and stop the load
    after cfg.seconds (the render is expected to end before; the report says how much of it the
    load covered)."""
    loop = asyncio.get_running_loop()
    meter = CpuMeter(server).start()
    unix0 = time.time()
    start = loop.time()
    traffic = WrkTraffic(server, cfg) if cfg.client == "wrk" else PythonTraffic(server, cfg)
    try:
        traffic.start(start)
        log.info("load running (%s client): %d pollers, bursts of %d every %.0f s, for %.1f s",
                 cfg.client, cfg.clients, cfg.burst_rps, BURST_EVERY_S, cfg.seconds)
        await asyncio.sleep(SUBMIT_AFTER_S)
        batch_id = await asyncio.to_thread(submit, server, inputs.speech, inputs.clip_loaded)
        render = render_result(await watch_batch(server, batch_id))
        log.info("loaded render: %.1f fps", render.fps)
        part = await traffic.finish()
        result = LoadRound(part, loop.time() - start, unix0, time.time(), meter.stop(), render)
    finally:
        await traffic.aclose()
    return result


class PythonTraffic:
    """The pollers and bursts as asyncio tasks in this process (--client raw or httpx)."""

    def __init__(self, server: Server, cfg: LoadConfig) -> None:
        self.cfg = cfg
        self.rec = Recorder(cfg.max_requests)
        self.spans: list[tuple[float, float]] = []
        self.polling_pool = make_pool(cfg, server, cfg.clients)
        self.burst_pool = make_pool(cfg, server, max(cfg.burst_rps, 1))
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, start: float) -> None:
        cfg, stop_at = self.cfg, start + self.cfg.seconds
        self.tasks = [asyncio.create_task(poller(self.polling_pool, self.rec, cfg, start, stop_at))
                      for _ in range(cfg.clients)]
        self.tasks.append(asyncio.create_task(
            burster(self.burst_pool, self.rec, cfg, start, stop_at, self.spans)))

    async def finish(self) -> TrafficPart:
        """Wait for the load to end (bounded: pollers stop at the end, every request ends within
        cfg.timeout_s)."""
        await asyncio.wait_for(asyncio.gather(*self.tasks), self.cfg.seconds + self.cfg.timeout_s + 30)
        samples = self.rec.samples
        return TrafficPart(samples=samples, spans=self.spans, refused=self.rec.refused,
                           errors=Counter(s.error for s in samples if s.error))

    async def aclose(self) -> None:
        await self.polling_pool.aclose()
        await self.burst_pool.aclose()


WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  local hist = {}
  for i = 1, #latency do  -- every distinct latency (microseconds) and how often it was seen
    local value, count = latency(i)
    hist[#hist + 1] = string.format('[%d,%d]', value, count)
  end
  io.write(string.format('{"requests": %d, "errors": %d, "seconds": %.3f, "hist": [%s]}\\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout, summary.duration / 1e6,
    table.concat(hist, ',')))
end
"""
WRK_POLLING = """
local calls = 0
function delay()  -- each connection polls once a second; the first polls spread over a second
  calls = calls + 1
  if calls <= CLIENTS then return math.random(0, 999) end
  return 1000
end
"""
WRK_BURST = """
function delay() return 1000 * CONNECTIONS / RATE end
"""
WRK_BURST_CONNECTIONS = 10  # connections one burst is sent on, each at burst_rps / 10 a second


class WrkTraffic:
    """The pollers and bursts sent by wrk (a C load generator; --client wrk): one wrk process
    with `clients` connections, each polling once a second, for the whole load, and one wrk
    per burst. Its CPU per request is a small fraction of any Python client's, so on a small
    machine the render's slowdown is mostly the server's doing. Each wrk reports its latency
    histogram, and the rows merge them."""

    def __init__(self, server: Server, cfg: LoadConfig) -> None:
        self.server, self.cfg = server, cfg
        self.folder = Path(tempfile.mkdtemp(prefix="heygem-wrk-"))
        self.spans: list[tuple[float, float]] = []
        self.polling: asyncio.Task[dict] | None = None
        self.bursts: asyncio.Task[list[dict]] | None = None

    def _script(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text + WRK_REPORT)
        return path

    async def _wrk(self, connections: int, seconds: float, script: Path) -> dict:
        """Run wrk once against /api/progress; its report (latencies in ms)."""
        proc = await asyncio.create_subprocess_exec(
            "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            f"--timeout={max(1, round(self.cfg.timeout_s))}s", "-s", str(script),
            f"{self.server.url}/api/progress",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), seconds + self.cfg.timeout_s + 30)
        lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("{")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"wrk failed ({proc.returncode}): {out.decode(errors='replace')[-800:]}")
        return json.loads(lines[-1])

    def start(self, start: float) -> None:
        cfg = self.cfg
        polling = self._script("polling.lua", WRK_POLLING.replace("CLIENTS", str(cfg.clients)))
        self.polling = asyncio.create_task(self._wrk(cfg.clients, cfg.seconds, polling))
        self.bursts = asyncio.create_task(self._burst_loop(start))

    async def _burst_loop(self, start: float) -> list[dict]:
        loop = asyncio.get_running_loop()
        connections = min(WRK_BURST_CONNECTIONS, max(self.cfg.burst_rps, 1))
        script = self._script("burst.lua", WRK_BURST.replace("CONNECTIONS", str(connections))
                              .replace("RATE", str(max(self.cfg.burst_rps, 1))))
        reports, t = [], start + FIRST_BURST_S
        while t + 1.0 <= start + self.cfg.seconds and self.cfg.burst_rps > 0:
            await asyncio.sleep(max(0.0, t - loop.time()))
            began = loop.time()
            reports.append(await self._wrk(connections, 1.0, script))
            self.spans.append((began, loop.time()))
            t += BURST_EVERY_S
        return reports

    async def finish(self) -> TrafficPart:
        """Wait for wrk; its reports."""
        assert self.polling is not None and self.bursts is not None
        polling, bursts = await self.polling, await self.bursts
        failed = sum(r["errors"] for r in [polling, *bursts])
        return TrafficPart(polling=[polling], bursts=bursts, spans=self.spans, errors=Counter(
            {"wrk: connect, read, write, non-2xx or timeout": failed} if failed else {}))

    async def aclose(self) -> None:
        for task in (self.polling, self.bursts):
            if task is not None and not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
        shutil.rmtree(self.folder, ignore_errors=True)


def _wrk_row(label: str, reports: list[dict], seconds: float) -> LatencyRow:
    """One row from wrk reports, their latency histograms merged (so exact percentiles)."""
    counts: Counter[int] = Counter()
    for report in reports:
        for value_us, count in report["hist"]:
            counts[value_us] += count
    values = sorted(counts)
    total = sum(counts.values())

    def rank(q: float) -> float:  # nearest-rank percentile, ms
        if not total:
            return math.nan
        need, seen = max(1, math.ceil(total * q / 100)), 0
        for value in values:
            seen += counts[value]
            if seen >= need:
                return value / 1000
        return values[-1] / 1000

    requests = sum(r["requests"] for r in reports)
    return LatencyRow(label, requests, sum(r["errors"] for r in reports), rank(50), rank(95),
                      rank(99), values[-1] / 1000 if values else math.nan,
                      requests / seconds if seconds > 0 else math.nan)


def polling_label(cfg: LoadConfig) -> str:
    return f"polling ({cfg.clients} clients, 1/s each)"


def burst_label(cfg: LoadConfig) -> str:
    return f"bursts ({cfg.burst_rps} req within 1 s, every {BURST_EVERY_S:.0f} s)"


# --------------------------------------------------------------------------- report


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, linearly interpolated."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class LatencyRow:
    """Latency figures of one kind of traffic (every request, failed ones at their failure time)."""

    label: str
    requests: int
    errors: int
    p50: float
    p95: float
    p99: float
    max: float
    rate: float  # requests per second actually achieved


def latency_row(label: str, samples: list[Sample], seconds: float) -> LatencyRow:
    """Summarise samples; `rate` is len(samples) / seconds."""
    latencies = sorted(s.latency_ms for s in samples)
    errors = sum(1 for s in samples if s.error is not None)
    return LatencyRow(label, len(samples), errors, percentile(latencies, 50), percentile(latencies, 95),
                      percentile(latencies, 99), latencies[-1] if latencies else math.nan,
                      len(samples) / seconds if seconds > 0 else math.nan)


def burst_seconds(samples: list[Sample]) -> float:
    """Seconds the bursts took, each from its first request sent to its last one answered."""
    total, group = 0.0, []
    for s in sorted(samples, key=lambda s: s.started):
        if group and s.started - group[0].started > BURST_EVERY_S / 2:
            total += max(x.ended for x in group) - group[0].started
            group = []
        group.append(s)
    if group:
        total += max(x.ended for x in group) - group[0].started
    return total


def latency_rows(cfg: LoadConfig, rounds: list[LoadRound]) -> list[LatencyRow]:
    """Polling, bursts and all, over every round's traffic."""
    parts = [r.part for r in rounds]
    window = sum(r.window_s for r in rounds)
    polling = [rep for p in parts for rep in p.polling]
    if polling:  # wrk: histograms per report, merged
        bursts = [rep for p in parts for rep in p.bursts]
        rows = [_wrk_row(polling_label(cfg), polling, sum(r["seconds"] for r in polling))]
        if bursts:
            rows.append(_wrk_row(burst_label(cfg), bursts, sum(b["seconds"] for b in bursts)))
        return rows + [_wrk_row("all", polling + bursts,
                                sum(r["seconds"] for r in polling))]
    samples = [x for p in parts for x in p.samples]
    bursting = [x for x in samples if x.kind == "burst"]
    return [latency_row(polling_label(cfg), [x for x in samples if x.kind == "polling"], window),
            latency_row(burst_label(cfg), bursting, burst_seconds(bursting)),
            latency_row("all", samples, window)]


def overlap_fraction(load: LoadRound) -> float:
    """Share of the loaded render's time during which the load was running."""
    render = load.render
    lo = max(render.finished_at - render.seconds, load.started_unix)
    hi = min(render.finished_at, load.ended_unix)
    return max(0.0, hi - lo) / render.seconds if render.seconds > 0 else 0.0


def met(ok: bool) -> str:
    """A target's verdict."""
    return "met" if ok else "**missed**"


def spread(paired: list[float]) -> tuple[float, float]:
    """The mean of the rounds' slowdowns and two standard errors of it (0 for one round)."""
    if len(paired) < 2:
        return (paired[0] if paired else 0.0), 0.0
    return statistics.mean(paired), 2 * statistics.stdev(paired) / len(paired) ** 0.5


def slowdown_verdict(slowdown: float, paired: list[float]) -> str:
    """Met or missed, and whether this run's noise could have turned the answer."""
    mean, margin = spread(paired)
    settled = mean + margin < TARGET_SLOWDOWN_PCT or mean - margin >= TARGET_SLOWDOWN_PCT
    return met(slowdown < TARGET_SLOWDOWN_PCT) + ("" if settled else " (within the noise)")


def mean_fps(renders: list[RenderResult]) -> float:
    """Frames over seconds, all renders together."""
    return sum(r.frames for r in renders) / sum(r.seconds for r in renders)


def total_cpu(uses: list[CpuUse]) -> CpuUse:
    """Several windows as one."""
    return CpuUse(*(sum(getattr(u, f.name) for u in uses) for f in fields(CpuUse)))


def format_report(cfg: LoadConfig, idle: list[tuple[RenderResult, CpuUse]],
                  rounds: list[LoadRound]) -> str:
    """The Markdown tables (and notes) printed at the end."""
    rows = latency_rows(cfg, rounds)
    idle_fps = mean_fps([r for r, _ in idle])
    loaded_fps = mean_fps([r.render for r in rounds])
    slowdown = (idle_fps - loaded_fps) / idle_fps * 100.0
    paired = [(i.fps - r.render.fps) / i.fps * 100.0 for (i, _), r in zip(idle, rounds)]
    overall = rows[-1]
    return "\n".join([
        f"### API load while a batch renders ({date.today().isoformat()}, {os.cpu_count()} CPU cores)",
        "",
        "| traffic | requests | errors | p50 ms | p95 ms | p99 ms | max ms | achieved req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(f"| {r.label} | {r.requests} | {r.errors} | {r.p50:.1f} | {r.p95:.1f} | {r.p99:.1f} | "
          f"{r.max:.1f} | {r.rate:.0f} |" for r in rows),
        "",
        f"| round: render ({CLIP_SIZE[0]}x{CLIP_SIZE[1]}, {CLIP_SECONDS:.0f} s, engine auto) "
        "| idle fps | under load fps | slowdown |",
        "|---|---:|---:|---:|",
        *(f"| {k + 1} | {i.fps:.1f} | {r.render.fps:.1f} | {d:.1f} % |"
          for k, ((i, _), r, d) in enumerate(zip(idle, rounds, paired))),
        f"| **all {len(rounds)}** (frames over seconds) | **{idle_fps:.1f}** | **{loaded_fps:.1f}** "
        f"| **{slowdown:.1f} %** |",
        f"| median of the rounds | | | {statistics.median(paired):.1f} % |",
        "| mean of the rounds ± 2 standard errors | | | {:.1f} ± {:.1f} % |".format(*spread(paired)),
        "",
        "| CPU, cores busy on average | seconds | whole machine | load generator | server + renderer "
        "| of which the API process | other processes |",
        "|---|---:|---:|---:|---:|---:|---:|",
        cpu_row(f"idle renders (all {len(idle)})", total_cpu([c for _, c in idle])),
        cpu_row(f"load windows (all {len(rounds)})", total_cpu([r.cpu for r in rounds])),
        "",
        "| target (issue 3) | measured | result |",
        "|---|---:|---|",
        f"| p99 latency < {TARGET_P99_MS:.0f} ms (all requests) | {overall.p99:.1f} ms | "
        f"{met(overall.p99 < TARGET_P99_MS)} |",
        f"| render slowed by < {TARGET_SLOWDOWN_PCT:.0f} % ({loaded_fps:.1f} fps under load against "
        f"{idle_fps:.1f} idle, all rounds) | {slowdown:.1f} % | {slowdown_verdict(slowdown, paired)} |",
        "",
        *notes(cfg, rounds),
    ])


def cpu_row(label: str, cpu: CpuUse) -> str:
    """One line of the CPU table."""
    return (f"| {label} | {cpu.wall_s:.1f} | {cpu.cores(cpu.machine):.2f} | {cpu.cores(cpu.loadgen):.2f} "
            f"| {cpu.cores(cpu.server):.2f} | {cpu.cores(cpu.api):.2f} | {cpu.cores(cpu.others):.2f} |")


def notes(cfg: LoadConfig, rounds: list[LoadRound]) -> list[str]:
    """The caveats under the tables: shared CPU, bursts, coverage, errors, the request cap."""
    spans = [end - begin for r in rounds for begin, end in r.part.spans]
    windows = [r.window_s for r in rounds]
    out = [f"- {len(rounds)} rounds, each an idle render and then a render under load; the load ran "
           f"{min(windows):.1f}-{max(windows):.1f} s a round with the {cfg.client} client, each "
           f"request given {cfg.timeout_s:g} s in all. Latency is measured in the client, from send "
           "to the last byte of the body.",
           f"- One machine, {os.cpu_count()} cores: the load generator competes with the server and the "
           "renderer for CPU (its share is in the CPU table), so both the latencies and the slowdown "
           "include that competition. \"Other processes\" is whatever else ran on the machine."]
    if spans:
        out.append(f"- Sending one burst took {min(spans):.2f}-{max(spans):.2f} s (planned: 1 s).")
    out.append(f"- The load covered at least {min(overlap_fraction(r) for r in rounds) * 100:.0f} % "
               "of each loaded render.")
    errors = sum((r.part.errors for r in rounds), Counter())
    if errors:
        out.append("- Errors: " + ", ".join(f"{kind} x{n}" for kind, n in errors.most_common()) + ".")
    refused = sum(r.part.refused for r in rounds)
    if refused:
        out.append(f"- {refused} requests were not sent: the cap of {cfg.max_requests} was reached.")
    return out


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200, help="concurrent pollers, 1 request/s each")
    parser.add_argument("--burst-rps", type=int, default=500, help="requests in each 1 s burst")
    parser.add_argument("--rounds", type=int, default=20,
                        help="rounds of an idle render followed by a render under load")
    parser.add_argument("--port", type=int, default=None, help="server port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request deadline, s (whole request)")
    parser.add_argument("--client", choices=("wrk", "raw", "httpx"),
                        default="wrk" if shutil.which("wrk") else "raw",
                        help="wrk: the wrk load generator (default where installed; cheapest on CPU); "
                             "raw: a minimal keep-alive HTTP/1.1 client in Python; "
                             "httpx: one httpx.AsyncClient per kind of traffic")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap on requests sent")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.burst_rps < 0 or not 1 <= args.rounds <= 50:
        parser.error("need --clients >= 1, --burst-rps >= 0 and 1 <= --rounds <= 50")
    return args


@contextmanager
def temp_dir() -> Iterator[Path]:
    """A temporary folder, removed at the end whatever happens."""
    path = Path(tempfile.mkdtemp(prefix="heygem-api-load-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        log.info("removed %s", path)


def run(args: argparse.Namespace) -> str:
    """Make inputs, start the server, do the warm-up and the rounds; the report."""
    cfg = LoadConfig(args.clients, args.burst_rps, 0.0, args.timeout, args.max_requests, args.client)
    with temp_dir() as tmp:
        log.info("making inputs in %s", tmp)
        inputs = make_inputs(tmp / "inputs")
        (tmp / "workspace").mkdir()
        server = Server(tmp / "workspace", args.port or free_port())
        server.start()
        idle: list[tuple[RenderResult, CpuUse]] = []
        rounds: list[LoadRound] = []
        try:
            render_once(server, inputs.speech_warmup, inputs.clip, "warm-up")
            for k in range(args.rounds):
                idle.append(render_once(server, inputs.speech, inputs.clip, f"round {k + 1}, idle"))
                window = SUBMIT_AFTER_S + LOADED_MARGIN * idle[-1][0].seconds
                rounds.append(asyncio.run(run_load(server, replace(cfg, seconds=window), inputs)))
            server.check_alive()
        finally:
            server.stop()
        return format_report(cfg, idle, rounds)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; log progress to stderr, print only the report."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    print(run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
