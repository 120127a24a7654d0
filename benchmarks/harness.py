"""Shared benchmark harness for hypops (CPU).

What it does, in the order a benchmark script uses it:

* ``machine_info()``: threads, CPU model, torch/geoopt/hypops versions, hypops build, git sha (+dirty).
* ``oracle(...)``: the float64 ``hypops.reference`` result (and gradients) on the same inputs, computed in
  row chunks so its temporaries stay bounded at any size.
* ``run_row(...)``: calls every candidate once and checks it against the oracle *before timing*
  (a candidate that disagrees, raises, or fails to compile is excluded from timing and recorded; the
  script exits non-zero at the end, or at once with ``--strict``), then times the survivors
  *interleaved*: every round calls each candidate once, in a rotated order, so load from other users of
  a shared machine lands on all candidates alike. Ratios are taken per round (paired) and their median
  reported.
* ``Report``: rows -> ``bench-results/<name>-<timestamp>.{csv,json,md}`` plus Markdown on stdout.

Times are wall-clock seconds per call (``time.perf_counter``). When one call is shorter than
``target_s`` a sample is the mean of ``number`` back-to-back calls (``number`` calibrated per candidate),
like ``timeit``. Spread is the interquartile range of the samples.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench-results"


# --- machine ---------------------------------------------------------------------------------------------
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict:
    import hypops

    import _allocator

    try:
        import geoopt

        geoopt_version = geoopt.__version__
    except ImportError:
        geoopt_version = None
    try:
        build = hypops.info()["build"]
    except Exception as e:  # pragma: no cover - info() should not fail, but never lose a run to it
        build = {"error": repr(e)}
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "timestamp": _dt.datetime.now().isoformat(timespec="seconds"),
        "git_sha": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(dirty) if dirty is not None else None,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mem_total_gib": mem_total_gib(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "geoopt": geoopt_version,
        "hypops": hypops.__version__,
        "hypops_build": build,
        "platform": platform.platform(),
        "allocator": _allocator.current(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")
                if k in os.environ},
        "thp": _read("/sys/kernel/mm/transparent_hugepage/enabled"),
    }


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def format_machine(info: dict) -> str:
    b = info.get("hypops_build", {})
    build = ", ".join(f"{k}={v}" for k, v in b.items()) if isinstance(b, dict) else str(b)
    sha = f"{info['git_sha']}{' (+uncommitted changes)' if info.get('git_dirty') else ''}"
    return (
        f"- machine: {info['cpu_model']}, {info['cpu_count']} CPUs (affinity {info['cpu_affinity']}), "
        f"{info['mem_total_gib']} GiB, torch CPU capability {info['cpu_capability']}\n"
        f"- torch.get_num_threads() = {info['threads']} (interop {info['interop_threads']})\n"
        f"- torch {info['torch']}, geoopt {info['geoopt']}, hypops {info['hypops']} ({build}), "
        f"python {info['python']}\n"
        f"- git {sha}, {info['timestamp']}\n"
        f"- allocator mode: {info.get('allocator')} (see benchmarks/README.md), transparent hugepages: {info.get('thp')}"
        f", OpenMP/MKL environment: {info.get('env') or 'defaults'}"
    )


def allow_recompiles(limit: int = 64) -> None:
    """Raise dynamo's recompile limit: a benchmark compiles one candidate per shape and dtype, more than the
    default allows before it silently falls back to eager (which would time the wrong thing)."""
    cfg = torch._dynamo.config
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(cfg, knob):
            setattr(cfg, knob, max(getattr(cfg, knob), limit))


def error_record(e: BaseException) -> str:
    """One line naming a candidate's failure (an OOM, an unsupported case) for the results table."""
    first = str(e).splitlines()[0][:200] if str(e) else ""
    return f"{type(e).__name__}: {first}"


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


# --- statistics ------------------------------------------------------------------------------------------
@dataclass
class Stats:
    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int

    @property
    def iqr_rel(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q3 - self.q1) / self.median if self.median > 0 else float("nan")

    def as_dict(self) -> dict:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "min": self.min, "max": self.max, "n": self.n}


