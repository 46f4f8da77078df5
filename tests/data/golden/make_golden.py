"""Golden journals, written line by line from the real programs' format strings.

Standalone on purpose: it imports nothing of hydra-profiler, so the fixtures can catch the
catalogue's mistakes. Every format string below is copied verbatim from the source line named
next to it; the values are made up but of the kinds the real programs print.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
import uuid
from pathlib import Path

OUT = Path(sys.argv[1])
R = random.Random(1955)
NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
L, RQ = "\u2018", "\u2019"
H_RUST = "NixOS/hydra@14332fbf55470184984bf76488960741510971d0"
H_CXX = "NixOS/hydra@a40d42862da88cce78a27dd594e1484a034aac4d"


def h(n: int = 32) -> str:
    return "".join(R.choice(NIX32) for _ in range(n))


def short(t: float, host: str, ident: str, pid: int, msg: str) -> str:
    s = dt.datetime.fromtimestamp(t, dt.UTC)
    return f"{s:%b} {s.day:2d} {s:%H:%M:%S} {host} {ident}[{pid}]: {msg}"


def tracing(t: float, level: str, spans: str, target: str, msg: str, tail: str = "") -> str:
    s = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # tracing-subscriber 0.3.23 Format<Compact>: each span name followed by ':', a space
    # after the last one, the target and ': ', the message, then the spans' fields
    names = f"{spans}: " if spans else ""
    return f"{s} {level:>5} {names}{target}: {msg}" + (f" {tail}" if tail else "")


class Book:
    """Lines plus the source of each kind of line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.records: list[dict[str, str]] = []
        self.raw: list[str] = []
        self.sources: dict[str, str] = {}

    def add(self, line: str, kind: str, source: str) -> None:
        self.lines.append(line)
        self.sources.setdefault(kind, source)

    def write(self, name: str, title: str) -> None:
        (OUT / name).write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        rows = "\n".join(f"| `{k}` | {v} |" for k, v in self.sources.items())
        (OUT / f"{name}.sources.md").write_text(
            f"# {name}\n\n{title}\n\nWritten line by line from the real format strings "
            "(tests/data/golden/make_golden.py imports nothing of hydra-profiler). Each kind of "
            "line and the source line it follows:\n\n| line | source |\n|---|---|\n" + rows + "\n",
            encoding="utf-8",
        )


