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


def manifest(name):
    try:
        return json.load(open(os.path.join(out, f"manifest-{name}.json")))
    except OSError:
        return None


def layers(tool):
    m = manifest(tool)
    return [l["size"] for l in m["layers"]] if m else []


cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
buildah = subprocess.run(["buildah", "--version"], capture_output=True, text=True).stdout.strip()
skopeo = subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout.strip()
print("# Benchmarks\n")
print(f"Measured {datetime.fromtimestamp(os.path.getmtime(os.path.join(out, 'raw.jsonl')), timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} by `scripts/bench` (medians of {runs} runs, "
      f"both tools side by side in one run). Machine: {os.cpu_count()} cores, {cpu}, {platform.platform()}. "
      f"Peers: {buildah}; {skopeo}. Everything on loopback: a private Debian `docker-registry` per measurement, "
      "each measurement after a `sync`, so that none pays for the writeback of the one before.\n")
print("## Build and push of testdata/benchapp (Flask, gunicorn, pydantic, numpy)\n")
print("Both tools start from the same base (`python:3.11`, seeded into the registry with skopeo) and install the same "
      "wheels from the same local wheelhouse (`pip download` of `testdata/benchapp/requirements.txt`).\n")
print("- oxbuild: `oxbuild build -q --json APP --base REG/python:3.11 --tag REG/bench/app:TAG --push` "
      "(`find-links = [\"wheelhouse\"]`, `no-index = true`), with `--cache-repo REG/bench/cache` in c), "
      "after another runner filled it.")
print("- buildah: `buildah bud --layers --format docker -t REG/bench/app:TAG APP` with "
      "`testdata/benchapp/Dockerfile` (a venv, `pip install --no-index --find-links` from a bind-mounted "
      "wheelhouse, the app, USER, HEALTHCHECK), then `buildah push`; in c) `--cache-to`/`--cache-from "
      "REG/bench/cache`, after another runner filled it.")
print("- a) starts each tool with empty local state (cache directory; buildah `--root`/`--runroot`); b) appends one "
      "line to `benchapp/app.py` and builds again with a's state; \"uploaded\" is the growth of the registry's "
      "storage directory (blobs plus the registry's own link files), less the SBOMs and provenance that oxbuild "
      "attaches (counted apart, below).\n")
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
mo_, ao_ = median("m-oxbuild", "seconds"), median("a-oxbuild", "seconds")
mb_ = median("m-buildah", "seconds")
if mo_ is not None and ao_:
    peer = (f"buildah (`bud --platform linux/amd64,linux/arm64 --manifest`, arm64 under QEMU user emulation from "
            f"Debian's qemu-user-static) {fmt_s(mb_)}; oxbuild / buildah {ratio(mo_, mb_)}"
            if mb_ else "buildah not measured: QEMU user emulation (binfmt_misc) is not available here")
    print(f"m) two platforms (linux/amd64 + linux/arm64, one index) from a fresh runner: oxbuild {fmt_s(mo_)}, "
          f"{mo_ / ao_:.2f}× its own one-platform a); {peer}. The base has python3-venv on both platforms "
          "(the arm64 one made by mmdebstrap under QEMU), so both tools start from the same index.\n")
ra, rb_ = median("a-oxbuild", "referrer_bytes"), median("b-oxbuild", "referrer_bytes")
if ra is not None:
    print(f"Attached to each oxbuild push (two SBOMs and the provenance, payloads and manifests, which buildah does not "
          f"make): {fmt_mb(ra)} in a), {fmt_mb(rb_)} in b).\n")
lo, lb = layers("oxbuild"), layers("buildah")
print(f"Image size (compressed layers): oxbuild {fmt_mb(sum(lo))} in {len(lo)} layers {[round(x / 1e6, 2) for x in lo]} MB; "
      f"buildah {fmt_mb(sum(lb))} in {len(lb)} layers {[round(x / 1e6, 2) for x in lb]} MB.\n")
tree = median("compress", "tree_bytes")
po, pp = median("compress-oxbuild", "seconds"), median("compress-pigz", "seconds")
print("## Startup of the images from b), in podman\n")
so, sb = median("startup-oxbuild", "seconds"), median("startup-buildah", "seconds")
io, ib = median("startup-oxbuild", "import_seconds"), median("startup-buildah", "import_seconds")
if so and sb:
    n = len(values("startup-oxbuild", "seconds"))
    print("| measure (median of %d, interleaved) | oxbuild image | buildah (pip-built) image | oxbuild / buildah |" % n)
    print("|---|---|---|---|")
    print(f"| `podman run` to the first 200 on /health | {fmt_s(so)} | {fmt_s(sb)} | {ratio(so, sb)} |")
    print(f"| `import numpy, flask, pydantic, gunicorn, benchapp.app` in the container | {io:.3f} s | {ib:.3f} s | {ratio(io, ib)} |")
    print()