def stats(samples: Sequence[float]) -> Stats:
    s = sorted(samples)
    if len(s) >= 2:
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
    else:
        q1 = q3 = s[0]
    return Stats(statistics.median(s), q1, q3, s[0], s[-1], len(s))


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over rounds of a[r] / b[r] (samples of one interleaved run, so both saw the same load)."""
    return statistics.median(x / y for x, y in zip(a, b))


def fmt_time(t: float | None, spread: float | None = None) -> str:
    if t is None or not math.isfinite(t):
        return "-"
    if t >= 1:
        s = f"{t:.2f} s"
    elif t >= 1e-3:
        s = f"{t * 1e3:.3g} ms"
    else:
        s = f"{t * 1e6:.3g} µs"
    if spread is not None and math.isfinite(spread):
        s += f" ±{spread * 50:.0f}%"  # half the IQR, relative to the median
    return s


def fmt_ratio(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "-"
    return f"{r:.2f}×" if r < 100 else f"{r:.0f}×"


# --- timing ----------------------------------------------------------------------------------------------
def _calibrate(fn: Callable[[], Any], target_s: float, cap: int = 100_000) -> int:
    """Calls per sample so one sample lasts about target_s (1 when a call is already that long)."""
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    if dt >= target_s:
        return 1
    return int(min(cap, max(1, math.ceil(target_s / max(dt, 1e-9)))))


def time_interleaved(
    fns: dict[str, Callable[[], Any]], *, warmup: int = 1, repeats: int = 5, target_s: float = 0.0
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Seconds per call of every fn, ``repeats`` samples each, interleaved.

    Round r calls the fns in the order names[r:] + names[:r]; a sample is the mean over ``number``
    calls. Python's garbage collector is paused while timing. Results are dropped at once, so only one
    candidate's outputs are alive at a time.
    """
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    numbers = {n: _calibrate(fns[n], target_s) if target_s > 0 else 1 for n in names}
    samples: dict[str, list[float]] = {n: [] for n in names}
    gc.collect(1)  # a full collection costs ~0.2 s once torch._dynamo is imported; tensors die by refcount
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeats):
            k = r % len(names)
            for n in names[k:] + names[:k]:
                fn, number = fns[n], numbers[n]
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                samples[n].append((time.perf_counter() - t0) / number)
    finally:
        if was_enabled:
            gc.enable()
    return samples, numbers


# --- correctness -----------------------------------------------------------------------------------------
class CheckFailed(AssertionError):
    pass


def _as_list(x) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    out = []
    for e in x:
        out.extend(_as_list(e))
    return out