# ---------------------------------------------------------------------------------------
def cxx_2016() -> None:
    b = Book()
    t = dt.datetime(2016, 5, 3, 9, 14, 2, tzinfo=dt.UTC).timestamp()
    pid, host, ident = 29811, "hydra", "hydra-queue-runner"
    old = "NixOS/hydra@706e06e8d7d5209f2b85c5b8a19f75f40a34bc36 src/hydra-queue-runner/"
    b.add("-- Logs begin at Mon 2016-05-02 00:00:01 CEST, end at Tue 2016-05-03 11:00:00 CEST. --",
          "journalctl header", "journalctl(1) short output")
    machines = ["root@hydra-slave1.nixos.org", "root@hydra-slave3.nixos.org"]
    build = 131000
    status = {"status": "up", "time": int(t), "uptime": 86400, "pid": pid, "nrQueuedBuilds": 812,
              "nrActiveSteps": 14, "nrStepsBuilding": 9, "nrStepsCopyingTo": 2,
              "nrStepsCopyingFrom": 3, "nrStepsWaiting": 0, "bytesSent": 81823172112,
              "bytesReceived": 93712331222, "nrBuildsRead": 19201, "nrBuildsDone": 18011,
              "nrStepsDone": 40121, "nrRetries": 12, "maxNrRetries": 2, "nrActiveDbUpdates": 0,
              "memoryTokensInUse": 1073741824, "nrRunnableSteps": 31, "nrUnfinishedSteps": 1201}
    for i in range(22):
        t += R.uniform(2, 9)
        if i % 5 == 0:
            b.add(short(t, host, ident, pid, f"checking the queue for builds > {build}..."),
                  "queue check (old wording)", old + "queue-monitor.cc:75")
            for j in range(2):
                build += 1
                b.add(short(t, host, ident, pid, f"loading build {build} (nixpkgs:trunk:pkg{build}.x86_64-linux)"),
                      "loading build", old + "queue-monitor.cc:125")
        drv = f"/nix/store/{h()}-pkg{build - i % 2}-1.{i}.drv"
        out = drv[:-4]
        m = machines[i % 2]
        b.add(short(t, host, ident, pid, f"performing step {L}{drv}{RQ} on {L}{m}{RQ} (needed by build {build - i % 2} and {i % 3} others)"),
              "performing step (no repeat count, before f6081668)", old + "builder.cc:96")
        t += R.uniform(5, 60)
        if i == 6:
            b.add(short(t, host, ident, pid, f"warning: had to wait 1834 ms for {R.randint(3, 9) * 10**8} memory tokens for {out}"),
                  "memory tokens wait", old + "build-remote.cc:356")
        if i == 9:
            err = "error: cannot connect to ‘" + m + "’: ssh: connect to host port 22: Connection timed out"
            b.add(short(t, host, ident, pid, f"possibly transient failure building {L}{drv}{RQ} on {L}{m}{RQ}: {err}"),
                  "possibly transient failure", old + "builder.cc:177")
            b.add(short(t, host, ident, pid, f"will disable machine {L}{m}{RQ} for 60s"),
                  "will disable machine", old + "build-remote.cc:386")
            b.add(short(t, host, ident, pid, f"will retry {L}{drv}{RQ} after 68s"),
                  "will retry", old + "builder.cc:42")
            continue
        size = R.randint(10**5, 4 * 10**8)
        nar = f"nar/{h(52)}.nar.xz"
        b.add(short(t, host, ident, pid, f"uploaded {L}s3://nix-cache/{nar}{RQ} ({size} bytes) in {size // 5000 + 40} ms"),
              "uploaded (Hydra's own S3 store)", old + "s3-binary-cache-store.cc:150")
        b.add(short(t, host, ident, pid, f"uploaded {L}s3://nix-cache/{out[11:43]}.narinfo{RQ} (612 bytes) in 41 ms"),
              "uploaded (narinfo)", old + "s3-binary-cache-store.cc:150")
        if i % 4 == 1:
            b.add(short(t, host, ident, pid, f"downloaded {L}s3://nix-cache/{h(32)}.narinfo{RQ} (598 bytes) in 37 ms"),
                  "downloaded", old + "s3-binary-cache-store.cc:184")
        if i % 6 == 2:
            b.add(short(t, host, ident, pid, f"importing path {L}{out}{RQ}"),
                  "importing path (Nix 1.11)", "NixOS/nix@1.11.16 src/libstore/local-store.cc:1655")
        if i == 12:
            b.add(short(t, host, ident, pid, "warning: 7 concurrent database updates; PostgreSQL may be stalled"),
                  "concurrent database updates", old + "hydra-queue-runner.cc:57")
        b.add(short(t, host, ident, pid, f"marking build {build - i % 2} as succeeded"),
              "marking build as succeeded", old + "builder.cc:245")
        if i == 15:
            b.add(short(t, host, ident, pid, "status: " + json.dumps(status, separators=(",", ":"))),
                  "periodic status dump (2015-06..2020-03)", old + "hydra-queue-runner.cc:708")
        if i == 18:
            b.add(short(t, host, ident, pid, f"marking build {build} as failed"),
                  "marking build as failed", old + "builder.cc:353")
    b.write("2016-s3.journal.txt", "A 2016 C++ runner on an S3 cache (Hydra's own S3 store, "
            "steps without a repeat count, memory tokens, periodic status lines), journalctl short.")