print("## Layer compression\n")
if tree and po and pp:
    print(f"The installed dependency tree ({tree / 1e6:.1f} MB): oxbuild's layer writer (tar + gzip level 5, zlib-rs, "
          f"1 MiB blocks on {os.cpu_count()} threads) "
          f"{tree / po / 1e6:.1f} MB/s; `tar -c | pigz -p 2 -5` {tree / pp / 1e6:.1f} MB/s; ratio {ratio(tree / po, tree / pp)}.\n")
print("## Pushing a 1 GiB image from an OCI layout\n")
xo, xs = median("push-oxbuild", "seconds"), median("push-skopeo", "seconds")
mo, ms = median("push-oxbuild", "rss_kb"), median("push-skopeo", "rss_kb")
print(f"`oxbuild push oci:…` {fmt_s(xo)} (peak RSS {mo / 1024:.0f} MiB); `skopeo copy oci:… docker://…` {fmt_s(xs)} "
      f"(peak RSS {ms / 1024:.0f} MiB); oxbuild / skopeo {ratio(xo, xs)}.\n")
print("## Bounded resources (issue 20)\n")
bt, bw = median("bounded-tree", "rss_kb"), median("bounded-wheel", "rss_kb")
tree_bytes = median("bounded-tree", "tree_bytes")
print("A fresh runner builds and pushes an app of 2,048 random files of 1 MiB, and an app whose lock holds "
      "a wheel with one random 1 GiB file.\n")
print("| build and push | seconds | peak RSS |")
print("|---|---|---|")
print(f"| app tree of {(tree_bytes or 0) / 2**30:.1f} GiB | {fmt_s(median('bounded-tree', 'seconds'))} | "
      f"{'n/a' if bt is None else f'{bt / 1024:.0f} MiB'} |")
print(f"| 1 GiB wheel | {fmt_s(median('bounded-wheel', 'seconds'))} | {'n/a' if bw is None else f'{bw / 1024:.0f} MiB'} |\n")
print("## Locking (issue 16)\n")
lock_rows = []
lock_requests = []
for set_, label in (("small", "the benchmark app's top level (flask, gunicorn, pydantic, numpy)"),
                    ("large", "a Django, FastAPI and Celery stack with its usual extras (21 top-level requirements)")):
    cmp_ = next((r for r in rows if r["name"] == f"lock-{set_}-compare"), None)
    oc, ow = median(f"lock-{set_}-oxbuild-cold", "seconds"), median(f"lock-{set_}-oxbuild-warm", "seconds")
    uc, uw = median(f"lock-{set_}-uv-cold", "seconds"), median(f"lock-{set_}-uv-warm", "seconds")
    pc = median(f"lock-{set_}-pipcompile-cold", "seconds")
    if oc is None:
        continue
    lock_rows.append((set_, oc, ow, uc, uw, pc))
    rc, rw = median(f"lock-{set_}-oxbuild-cold", "requests"), median(f"lock-{set_}-oxbuild-warm", "requests")
    lock_requests.append((set_, rc, rw))
    print(f"- {set_}: {label}, {cmp_['packages'] if cmp_ else '?'} packages locked.")
if lock_rows:
    print("\nThe same top-level requirements, for Python 3.11.2 on x86_64, files uploaded before 2025-06-01T00:00:00Z "
          "for all three (`--exclude-newer`, uv's `--exclude-newer`, pip's `--uploaded-prior-to`); cold is an empty "
          "cache, warm the same cache again. oxbuild reads the base (its scan cached after the first run) to know the target.\n")
    print("| set | oxbuild cold | oxbuild warm | uv cold | uv warm | pip-compile cold | oxbuild warm / uv warm | oxbuild cold / pip-compile cold |")
    print("|---|---|---|---|---|---|---|---|")
    for set_, oc, ow, uc, uw, pc in lock_rows:
        print(f"| {set_} | {fmt_s(oc)} | {fmt_s(ow)} | {fmt_s(uc)} | {fmt_s(uw)} | {fmt_s(pc)} | {ratio(ow, uw)} | {ratio(oc, pc)} |")
    print()
    counts = "; ".join(f"{s}: {int(c)} cold, {int(w)} warm" for s, c, w in lock_requests if c is not None and w is not None)
    if counts:
        print(f"HTTP requests oxbuild sent (its `lock` report): {counts}.\n")
    proxied = [(s, [median(f"lock-{s}-{t}", "proxied_requests") for t in
                    ("oxbuild-cold", "oxbuild-warm", "uv-cold", "uv-warm", "pipcompile-cold")]) for s, *_ in lock_rows]
    if any(v is not None for _, vs in proxied for v in vs):
        print("HTTP requests each tool sent, counted by one reverse proxy in front of PyPI (`scripts/bench-countproxy.py`) "
              "in a pass of its own: pages, PEP 658 metadata, range requests, whole files and revalidations alike.\n")
        print("| set | oxbuild cold | oxbuild warm | uv cold | uv warm | pip-compile cold |")
        print("|---|---|---|---|---|---|")
        for s, vs in proxied:
            print(f"| {s} | " + " | ".join("n/a" if v is None else str(int(v)) for v in vs) + " |")
        print()
    for set_ in ("small", "large"):
        cmp_ = next((r for r in rows if r["name"] == f"lock-{set_}-compare"), None)
        if cmp_:
            same_uv = "the same versions as uv" if not cmp_["differ_uv"] else "differs from uv: " + "; ".join(cmp_["differ_uv"])
            same_pip = "the same as pip-compile" if not cmp_["differ_pip"] else "differs from pip-compile: " + "; ".join(cmp_["differ_pip"])
            print(f"- {set_}: {same_uv}; {same_pip}.")
    print()
