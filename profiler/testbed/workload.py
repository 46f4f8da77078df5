"""Workloads: a DAG of derivations whose outputs are real trees of this machine's files.

A step's output is a selection of real files under a root (as the corpus does), so its NAR
is a real NAR of realistic content: shared libraries, binaries, Python, locale data,
documentation. Sizes are drawn log-uniformly, build durations log-normally, dependencies
from earlier steps, all from one seed. A workload is saved as JSON and can be loaded back,
so two runs (say xz-6 and zstd-3) replay the same DAG on the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from profiler.errors import UsageError
from profiler.nar import base32
from profiler.payloads import corpus

STORE = "/nix/store"
_NAMES = (
    "openssl",
    "zlib",
    "curl",
    "glibc",
    "python3",
    "perl",
    "gcc-unwrapped",
    "coreutils",
    "bash",
    "ncurses",
    "libxml2",
    "sqlite",
    "git",
    "gnutls",
    "systemd",
    "llvm",
    "boost",
    "qt5-base",
    "gtk3",
    "libffi",
    "readline",
    "expat",
    "pcre2",
    "xz",
    "zstd",
    "icu",
    "harfbuzz",
    "freetype",
    "fontconfig",
    "nodejs",
    "rustc",
    "go",
    "ghc",
    "emacs",
    "vim",
    "firefox-unwrapped",
    "postgresql",
    "nginx",
    "ffmpeg",
    "imagemagick",
)
_SOURCES = (
    ("elf-libs", ("*.so", "*.so.*")),
    ("elf-bins", ()),
    ("python", ("*.py", "*.pyc")),
    ("locale", ()),
    ("docs", ()),
    ("near-duplicates", ()),
)


SHAPES = {"mixed": (0, 1, 1, 2, 3), "flat": (0,), "deep": (1, 1, 2)}


@dataclass(frozen=True)
class Output:
    """A step's output: a store path and the tree its NAR is made of."""

    path: str
    root: str
    include: tuple[str, ...]
    budget_bytes: int
    skip_bytes: int  # start this far into the root's files, so outputs differ


@dataclass(frozen=True)
class StepSpec:
    index: int
    name: str
    drv_path: str
    system: str
    build_seconds: float
    deps: tuple[int, ...]
    output: Output
    job: str


@dataclass
class Workload:
    seed: int
    steps: list[StepSpec] = field(default_factory=list)
    project: str = "testbed"
    jobset: str = "main"

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "seed": self.seed,
                    "project": self.project,
                    "jobset": self.jobset,
                    "steps": [asdict(s) for s in self.steps],
                },
                f,
                indent=1,
            )
            f.write("\n")


SYSTEM = "x86_64-linux"  # the system of every emulated machine (engine.Engine)
MAX_BUILD_SECONDS = 86_400.0