def cxx_final(nix233: bool) -> Book:
    b = Book()
    year = 2026 if nix233 else 2025
    t = dt.datetime(year, 2 if nix233 else 11, 4, 2, 10, 0, tzinfo=dt.UTC).timestamp()
    pid, host, ident = 1907, "mimas", "hydra-queue-runner"
    src = H_CXX + " subprojects/hydra/hydra-queue-runner/"
    nix = "NixOS/nix@2.34.0 " if nix233 else "NixOS/nix@2.32.0 "
    b.add(f"-- Boot {uuid.UUID(int=R.getrandbits(128)).hex} --", "journalctl boot line", "journalctl(1)")
    machines = ["ssh://build@elated-minsky.builder.nixos.org", "ssh://build@goofy-hopcroft.builder.nixos.org",
                "ssh://build@sleepy-brown.builder.nixos.org"]
    build = 312000000
    for i in range(24):
        t += R.uniform(1, 6)
        if i % 6 == 0:
            b.add((t, pid, "checking the queue for builds...", 5), "checking the queue", src + "queue-monitor.cc:102")
            b.add((t, pid, "got notification: new builds added to the queue", 6), "got notification", src + "queue-monitor.cc:68")
            for _ in range(2):
                build += 1
                b.add((t, pid, f"loading build {build} (nixpkgs:trunk:python3Packages.pkg{build % 1000}.x86_64-linux)", 6),
                      "loading build", src + "queue-monitor.cc:152")
        bid = build - i % 2
        drv = f"/nix/store/{h()}-python3.12-pkg{bid % 1000}-1.{i}.drv"
        out = drv[:-4]
        m = machines[i % 3]
        if i == 4:
            b.add((t, pid, f"copying output {L}{out}{RQ} of {L}{drv}{RQ} from local store", 5),
                  "copying output ... from local store (queue monitor)", src + "queue-monitor.cc:587")
            size = R.randint(10**5, 10**7)
            b.add((t, pid, f"copying path '{out}' ({size} bytes, compressed 74.1% in {size // 3000} ms) to binary cache", 6),
                  "copying path ... to binary cache", nix + "src/libstore/binary-cache-store.cc:184")
            b.add((t, pid, f"marking build {bid} as succeeded (cached)", 5), "marking build as succeeded (cached)", src + "queue-monitor.cc:256")
            continue
        b.add((t, pid, f"performing step {L}{drv}{RQ} 1 times on {L}{m}{RQ} (needed by build {bid} and {i % 4} others)", 5),
              "performing step", src + "builder.cc:150")
        t += R.uniform(20, 300)
        if i == 7:
            b.add((t, pid, f"discarding cancelled build {bid}", 5), "discarding cancelled build", src + "queue-monitor.cc:364")
            b.add((t, pid, f"maybe cancelling build step {L}{drv}{RQ}", 5), "maybe cancelling build step", src + "builder.cc:124")
            b.add((t, pid, f"marking step 1 of build {bid} as cancelled", 5), "marking step as cancelled", src + "builder.cc:215")
            continue
        if i == 9:
            b.add((t, pid, f"priority of build {bid} increased", 5), "priority of build increased", src + "queue-monitor.cc:370")
        if i == 11:
            b.add((t, pid, f"marking step 1 of build {bid} as orphaned", 3), "marking step as orphaned", src + "builder.cc:164")
            continue
        if i == 13:
            b.add((t, pid, f"aborting unsupported build step '{drv}' (type 'riscv64-linux')", 3),
                  "aborting unsupported build step", src + "dispatcher.cc:374")
            continue
        if i == 15:
            err = "error: unexpected end-of-file"
            b.add((t, pid, f"possibly transient failure building {L}{drv}{RQ} on {L}{m}{RQ}: {err}", 3),
                  "possibly transient failure", src + "builder.cc:261")
            b.add((t, pid, f"will disable machine {L}{m}{RQ} for 62s", 5), "will disable machine", src + "build-remote.cc:641")
            b.add((t, pid, f"will retry {L}{drv}{RQ} after 66s", 5), "will retry", src + "builder.cc:63")
            continue
        size = R.randint(10**5, 6 * 10**8)
        pct = R.uniform(55, 85)
        b.add((t, pid, f"copying path '{out}' ({size} bytes, compressed {pct:.1f}% in {size // 2500 + 30} ms) to binary cache", 6),
              "copying path ... to binary cache", nix + "src/libstore/binary-cache-store.cc:184")
        nar = f"nar/{h(52)}.nar.xz"
        if nix233:
            b.add((t, pid, f"uploading 'https://nix-cache.s3.dualstack.us-east-1.amazonaws.com/{nar}'...", 6),
                  "uploading '...'... (file transfer activity, Nix >= 2.33)", "NixOS/nix@2.33.0 src/libstore/filetransfer.cc:102-104")
            if i == 17:
                b.add((t, pid, f"warning: error: unable to upload 'https://nix-cache.s3.dualstack.us-east-1.amazonaws.com/{nar}': HTTP error 503 (curl error: ); retrying in 267 ms", 4),
                      "retry warning (Nix >= 2.33)", "NixOS/nix@2.33.0 src/libstore/filetransfer.cc:647")
        else:
            b.add((t, pid, f"uploaded 's3://nix-cache/{nar}' ({int(size * (1 - pct / 100))} bytes) in {size // 9000 + 20} ms", 5),
                  "uploaded 's3://...' (AWS SDK store, Nix <= 2.32)", "NixOS/nix@2.32.0 src/libstore/s3-binary-cache-store.cc:485")
            b.add((t, pid, f"uploaded 's3://nix-cache/{out[11:43]}.narinfo' (1206 bytes) in 61 ms", 5),
                  "uploaded 's3://...' (AWS SDK store, Nix <= 2.32)", "NixOS/nix@2.32.0 src/libstore/s3-binary-cache-store.cc:485")
        if i == 19:
            b.add((t, pid, f"fetching NAR contents of '{out}'...", 5), "fetching NAR contents", src + "../hydra-queue-runner/build-result.cc:37")
        b.add((t, pid, f"marking build {bid} as succeeded", 5), "marking build as succeeded", src + "builder.cc:332")
        if i == 20:
            b.add((t, pid, "warning: 8 concurrent database updates; PostgreSQL may be stalled", 3),
                  "concurrent database updates", src + "hydra-queue-runner.cc:141")
            b.add((t, pid, "removing machine ‘ssh://build@hopeful-rivest.builder.nixos.org’", 5),
                  "removing machine", src + "hydra-queue-runner.cc:179")
        if i == 21:
            b.add((t, pid, "terminate called after throwing an instance of 'pqxx::broken_connection'", 3),
                  "terminate called after throwing", "GCC libstdc++-v3/libsupc++/vterminate.cc (the verbose terminate handler)")
            b.add((t, pid, "  what():  server closed the connection unexpectedly", 3), "  what():", "GCC libstdc++-v3/libsupc++/vterminate.cc")
            for text in ("hydra-queue-runner.service: Main process exited, code=killed, status=6/ABRT",
                         "hydra-queue-runner.service: Failed with result 'signal'.",
                         "hydra-queue-runner.service: Consumed 3d 4h 12min 7.201s CPU time.",
                         "hydra-queue-runner.service: Scheduled restart job, restart counter is at 1.",
                         "Stopped Hydra queue runner.", "Starting Hydra queue runner...", "Started Hydra queue runner."):
                b.add((t, 1, text, 6, "systemd"), "systemd: " + text.split(":")[-1].split(",")[0][:30],
                      "systemd src/core (service.c, unit.c, job.c status messages); unit Description from nixos-modules/hydra.nix at a40d4286")
            pid = 2412
            b.add((t + 5, pid, "checking the queue for builds...", 5), "checking the queue", src + "queue-monitor.cc:102")
    return b