node_rows = []
for s_, label in (("a", "a) fresh runner"), ("b", "b) warm rebuild, one-line change"), ("c", "c) fresh runner, registry cache")):
    o, b = median(f"node-{s_}-oxbuild", "seconds"), median(f"node-{s_}-buildah", "seconds")
    if o is not None or b is not None:
        node_rows.append((s_, label, o, b))
if node_rows:
    print("## Node.js app (issue 21): testdata/nodeexpress (Express and friends)\n")
    print("98 locked packages, 77 of them in production, on the Node base made by mmdebstrap from Debian 12's `nodejs` "
          "(18), side by side in one run. Both tools fetch from one local npm mirror (verdaccio, filled before anything is "
          "measured), so that the internet stays out of the figures.\n")
    print("- oxbuild: `oxbuild build -q --json APP --base REG/node:18 --tag REG/bench/node:TAG --push` (the mirror named by "
          "the app's `.npmrc`), with `--cache-repo` in c), after another runner filled it.")
    print("- buildah: `buildah bud --layers --format docker -f testdata/nodeexpress/bench.Dockerfile` (a build stage with "
          "Debian's npm running `npm ci --omit=dev`, then the app, USER and HEALTHCHECK on the Node base), then `buildah "
          "push`; in c) `--cache-to`/`--cache-from`, after another runner filled it.\n")
    print("| scenario | oxbuild | buildah | oxbuild / buildah | peak RSS oxbuild | peak RSS buildah |")
    print("|---|---|---|---|---|---|")
    for s_, label, o, b in node_rows:
        ro, rb = median(f"node-{s_}-oxbuild", "rss_kb"), median(f"node-{s_}-buildah", "rss_kb")
        unsupported = any(r.get("unsupported") for r in rows if r["name"] == f"node-{s_}-buildah")
        bs = "unsupported" if unsupported and b is None else fmt_s(b)
        print(f"| {label} | {fmt_s(o)} | {bs} | {ratio(o, b)} | {'n/a' if ro is None else f'{ro / 1024:.0f} MiB'} | "
              f"{'n/a' if rb is None else f'{rb / 1024:.0f} MiB'} |")
    nmo, nmb = manifest("node-oxbuild"), manifest("node-buildah")
    if nmo and nmb:
        nso, nsb = sum(l["size"] for l in nmo["layers"]), sum(l["size"] for l in nmb["layers"])
        sizes_o = ", ".join(f"{l['size'] / 1e6:.1f}" for l in nmo["layers"])
        sizes_b = ", ".join(f"{l['size'] / 1e6:.1f}" for l in nmb["layers"])
        print(f"\nImage size (compressed layers): oxbuild {nso / 1e6:.1f} MB in {len(nmo['layers'])} layers [{sizes_o}] MB; "
              f"buildah {nsb / 1e6:.1f} MB in {len(nmb['layers'])} layers [{sizes_b}] MB.")
    print()

print("Raw measurements: `target/bench/raw.jsonl` after a run.\n")


def verdict(ok):
    return "met" if ok else "**missed**"


print("## Against the targets (issue 8)\n")
print("| target | this run | |")
print("|---|---|---|")
for s_, limit, label in (("a", 1 / 6, "a) fresh runner ≤ 1/6 of buildah"), ("b", 1 / 6, "b) warm rebuild ≤ 1/6"),
                         ("c", 1 / 20, "c) fresh runner with a registry cache ≤ 1/20")):
    o, b = median(f"{s_}-oxbuild", "seconds"), median(f"{s_}-buildah", "seconds")
    if o is not None and b:
        print(f"| {label} | {o / b:.3f} | {verdict(o / b <= limit)} |")
    else:
        print(f"| {label} | n/a | not measured |")