def oracle(
    fn64: Callable[..., torch.Tensor],
    rows: Sequence[torch.Tensor],
    shared: Sequence[torch.Tensor],
    grad_out: torch.Tensor | None,
    *,
    elems_per_row: int,
    chunk_bytes: int = 64 * 2**20,
) -> list[torch.Tensor]:
    """float64 [output, *grads] of fn64(*rows, *shared), computed over chunks of rows (dim 0).

    rows: tensors sharing dim 0 (chunked); shared: tensors used by every chunk (p, a, c): their gradients
    are summed over chunks. grad_out None: forward only, returns [output]. Otherwise returns
    [output, grad of each row tensor, grad of each shared tensor] for the vector-Jacobian product with
    grad_out (which is chunked with the rows). elems_per_row: elements of the widest temporary per row,
    to size the chunks (the reference builds [rows, P, D] for a plane bank).
    """
    n = rows[0].shape[0]
    step = max(1, chunk_bytes // (8 * max(1, elems_per_row) * 8))  # ~8 live float64 temporaries
    sh = [s.detach().double().requires_grad_(grad_out is not None) for s in shared]
    outs: list[torch.Tensor] = []
    row_grads: list[list[torch.Tensor]] = [[] for _ in rows]
    sh_grads = [torch.zeros_like(s) for s in sh]
    for i in range(0, n, step):
        rs = [r[i : i + step].detach().double().requires_grad_(grad_out is not None) for r in rows]
        if grad_out is None:
            with torch.no_grad():
                outs.append(fn64(*rs, *sh))
            continue
        out = fn64(*rs, *sh)
        gs = torch.autograd.grad(out, [*rs, *sh], grad_out[i : i + step].double())
        outs.append(out.detach())
        for j in range(len(rs)):
            row_grads[j].append(gs[j])
        for j in range(len(sh)):
            sh_grads[j] += gs[len(rs) + j]
    res = [torch.cat(outs)]
    if grad_out is not None:
        res += [torch.cat(g) for g in row_grads] + sh_grads
    return res


def compare(
    got: Sequence[torch.Tensor],
    want: Sequence[torch.Tensor],
    labels: Sequence[str],
    *,
    rtol: float,
    atol: float,
    chunk: int = 1 << 22,
) -> tuple[float, str]:
    """Worst error in units of the tolerance (<= 1 passes) and which tensor gave it.

    Vectors (tensors of 2+ dims) are compared row by row, with norms over the last dimension (a small
    coordinate of a long row carries the row's absolute rounding error); scalars (0-/1-dim tensors)
    element by element. Passing means |got - want| <= atol * max(1, max|want|) + rtol * |want| for every
    row/element, and every element of got finite. Evaluated in chunks so it stays cheap in memory.
    """
    if len(got) != len(want):
        raise CheckFailed(f"candidate returned {len(got)} tensors, the oracle {len(want)}")
    worst, where = 0.0, ""
    for g, w, lab in zip(got, want, labels):
        if tuple(g.shape) != tuple(w.shape):
            raise CheckFailed(f"{lab}: shape {tuple(g.shape)} != reference {tuple(w.shape)}")
        d = g.shape[-1] if g.dim() >= 2 else 1
        gf, wf = g.detach().reshape(-1, d), w.detach().reshape(-1, d)
        if not wf.numel():
            continue
        rows_per_chunk = max(1, chunk // d)
        scale = 1.0
        for i in range(0, wf.shape[0], rows_per_chunk):
            scale = max(scale, float(wf[i : i + rows_per_chunk].norm(dim=-1).max()))
        for i in range(0, gf.shape[0], rows_per_chunk):
            gc_ = gf[i : i + rows_per_chunk].double()
            wc = wf[i : i + rows_per_chunk]
            if not bool(torch.isfinite(gc_).all()):
                return math.inf, f"{lab} (non-finite values)"
            e = float(((gc_ - wc).norm(dim=-1) / (atol * scale + rtol * wc.norm(dim=-1))).max())
            if e > worst:
                worst, where = e, lab
    return worst, where


# --- one benchmark row -----------------------------------------------------------------------------------
@dataclass
class Candidate:
    """One implementation in a row. ``run`` is what gets timed; ``canon`` maps its return value to the
    list of tensors compared with the oracle (default: flatten tensors/tuples). ``check=False`` for the
    bandwidth floor (clone), which computes something else. ``error``: why it cannot run (e.g. compile
    failed while building it)."""

    name: str
    run: Callable[[], Any] | None
    canon: Callable[[Any], list[torch.Tensor]] | None = None
    check: bool = True
    error: str | None = None
    fatal: bool = True  # False: an exception is recorded as "compile failed", not as a failure of the run
    tol_scale: float = 1.0  # multiplies rtol and atol (outside baselines such as geoopt are less accurate)
    must_match: bool = True  # False (outside baselines): a failed check is reported as "inexact", still timed


@dataclass
class CandidateResult:
    name: str
    status: str  # "ok" | "check failed" | "error" | "skipped"
    detail: str = ""
    check_err: float | None = None
    samples: list[float] = field(default_factory=list)
    number: int = 1
    stats: Stats | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {
            "candidate": self.name,
            "status": self.status,
            "detail": self.detail,
            "check_err": self.check_err,
            "calls_per_sample": self.number,
            "samples": self.samples,
        }
        if self.stats:
            d.update({f"t_{k}": v for k, v in self.stats.as_dict().items()})
        d.update(self.extra)
        return d


def _short_exc(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    first = msg[0] if msg else ""
    return f"{type(e).__name__}: {first[:300]}"


def check_candidate(
    cand: Candidate, want: Sequence[torch.Tensor] | None, labels: Sequence[str], *, rtol: float, atol: float
) -> CandidateResult:
    """Calls the candidate once (this call also compiles / warms it up) and checks it against the oracle.

    Returns a CandidateResult with status "ok", "check failed", "error", "compile failed" or "skipped".
    """
    if cand.error is not None:
        status = "skipped" if cand.error.startswith("skipped") else "error"
        return CandidateResult(cand.name, status, cand.error)
    if cand.run is None:
        return CandidateResult(cand.name, "skipped", "not run")
    try:
        out = cand.run()
    except Exception as e:
        return CandidateResult(cand.name, "error" if cand.fatal else "compile failed", _short_exc(e))
    err = None
    if cand.check and want is not None:
        got = cand.canon(out) if cand.canon else _as_list(out)
        r, a = rtol * cand.tol_scale, atol * cand.tol_scale
        try:
            err, where = compare(got, want, labels, rtol=r, atol=a)
        except CheckFailed as e:
            err, where = math.inf, str(e)
        if not err <= 1.0:
            detail = (f"disagrees with the float64 reference: {where} error {err:.3g}x tolerance "
                      f"(rtol={r:g}, atol={a:g}*max(1,max|ref|))")
            if cand.must_match or not math.isfinite(err):
                return CandidateResult(cand.name, "check failed", detail, check_err=err)
            return CandidateResult(cand.name, "ok", "INEXACT: " + detail, check_err=err)
    return CandidateResult(cand.name, "ok", check_err=err)


def run_row(
    title: str,
    candidates: Sequence[Candidate],
    want: Sequence[torch.Tensor] | None,
    labels: Sequence[str],
    *,
    rtol: float,
    atol: float,
    warmup: int,
    repeats: int,
    target_s: float,
    strict: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, CandidateResult]:
    """Checks every candidate against ``want`` (the oracle), then times those that pass, interleaved."""
    results: dict[str, CandidateResult] = {}
    timed: dict[str, Callable[[], Any]] = {}
    for cand in candidates:
        r = check_candidate(cand, want, labels, rtol=rtol, atol=atol)
        results[cand.name] = r
        if r.status == "ok":
            timed[cand.name] = cand.run
            if r.detail.startswith("INEXACT"):
                log(f"  ~~ {title}: {cand.name} (an outside baseline, timed anyway) {r.detail}")
            continue
        if r.status in ("error", "check failed", "compile failed"):
            log(f"  !! {r.status.upper()} {title}: {cand.name}: {r.detail}")
            if strict and r.status in ("error", "check failed"):
                raise CheckFailed(f"{title}: {cand.name}: {r.detail}")
    gc.collect(1)
    if timed:
        samples, numbers = time_interleaved(timed, warmup=warmup, repeats=repeats, target_s=target_s)
        for n in timed:
            r = results[n]
            r.samples, r.number, r.stats = samples[n], numbers[n], stats(samples[n])
    return results


def time_cell(r: CandidateResult | None) -> str:
    """Markdown cell for one candidate: median ±spread, or why it has no time; '(inexact)' marks an outside
    baseline that failed the accuracy check but was timed anyway."""
    if r is None:
        return "-"
    if r.stats:
        return fmt_time(r.stats.median, r.stats.iqr_rel) + (" (inexact)" if r.detail.startswith("INEXACT") else "")
    if r.status == "skipped":
        return "skipped (memory)" if "GiB" in r.detail else "skipped"
    return f"{r.status}: {r.detail[:60]}"


def inexact_notes(title: str, results: dict[str, CandidateResult]) -> list[str]:
    return [f"{title}: {r.name}: {r.detail[len('INEXACT: '):]}" for r in results.values() if r.detail.startswith("INEXACT")]


def ratio(results: dict[str, CandidateResult], a: str, b: str) -> float | None:
    """Paired median ratio time(a) / time(b), None when either was not timed."""
    ra, rb = results.get(a), results.get(b)
    if not ra or not rb or not ra.samples or not rb.samples:
        return None
    return paired_ratio(ra.samples, rb.samples)


# --- memory (peak resident set of a fresh process) -------------------------------------------------------
def read_status() -> dict[str, int]:
    """VmRSS / VmHWM of this process in bytes."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    return out


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current VmRSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_extra_rss(fn: Callable[[], Any]) -> int | None:
    """Peak resident memory during fn() above the resident memory just before it, in bytes.

    Meant for a fresh process started with a fixed malloc mmap threshold (``MEMORY_ENV``): then every
    large block is mmap'ed and unmapped on free, so freed memory from earlier calls is not silently reused
    and the resident set tracks live memory. Includes everything fn allocates and holds at its peak:
    outputs, saved activations, gradients, temporaries, GEMM workspaces.
    """
    gc.collect()
    if not reset_peak_rss():
        return None
    base = read_status()["VmRSS"]
    out = fn()
    peak = read_status()["VmHWM"]
    del out
    return peak - base


# glibc: a fixed mmap threshold disables its dynamic threshold, so blocks >= 64 KiB are returned to the
# OS on free and never reused from a cache; RSS then measures live memory.
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}


def run_worker(script: Path, payload: dict, timeout: float = 1800, memory_env: bool = True) -> dict:
    """Runs ``python script --memory-worker JSON`` in a fresh process and returns its JSON answer.
    ``memory_env=False``: with the caller's allocator settings instead of ``MEMORY_ENV``."""
    env = dict(os.environ, **(MEMORY_ENV if memory_env else {}))
    cmd = [sys.executable, str(script), "--memory-worker", json.dumps(payload)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"memory worker timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("MEMRESULT "):
            return json.loads(line[len("MEMRESULT ") :])
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    return {"error": f"memory worker exited {p.returncode}: {' | '.join(tail)}"}


def worker_reply(obj: dict) -> None:
    print("MEMRESULT " + json.dumps(obj), flush=True)


# --- output ----------------------------------------------------------------------------------------------
def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(str(v) for v in r) + " |")
    return "\n".join(lines)


class Report:
    """Collects rows (one per row x candidate) and writes CSV, JSON and Markdown under bench-results/."""

    def __init__(self, name: str, args: dict, info: dict):
        self.name, self.args, self.info = name, args, info
        self.rows: list[dict] = []
        self.markdown: list[str] = []
        self.failures: list[str] = []

    def add(self, meta: dict, results: dict[str, CandidateResult], ratios: dict | None = None) -> None:
        for r in results.values():
            row = dict(meta)
            row.update(r.as_dict())
            if ratios:
                row["ratios"] = ratios
                row.update({f"ratio {k}": v for k, v in ratios.items() if not isinstance(v, (list, dict))})
            self.rows.append(row)
            if r.status in ("check failed", "error"):
                self.failures.append(f"{' '.join(str(v) for v in meta.values())} {r.name}: {r.status}: {r.detail}")

    def finish(self, out_dir: Path | None = None) -> int:
        """Saves the results, prints where, lists the failures; the script's exit status (1 on a failure)."""
        paths = self.save(out_dir)
        print("results: " + ", ".join(str(p) for p in paths))
        if self.failures:
            print("\nCORRECTNESS FAILURES / ERRORS:\n  " + "\n  ".join(self.failures), file=sys.stderr)
            return 1
        return 0

    def save(self, out_dir: Path | None = None) -> list[Path]:
        out_dir = Path(out_dir or RESULTS_DIR)
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        stem = out_dir / f"{self.name}-{stamp}"
        paths = []
        with open(f"{stem}.json", "w") as f:
            json.dump({"benchmark": self.name, "args": self.args, "machine": self.info, "rows": self.rows,
                       "failures": self.failures}, f, indent=1, default=str)
        paths.append(Path(f"{stem}.json"))
        keys: list[str] = []
        for r in self.rows:
            for k in r:
                if k not in keys and k not in ("samples", "ratios"):
                    keys.append(k)
        with open(f"{stem}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys + ["samples"], extrasaction="ignore")
            w.writeheader()
            for r in self.rows:
                w.writerow({**r, "samples": " ".join(f"{s:.6g}" for s in r.get("samples", []))})
        paths.append(Path(f"{stem}.csv"))
        with open(f"{stem}.md", "w") as f:
            f.write("\n\n".join(self.markdown) + "\n")
        paths.append(Path(f"{stem}.md"))
        return paths


def print_exc_short() -> str:
    return traceback.format_exc(limit=2)
