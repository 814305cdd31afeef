#!/usr/bin/env python3
"""Turns scripts/bench's raw measurements into BENCHMARKS.md (medians, ratios)."""

import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone

out, runs = sys.argv[1], int(sys.argv[2])
rows = [json.loads(line) for line in open(os.path.join(out, "raw.jsonl"))]


def values(name, key):
    return [r[key] for r in rows if r["name"] == name and key in r]


def median(name, key):
    v = values(name, key)
    return statistics.median(v) if v else None


def fmt_s(v):
    return "n/a" if v is None else f"{v:.2f} s"


def fmt_mb(v):
    return "n/a" if v is None else f"{v / 1e6:.1f} MB"


def ratio(a, b):
    return "n/a" if a is None or b in (None, 0) else f"{a / b:.3f}"


def layers(tool):
    try:
        m = json.load(open(os.path.join(out, f"manifest-{tool}.json")))
        return [l["size"] for l in m["layers"]]
    except OSError:
        return []


cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
buildah = subprocess.run(["buildah", "--version"], capture_output=True, text=True).stdout.strip()
skopeo = subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout.strip()
print("# Benchmarks\n")
print(f"Measured {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `scripts/bench` (medians of {runs} runs, "
      f"both tools side by side in one run). Machine: {os.cpu_count()} cores, {cpu}, {platform.platform()}. "
      f"Peers: {buildah}; {skopeo}. Everything on loopback: a private Debian `docker-registry` per measurement.\n")
print("## Build and push of testdata/benchapp (Flask, gunicorn, pydantic, numpy)\n")
print("| scenario | oxbuild | buildah | oxbuild / buildah | uploaded (oxbuild) | uploaded (buildah) | peak RSS oxbuild | peak RSS buildah |")
print("|---|---|---|---|---|---|---|---|")
names = {"a": "a) fresh runner", "b": "b) warm rebuild, one-line change", "c": "c) fresh runner, registry cache"}
for s in "abc":
    o, b = median(f"{s}-oxbuild", "seconds"), median(f"{s}-buildah", "seconds")
    unsupported = values(f"{s}-buildah", "unsupported")
    bcell = "not supported here" if unsupported and b is None else fmt_s(b)
    ro, rb = median(f"{s}-oxbuild", "rss_kb"), median(f"{s}-buildah", "rss_kb")
    print(f"| {names[s]} | {fmt_s(o)} | {bcell} | {ratio(o, b)} | {fmt_mb(median(f'{s}-oxbuild', 'uploaded'))} | "
          f"{fmt_mb(median(f'{s}-buildah', 'uploaded'))} | {'n/a' if ro is None else f'{ro / 1024:.0f} MiB'} | "
          f"{'n/a' if rb is None else f'{rb / 1024:.0f} MiB'} |")
print()
lo, lb = layers("oxbuild"), layers("buildah")
print(f"Image size (compressed layers): oxbuild {fmt_mb(sum(lo))} in {len(lo)} layers {[round(x / 1e6, 2) for x in lo]} MB; "
      f"buildah {fmt_mb(sum(lb))} in {len(lb)} layers {[round(x / 1e6, 2) for x in lb]} MB.\n")
tree = median("compress", "tree_bytes")
po, pp = median("compress-oxbuild", "seconds"), median("compress-pigz", "seconds")
print("## Layer compression\n")
if tree and po and pp:
    print(f"The installed dependency tree ({tree / 1e6:.1f} MB): oxbuild's layer writer (tar + gzip level 6, zlib-rs) "
          f"{tree / po / 1e6:.1f} MB/s; `tar -c | pigz -p 2 -6` {tree / pp / 1e6:.1f} MB/s; ratio {ratio(tree / po, tree / pp)}.\n")
print("## Pushing a 1 GiB image from an OCI layout\n")
xo, xs = median("push-oxbuild", "seconds"), median("push-skopeo", "seconds")
mo, ms = median("push-oxbuild", "rss_kb"), median("push-skopeo", "rss_kb")
print(f"`oxbuild push oci:…` {fmt_s(xo)} (peak RSS {mo / 1024:.0f} MiB); `skopeo copy oci:… docker://…` {fmt_s(xs)} "
      f"(peak RSS {ms / 1024:.0f} MiB); oxbuild / skopeo {ratio(xo, xs)}.\n")
print("Raw measurements: `target/bench/raw.jsonl` after a run.")