ma, mb = manifest("oxbuild"), manifest("b-oxbuild")
sent = median("b-oxbuild", "blob_bytes")
if ma and mb and sent is not None:
    before = {l["digest"] for l in ma["layers"]}
    new = [l for l in mb["layers"] if l["digest"] not in before]
    allowed = sum(l["size"] for l in new) + mb["config"]["size"]
    print(f"| bytes uploaded in b) ≤ changed layers + config (+ manifest) | {int(sent)} blob bytes sent (oxbuild's `--json` "
          f"report) against {allowed} for {len(new)} changed layer(s) and the config | {verdict(sent <= allowed)} |")
dep_o = max(layers("oxbuild")[1:], default=None)
lb = layers("buildah")
if dep_o and lb:
    dep_b = max(lb[1:])
    print(f"| dependency layer no larger than buildah's | {dep_o / 1e6:.2f} MB against {dep_b / 1e6:.2f} MB | "
          f"{verdict(dep_o <= dep_b)} |")
if tree and po and pp:
    print(f"| compression ≥ `pigz -p 2` | {pp / po:.2f}× pigz's throughput | {verdict(po <= pp)} |")
if mo:
    print(f"| peak memory pushing a 1 GiB layer | {mo / 1024:.0f} MiB | {verdict(mo / 1024 < 100)} (under 100 MiB) |")
if bt:
    print(f"| peak memory, 2 GiB app tree built and pushed (issue 20) | {bt / 1024:.0f} MiB | {verdict(bt / 1024 < 100)} (under 100 MiB) |")
if bw:
    print(f"| peak memory, 1 GiB wheel built and pushed (issue 20) | {bw / 1024:.0f} MiB | {verdict(bw / 1024 < 100)} (under 100 MiB) |")
if so and sb:
    print(f"| startup ≤ 1.0× the pip-built image's (issue 15) | {so / sb:.3f} | {verdict(so <= sb)} |")
if mo_ is not None and ao_:
    print(f"| two platforms ≤ 1.6× one platform, fresh runner (issue 18) | {mo_ / ao_:.2f}× | {verdict(mo_ / ao_ <= 1.6)} |")
for s_, limit, label in (("a", 1 / 6, "a) with bytecode ≤ 1/6 (issue 15)"), ("b", 1 / 12, "b) with bytecode ≤ 1/12 (issue 15)"),
                         ("c", 1 / 50, "c) with bytecode ≤ 1/50 (issue 15)")):
    o, b = median(f"{s_}-oxbuild", "seconds"), median(f"{s_}-buildah", "seconds")
    if o is not None and b:
        print(f"| {label} | {o / b:.3f} | {verdict(o / b <= limit)} |")
for set_, oc, ow, uc, uw, pc in lock_rows:
    if ow and uw:
        print(f"| lock, {set_}: warm no slower than 2× uv warm (issue 16) | {ow / uw:.2f}× | {verdict(ow <= 2 * uw)} |")
    if oc and pc:
        print(f"| lock, {set_}: cold faster than pip-compile cold (issue 16) | {oc / pc:.2f}× | {verdict(oc < pc)} |")
if ma and manifest("buildah"):
    size_o, size_b = sum(l["size"] for l in ma["layers"]), sum(l["size"] for l in manifest("buildah")["layers"])
    print(f"| image no larger than buildah's (issue 15) | {size_o / 1e6:.1f} MB against {size_b / 1e6:.1f} MB | {verdict(size_o <= size_b)} |")
for s_, label, o, b in node_rows:
    limit = {"a": 1 / 8, "b": 1 / 20, "c": 1 / 50}[s_]
    if o is not None and b:
        print(f"| node {label} ≤ 1/{round(1 / limit)} of buildah (issue 21) | {o / b:.3f} | {verdict(o / b <= limit)} |")
if node_rows and manifest("node-oxbuild") and manifest("node-buildah"):
    nso = sum(l["size"] for l in manifest("node-oxbuild")["layers"])
    nsb = sum(l["size"] for l in manifest("node-buildah")["layers"])
    print(f"| node image no larger than buildah's (issue 21) | {nso / 1e6:.1f} MB against {nsb / 1e6:.1f} MB | {verdict(nso <= nsb)} |")
print()

# Hand-written findings are kept across runs: everything from this heading on.
notes_heading = "## What was found"
try:
    previous = open("BENCHMARKS.md").read()
    if notes_heading in previous:
        print(notes_heading + previous.split(notes_heading, 1)[1].rstrip())
except OSError:
    pass