def write_cxx(b: Book, name: str, title: str, host: str = "mimas") -> None:
    lines, raw, records = [], [], []
    for item in b.lines:
        if isinstance(item, str):
            lines.append(item)
            continue
        t, pid, msg, prio, *ident = item
        who = ident[0] if ident else "hydra-queue-runner"
        lines.append(short(t, host, who, pid, msg))
        if who == "hydra-queue-runner":
            raw.append(f"<{prio}>{msg}")
        records.append({"__REALTIME_TIMESTAMP": str(int(t * 1e6)), "_HOSTNAME": host,
                        "SYSLOG_IDENTIFIER": who, "_PID": str(pid), "PRIORITY": str(prio),
                        "_SYSTEMD_UNIT": "hydra-queue-runner.service" if who != "systemd" else "init.scope",
                        "MESSAGE": msg})
    b.lines = lines
    b.write(name + ".journal.txt", title + " journalctl short.")
    (OUT / f"{name}.stderr.txt").write_text("\n".join(raw) + "\n", encoding="utf-8")
    (OUT / f"{name}.stderr.txt.sources.md").write_text(
        (OUT / f"{name}.journal.txt.sources.md").read_text().replace(f"# {name}.journal.txt", f"# {name}.stderr.txt")
        + "\nRaw stderr of `hydra-queue-runner -v` with IN_SYSTEMD=1: each line starts with the "
        "syslog priority `<N>` of its level (Nix `SimpleLogger`), which journald strips.\n", encoding="utf-8")
    (OUT / f"{name}.journal.json").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    (OUT / f"{name}.journal.json.sources.md").write_text(
        (OUT / f"{name}.journal.txt.sources.md").read_text().replace(f"# {name}.journal.txt", f"# {name}.journal.json")
        + "\n`journalctl -o json`: one object per line (MESSAGE, PRIORITY, __REALTIME_TIMESTAMP in µs, _PID, "
        "_HOSTNAME, SYSLOG_IDENTIFIER, _SYSTEMD_UNIT).\n", encoding="utf-8")


