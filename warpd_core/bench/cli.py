"""``warpd bench [controller|ros|generator|dp|memory|train|all] [--quick] [--out DIR]``.

Each section prints its table and writes ``DIR/<section>.json`` + ``DIR/<section>.md``;
``all`` also writes ``DIR/summary.md`` (every section's table and targets). ``--quick`` is
the smallest configuration of every section (CI: well-formed output in under a minute,
numbers not meaningful). Exit code 0 unless a section failed to run.
"""

from __future__ import annotations

import argparse
import importlib
import time
import traceback
from pathlib import Path

SECTIONS = {
    "controller": "warpd_core.bench.controller",
    "ros": "warpd_core.bench.ros_loop",
    "generator": "warpd_core.bench.generator",
    "dp": "warpd_core.bench.dp",
    "memory": "warpd_core.bench.memory",
    "train": "warpd_core.bench.train",
}


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="real-time and learning-core benchmarks (print + JSON/markdown)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("section", nargs="?", default="all", choices=[*SECTIONS, "all"], help="which benchmark (default all)")
    p.add_argument("--quick", action="store_true", help="smallest configuration (CI smoke run)")
    p.add_argument("--out", default="results/bench", help="output directory (default results/bench)")
    p.add_argument("--executor", default="events", choices=["events", "single"],
                   help="ros section: executor of the controller, echo and driver processes")
    p.add_argument("--rt", type=int, default=0, metavar="PRIO",
                   help="ros section: run controller, echo and driver SCHED_FIFO at PRIO (needs CAP_SYS_NICE); "
                        "written as ros_rt.json/md")
    p.add_argument("--isolate", action="store_true",
                   help="ros section: pin controller, echo and driver to CPU 0 and the generator to the other CPUs "
                        "at nice 10 (with --rt also the controller's and echo's middleware threads; the "
                        "deployment split of DEPLOYING.md); written as ros[_rt]_iso.json/md")
    p.add_argument("--bundle", metavar="DIR",
                   help="generator section: time this bundle (torch, and ONNX Runtime when it has the graphs; "
                        "`warpd export --bundle DIR --onnx` adds them) instead of the grid of initialised bundles")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    names = list(SECTIONS) if args.section == "all" else [args.section]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    docs = {}
    t_all = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        print(f"== warpd bench {name}{' --quick' if args.quick else ''}", flush=True)
        module = importlib.import_module(SECTIONS[name])
        try:
            if name == "ros":
                docs[name] = module.run(args.quick, str(out), executor=args.executor, fifo=args.rt, isolate=args.isolate)
            elif name == "generator":
                docs[name] = module.run(args.quick, str(out), bundle=args.bundle)
            elif name == "memory":
                docs[name] = module.run(args.quick, str(out), ros_doc=docs.get("ros"))
            else:
                docs[name] = module.run(args.quick, str(out))
        except Exception:  # noqa: BLE001 - one section failing must not hide the others' results
            traceback.print_exc()
            failed.append(name)
        print(f"== {name}: {time.monotonic() - t0:.1f} s", flush=True)
    if args.section == "all":
        parts = ["# warpd bench results" + (" (quick)" if args.quick else ""), ""]
        for name in names:
            md = out / f"{name}.md"
            if md.exists():
                parts += [md.read_text(), ""]
        (out / "summary.md").write_text("\n".join(parts))
        print(f"== all sections: {time.monotonic() - t_all:.1f} s; summary: {out / 'summary.md'}", flush=True)
    if failed:
        print(f"warpd bench: sections failed: {', '.join(failed)}")
        return 1
    return 0