def load(path: str) -> Workload:
    """A workload saved by :meth:`Workload.save`, checked field by field: anything the
    emulator could not run (a null or negative build time, a dependency on a later step, a
    root that is not a directory here) is a one-line ``UsageError`` naming the step."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"{path}: not a testbed workload: {exc}") from None
    try:
        return _workload(doc)
    except _Bad as exc:
        raise UsageError(f"{path}: not a testbed workload: {exc}") from None


class _Bad(Exception):
    pass


def _field(obj: object, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _Bad(f"{where}: no {key!r}")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _Bad(f"{where}: {key!r} is {value!r}")
    return value


def _workload(doc: object) -> Workload:
    steps_doc = _field(doc, "steps", list, "workload")
    if not steps_doc:
        raise _Bad("no steps")
    steps = [_step(i, s) for i, s in enumerate(steps_doc)]
    assert isinstance(doc, dict)
    project, jobset = doc.get("project", "testbed"), doc.get("jobset", "main")
    if not (isinstance(project, str) and project and isinstance(jobset, str) and jobset):
        raise _Bad("project and jobset must be names")
    return Workload(_field(doc, "seed", int, "workload"), steps, project, jobset)


def _step(i: int, s: object) -> StepSpec:
    where = f"step {i}"
    if _field(s, "index", int, where) != i:
        raise _Bad(f"{where}: index is {_field(s, 'index', int, where)}, expected {i}")
    texts = {k: _field(s, k, str, where) for k in ("name", "drv_path", "system", "job")}
    if not all(texts.values()):
        raise _Bad(f"{where}: empty name, drv_path, system or job")
    if texts["system"] != SYSTEM:
        raise _Bad(f"{where}: system {texts['system']!r}; the testbed's machines are {SYSTEM}")
    seconds = float(_field(s, "build_seconds", (int, float), where))
    if not 0 <= seconds <= MAX_BUILD_SECONDS:  # also false for nan
        raise _Bad(f"{where}: build_seconds {seconds!r} (0 to {MAX_BUILD_SECONDS:g})")
    deps = _field(s, "deps", list, where)
    if any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d < i for d in deps):
        raise _Bad(f"{where}: deps must be indexes of earlier steps, got {deps!r}")
    o = _field(s, "output", dict, where)
    out = f"{where} output"
    root = _field(o, "root", str, out)
    if not os.path.isdir(root):
        raise _Bad(f"{out}: root {root!r} is not a directory on this machine")
    include = _field(o, "include", list, out)
    if not all(isinstance(g, str) for g in include):
        raise _Bad(f"{out}: include must list glob patterns")
    budget, skip = _field(o, "budget_bytes", int, out), _field(o, "skip_bytes", int, out)
    if budget < 1 or skip < 0:
        raise _Bad(f"{out}: budget_bytes must be positive and skip_bytes not negative")
    path = _field(o, "path", str, out)
    output = Output(path, root, tuple(include), budget, skip)
    return StepSpec(i, texts["name"], texts["drv_path"], SYSTEM, seconds, tuple(sorted(set(deps))),
                    output, texts["job"])  # fmt: skip


def store_path(seed: int, name: str, suffix: str = "") -> str:
    digest = hashlib.sha256(f"{seed}:{name}{suffix}".encode()).digest()[:20]
    return f"{STORE}/{base32.encode(digest)}-{name}{suffix}"


def _roots() -> list[tuple[str, tuple[str, ...]]]:
    """Candidate output roots on this machine, from the corpus classes."""
    found = []
    for spec in corpus.CLASSES:
        wanted = dict(_SOURCES)
        if spec.name not in wanted:
            continue
        for root in corpus.candidates(spec):
            if os.path.isdir(root) and not os.path.islink(root):
                found.append((root, wanted[spec.name]))
                break
    if not found:
        raise UsageError("testbed: found no system trees to build outputs from")
    return found


def generate(
    steps: int,
    seed: int = 1,
    systems: tuple[str, ...] = ("x86_64-linux",),
    build_scale: float = 1.0,
    size_scale: float = 1.0,
    shape: str = "mixed",
) -> Workload:
    """A random DAG of ``steps`` derivations.

    Build seconds are log-normal around 0.8 s x ``build_scale``; output sizes log-uniform
    between 40 KiB and 3 MiB x ``size_scale``. ``shape`` (:data:`SHAPES`): ``mixed``, each
    step depends on up to 3 earlier ones; ``flat``, no dependencies (one wave, as a mass
    rebuild's leaves); ``deep``, each step depends on 1-2 of the 3 just before it (long
    chains: a critical path).
    """
    if steps < 1:
        raise UsageError("testbed: --steps must be at least 1")
    if shape not in SHAPES:
        raise UsageError(f"testbed: DAG shape {shape!r}: one of {', '.join(SHAPES)}")
    rng = random.Random(seed)
    roots = _roots()
    wl = Workload(seed)
    for i in range(steps):
        base = _NAMES[i % len(_NAMES)]
        name = f"{base}-{1 + i // len(_NAMES)}.{rng.randint(0, 9)}"
        root, include = roots[rng.randrange(len(roots))]
        size = int(math.exp(rng.uniform(math.log(40 << 10), math.log(3 << 20))) * size_scale)
        k = rng.choice(SHAPES[shape])
        pool = range(max(0, i - 3), i) if shape == "deep" else range(i)
        deps = tuple(sorted(rng.sample(pool, k=min(len(pool), k))))
        wl.steps.append(
            StepSpec(
                index=i,
                name=name,
                drv_path=store_path(seed, name, ".drv"),
                system=systems[rng.randrange(len(systems))],
                build_seconds=round(rng.lognormvariate(math.log(0.8), 0.6) * build_scale, 3),
                deps=deps,
                output=Output(
                    store_path(seed, name),
                    root,
                    include,
                    max(size, 4096),
                    rng.randrange(0, 8 << 20),
                ),
                job=f"{wl.project}:{wl.jobset}:{base}",
            )
        )
    return wl


@functools.lru_cache(maxsize=4096)
def output_selection(output: Output) -> frozenset[bytes]:
    """The files of ``output``: skip ``skip_bytes`` into its root, then take the budget.

    Cached: walking a root is emulator overhead, and must not land in a measured phase.
    """
    skipped, _ = corpus.select_files(output.root, output.include, output.skip_bytes)
    chosen, _ = corpus.select_files(
        output.root, output.include, output.skip_bytes + output.budget_bytes
    )
    files = set(chosen - skipped)
    if not files:  # the root is smaller than the skip: take from its start
        files = set(corpus.select_files(output.root, output.include, output.budget_bytes)[0])
    return frozenset(corpus.with_parents(files))


def failing_leaves(wl: Workload, n: int, seed: int) -> frozenset[int]:
    """``n`` steps that no other step depends on (so a failure propagates nowhere), chosen
    with ``seed``: the steps whose builds fail in a run with failures."""
    needed = {d for step in wl.steps for d in step.deps}
    leaves = [step.index for step in wl.steps if step.index not in needed]
    rng = random.Random(seed * 7919 + n)
    return frozenset(rng.sample(leaves, min(n, len(leaves))))