def cxx_2018() -> None:
    b = Book()
    t = dt.datetime(2018, 6, 11, 17, 3, 0, tzinfo=dt.UTC).timestamp()
    pid, host, ident = 812, "hydra", "hydra-queue-runner"
    old = "NixOS/hydra@ccd046ca3db27222b4aaf7644f9fdb2e5c7da328 src/hydra-queue-runner/"
    nix = "NixOS/nix@2.3.16 src/libstore/binary-cache-store.cc:179"
    build = 1000
    b.add("-- Logs begin at Sun 2018-06-10 09:00:01 UTC, end at Mon 2018-06-11 18:00:00 UTC. --", "journalctl header", "journalctl(1)")
    for i in range(20):
        t += R.uniform(1, 8)
        if i % 4 == 0:
            b.add(short(t, host, ident, pid, f"checking the queue for builds > {build}..."), "checking the queue (old wording)", old + "queue-monitor.cc")
            build += 1
            b.add(short(t, host, ident, pid, f"loading build {build} (hello:master:hello)"), "loading build", old + "queue-monitor.cc")
            b.add(short(t, host, ident, pid, "got notification: new builds added to the queue"), "got notification", old + "queue-monitor.cc")
        drv = f"/nix/store/{h()}-hello-2.10.drv"
        b.add(short(t, host, ident, pid, f"performing step {L}{drv}{RQ} 1 times on {L}localhost{RQ} (needed by build {build} and 0 others)"),
              "performing step", old + "builder.cc")
        t += R.uniform(3, 40)
        size = R.randint(10**5, 10**8)
        b.add(short(t, host, ident, pid, f"copying path '{drv[:-4]}' ({size} bytes, compressed {R.uniform(60, 80):.1f}% in {size // 4000} ms) to binary cache"),
              "copying path ... to binary cache (file:// cache)", nix)
        if i == 7:
            b.add(short(t, host, ident, pid, "status: " + json.dumps({"status": "up", "time": int(t), "pid": pid, "nrQueuedBuilds": 3, "nrActiveSteps": 1, "memoryTokensInUse": 0, "nrNotificationsDone": 12}, separators=(",", ":"))),
                  "periodic status dump", old + "hydra-queue-runner.cc:676")
        if i == 11:
            b.add(short(t, host, ident, pid, f"marking build {build} as failed"), "marking build as failed", old + "builder.cc")
            continue
        b.add(short(t, host, ident, pid, f"marking build {build} as succeeded"), "marking build as succeeded", old + "builder.cc")
    b.write("2018-local.journal.txt", "A 2018 C++ runner on a file:// cache (Nix 2.0 to 2.3), journalctl short.")


# ---------------------------------------------------------------------------------------
def rust() -> None:
    runner, builder = Book(), Book()
    rr = H_RUST + " subprojects/hydra-queue-runner/src/"
    bb = H_RUST + " subprojects/hydra-builder/src/"
    t = dt.datetime(2026, 11, 29, 3, 0, 0, tzinfo=dt.UTC).timestamp()
    rpid, bpid = 2005, 4410
    host_r, host_b = "mimas", "elated-minsky"
    mid = str(uuid.UUID(int=R.getrandbits(128), version=4))
    T = "hydra_queue_runner::state"
    BT = "hydra_builder::state"

    def r(line: str, kind: str, src: str) -> None:
        runner.add(short(t, host_r, "hydra-queue-runner", rpid, line), kind, src)

    def b(line: str, kind: str, src: str) -> None:
        builder.add(short(t, host_b, "hydra-builder", bpid, line), kind, src)

    runner.add("-- Boot 4c3b1d0e9f8a47b6a5c4d3e2f1a0b9c8 --", "journalctl boot line", "journalctl(1)")
    r(tracing(t, "INFO", "", "hydra_queue_runner", "QueueRunner starting task loops"), "QueueRunner starting task loops", rr + "main.rs:40")
    r(tracing(t, "INFO", "", "hydra_queue_runner", "QueueRunner listening on grpc: - and rest: -"), "QueueRunner listening on", rr + "main.rs:178")
    t += 3
    r(tracing(t, "INFO", "open_tunnel", "hydra_queue_runner::server::grpc", f"Registered new machine: machine_id={mid} machine=Machine {{ hostname: \"{host_b}\", systems: [\"x86_64-linux\"], max_jobs: 48 }}"),
      "Registered new machine", rr + "server/grpc.rs:314")
    b(tracing(t, "INFO", "init_client", "hydra_builder::grpc", "connecting to https://queue-runner.hydra.nixos.org"), "connecting to", bb + "grpc.rs:208")
    b(tracing(t, "INFO", "start_bidirectional_stream:check_version_compatibility", "hydra_builder::grpc", "Version check passed: client=1.4.0, server=1.4.0"),
      "Version check passed", bb + "grpc.rs:342")
    build = 318120000
    for i in range(16):
        t += R.uniform(0.5, 4)
        build += 1
        step_nr = 1 + i % 3
        drv = f"{h()}-python3.13-pkg{i}-2.{i}.drv"
        job = str(uuid.UUID(int=R.getrandbits(128), version=4))
        presigned = i % 5 != 3
        r(tracing(t, "INFO", "do_dispatch_once:realise_drv_on_valid_machine", T,
                  f"Submitting build drv={drv} on machine={mid} hostname={host_b} build_id={build} step_nr={step_nr}"),
          "Submitting build", rr + "state/mod.rs:1130")
        opts = "Some(PresignedUploadOpts { upload_debug_info: false })" if presigned else "None"
        req = (f'request=Build(BuildMessage {{ build_id: "{job}", drv: Some(ProtoStorePath(StorePath({drv}))), '
               f"max_log_size: 67108864, max_silent_time: 10800, build_timeout: 86400, max_output_size: 4294967295, "
               f"presigned_url_opts: {opts}, resolved_drv: Some(Basic {{ outputs: {{}}, inputs: {{}}, platform: \"x86_64-linux\", builder: \"/bin/sh\" }}) }})")
        sd = f"drv=Some(ProtoStorePath(StorePath({drv})))"
        b(tracing(t, "INFO", "start_bidirectional_stream:handle_request:schedule_build", BT, f"Building {drv}", f"{req} {sd}"),
          "Building {drv}", bb + "state.rs:281")
        t += R.uniform(10, 200)
        if i == 6:
            err = "build of '/nix/store/" + drv + "' failed: builder failed with exit code 2"
            b(tracing(t, "ERROR", "", BT, f"Build of {drv} failed with: {err}"), "Build of ... failed with", bb + "state.rs:310")
            ids = f'machine_id="{mid}" build_id="{job}"'
            r(tracing(t, "INFO", "complete_build:fail_step_by_uuid:fail_step", T, f"removing job from running in system queue: drv_path={drv}",
                      f"{ids} machine_id={mid} build_id={job} machine_id={mid} drv_path={drv}"),
              "removing job from running in system queue", rr + "state/mod.rs:2224")
            r(tracing(t, "INFO", "complete_build:fail_step_by_uuid:fail_step", T, f"will retry '{drv}' after 60s",
                      f"{ids} machine_id={mid} build_id={job} machine_id={mid} drv_path={drv}"),
              "will retry", rr + "state/mod.rs:2256")
            continue
        if i == 11:
            r(tracing(t, "INFO", "complete_build:fail_step_by_uuid:fail_step:inner_fail_job", T, f"marking build {build} as failed"),
              "marking build as failed", rr + "state/mod.rs:2438")
            b(tracing(t, "ERROR", "", BT, f"Build of {drv} failed with: build failed: hash mismatch in fixed-output derivation"),
              "Build of ... failed with", bb + "state.rs:310")
            continue
        if i == 13:
            r(tracing(t, "INFO", "queue_monitor_loop", T, "got notification: builds cancelled or bumped"), "got notification", rr + "state/mod.rs:1580")
            r(tracing(t, "INFO", "do_dispatch_once:realise_drv_on_valid_machine", T, f"maybe cancelling build step {drv}"), "maybe cancelling build step", rr + "state/mod.rs:838")
            b(tracing(t, "INFO", "start_bidirectional_stream:handle_request:abort_build", BT, "Try cancelling build", f"build_id={job}"),
              "Try cancelling build", bb + "state.rs:369")
            continue
        b(tracing(t, "INFO", "process_build", BT, f"Finished building {drv}", sd), "Finished building", bb + "state.rs:589")
        how = "using presigned urls" if presigned else "to queue runner directly"
        inner = "upload_nars_presigned" if presigned else "upload_nars_regular"
        up_ids = f'build_id="{job}" machine_id="{mid}" presigned_url_opts={opts}'
        inner_fields = (f"output_paths=[StorePath({drv[:-4]})] opts=PresignedUploadOpts {{ upload_debug_info: false }} "
                        f'build_id="{job}" machine_id="{mid}"') if presigned else f"nars=[StorePath({drv[:-4]})]"
        tail = f"{sd} {up_ids} {inner_fields}"
        b(tracing(t, "INFO", f"process_build:upload_nars:{inner}", BT, f"Start uploading paths {how}", tail),
          f"Start uploading paths {how}", bb + ("state.rs:1087" if presigned else "state.rs:1027"))
        el = R.uniform(0.3, 90)
        t += el
        whole, frac = divmod(round(el * 1e9), 10**9)
        text = f"{whole}.{str(frac).rjust(9, '0').rstrip('0')}s" if whole else f"{round(el * 1e3, 6)}ms"
        b(tracing(t, "INFO", f"process_build:upload_nars:{inner}", BT, f"Finished uploading paths {how}. elapsed={text}", tail),
          f"Finished uploading paths {how}", bb + ("state.rs:1187" if presigned else "state.rs:1059"))
        b(tracing(t, "INFO", "", BT, f"Successfully completed build process for {drv}"), "Successfully completed build process", bb + "state.rs:293")
        ids = f'machine_id="{mid}" build_id="{job}"'
        r(tracing(t, "INFO", "complete_build:succeed_step_by_uuid:succeed_step", T, f"marking job as done: drv_path={drv}",
                  f"{ids} machine_id={mid} build_id={job} machine_id={mid} drv_path={drv}"),
          "marking job as done", rr + "state/mod.rs:1882")
        if not presigned:
            r(tracing(t, "INFO", "schedule_upload", "hydra_queue_runner::state::uploader", f"Scheduling new path upload: [StorePath({drv[:-4]})]"),
              "Scheduling new path upload", rr + "state/uploader.rs:291")
            r(tracing(t, "INFO", "upload_msg_inner", "hydra_queue_runner::state::uploader", "Start uploading 1 paths"), "Start uploading {} paths", rr + "state/uploader.rs:333")
            r(tracing(t, "INFO", "upload_msg_inner", "hydra_queue_runner::state::uploader", "1 paths results in 1 paths_to_copy"), "{} paths results in", rr + "state/uploader.rs:348")
            r(tracing(t, "INFO", "", "hydra_queue_runner::state::uploader", "1 paths missing in remote store that will be copied"), "{} paths missing", rr + "state/uploader.rs:424")
            r(tracing(t, "INFO", "upload_msg_inner", "hydra_queue_runner::state::uploader", "Finished attempting to upload 1 paths to remotes stores"),
              "Finished attempting to upload", rr + "state/uploader.rs:366")
        if i == 9:
            t += 2
            rpid = 2388
            r(tracing(t, "INFO", "", "hydra_queue_runner", "QueueRunner starting task loops"), "QueueRunner starting task loops (after a restart: new PID)", rr + "main.rs:40")
            r(tracing(t, "INFO", "", "hydra_queue_runner", "QueueRunner listening on grpc: - and rest: -"), "QueueRunner listening on", rr + "main.rs:178")
            r(tracing(t, "INFO", "open_tunnel", "hydra_queue_runner::server::grpc", f"Registered new machine: machine_id={mid} machine=Machine {{ hostname: \"{host_b}\", systems: [\"x86_64-linux\"], max_jobs: 48 }}"),
              "Registered new machine", rr + "server/grpc.rs:314")
    runner.write("queue-runner.journal.txt", "The Rust queue runner (unit hydra-queue-runner-dev.service, identifier hydra-queue-runner), tracing-subscriber 0.3.23 compact lines under journalctl short.")
    builder.write("builder.journal.txt", "A Rust builder (unit hydra-queue-builder-dev.service, identifier hydra-builder), same layout.")
    for book, name, unit in ((runner, "queue-runner", "hydra-queue-runner-dev.service"), (builder, "builder", "hydra-queue-builder-dev.service")):
        recs = []
        for line in book.lines:
            if line.startswith("--"):
                continue
            head, msg = line.split("]: ", 1)
            ident, pid = head.rsplit(" ", 1)[1].split("[")
            stamp = msg[:27]
            ts = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()
            recs.append({"__REALTIME_TIMESTAMP": str(int(ts * 1e6) + 180), "_HOSTNAME": head.split()[3],
                         "SYSLOG_IDENTIFIER": ident, "_PID": pid, "PRIORITY": "6",
                         "_SYSTEMD_UNIT": unit, "MESSAGE": msg})
        (OUT / f"{name}.journal.json").write_text("\n".join(json.dumps(x) for x in recs) + "\n", encoding="utf-8")
        (OUT / f"{name}.journal.json.sources.md").write_text(
            (OUT / f"{name}.journal.txt.sources.md").read_text().replace(f"# {name}.journal.txt", f"# {name}.journal.json")
            + "\n`journalctl -o json`: PRIORITY 6 on every line (tracing writes no `<N>` prefix, so journald files stderr lines at the unit's default level).\n",
            encoding="utf-8")


if __name__ == "__main__":
    which = sys.argv[2]
    OUT.mkdir(parents=True, exist_ok=True)
    if which == "cxx":
        cxx_2016()
        cxx_2018()
        write_cxx(cxx_final(False), "2025-final", "The final C++ runner on Nix 2.28-2.32 (AWS SDK S3 store): step lifecycle, local-store copies, cancellation, bump, orphan, unsupported step, transient failure and retry, machine removal, an abort and systemd's restart lines.")
        write_cxx(cxx_final(True), "2026-nix233", "The final C++ runner on Nix >= 2.33 (curl S3 store: no per-upload info line; file-transfer activity lines and retry warnings).")
    else:
        rust()
