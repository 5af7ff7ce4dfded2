"""`make bench`: every workload with every competitor, side by side in one run; writes the page.

    python bench/run.py [--size small|full] [--out DIR] [--only files,postgres] [--rounds N]

``--size full`` (the default) makes docs/benchmarks.md and docs/bench/*.png;
``--size small`` is the smoke test (seconds, not for comparison): write it
elsewhere with ``--out``. Peers come from the ``bench`` extra
(``pip install -e '.[bench]'``); one that is not installed is left out and
the page says so. PostgreSQL is ``ETL_NB_TEST_PG_URL`` (default the local
server, user postgres).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable for `bench.*`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import cells, files, postgres, report, rest, runs, startup
from bench.harness import REPO, Sample, child_main, quiet_env, rotated, run_child, sample_from

WORKLOADS: dict[str, ModuleType] = {m.NAME: m for m in (files, cells, postgres, rest, runs, startup)}
ROUNDS = {"small": 1, "full": 5}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size", choices=["small", "full"], default="full")
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="folder for benchmarks.md and bench/")
    parser.add_argument("--only", default="", help=f"comma-separated workloads ({', '.join(WORKLOADS)})")
    parser.add_argument("--rounds", type=int, help="rounds per workload (default: 1 small, 5 full)")
    args = parser.parse_args(argv)
    args.only = [name for name in args.only.split(",") if name] or list(WORKLOADS)
    unknown = set(args.only) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workload {', '.join(sorted(unknown))}; choose from {', '.join(WORKLOADS)}")
    return args


def missing_peers(workload: ModuleType) -> dict[str, str]:
    """Competitors whose modules are not importable here, with the reason for the page."""
    left_out = {}
    for competitor, modules in getattr(workload, "IMPORTS", {}).items():
        absent = [m for m in modules if importlib.util.find_spec(m.split(".")[0]) is None]
        if absent:
            left_out[competitor] = f"`{absent[0]}` is not installed here (`pip install -e '.[bench]'`)"
    return left_out


def measure(
    workload: ModuleType, size: str, rounds: int, warmup: bool, workdir: Path
) -> tuple[list[Sample], dict[str, Any], dict[str, str]]:
    """Every competitor of ``workload``, round by round; the samples, the shared params, who was left out."""
    left_out = missing_peers(workload)
    competitors = [c for c in workload.COMPETITORS if c not in left_out]
    env = quiet_env(workdir)
    samples: list[Sample] = []
    with workload.prepare(size, workdir) as params:
        if workload.ONE_PROCESS:
            answer = run_child(workload.NAME, "all", {**params, "competitors": competitors}, env)
            samples = [Sample(s["competitor"], s["round"], s["seconds"]) for s in answer["samples"]]
            return samples, params, left_out
        for round_ in range(-1 if warmup else 0, rounds):
            for competitor in rotated(competitors, max(round_, 0)):
                print(f"  {workload.NAME}: round {round_ + 1}/{rounds} {competitor}", file=sys.stderr)
                answer = run_child(workload.NAME, competitor, params, env)
                if round_ >= 0:  # round -1 is the unmeasured warm-up
                    samples.append(sample_from(answer, competitor, round_))
    return samples, params, left_out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rounds = args.rounds or ROUNDS[args.size]
    warmup = args.size == "full"
    results: dict[str, Any] = {"workloads": {}}
    load_before = f"{os.getloadavg()[0]:.2f}"
    servers: list[str] = []
    with tempfile.TemporaryDirectory(prefix="etl_nb_bench_") as tmp:
        for name in args.only:
            workload = WORKLOADS[name]
            print(f"{name} ...", file=sys.stderr)
            workdir = Path(tmp) / name
            workdir.mkdir()
            description = workload.DESCRIPTION.format(**{"rounds": rounds, **workload.SIZES[args.size]})
            try:
                samples, params, left_out = measure(workload, args.size, rounds, warmup, workdir)
            except Exception as exc:  # one workload that cannot run here must not lose the others
                print(f"{name} could not run: {exc}", file=sys.stderr)
                results["workloads"][name] = {"description": description, "error": _one_line(exc)}
                continue
            if params.get("server"):
                servers.append(params["server"])
            results["workloads"][name] = {
                "description": description,
                "samples": [sample.__dict__ for sample in samples],
                "left_out": left_out,
            }
    results["meta"] = {
        "size": args.size,
        "rounds": rounds,
        "warmup": warmup,
        "machine": report.machine(),
        "versions": report.versions(),
        "servers": sorted(set(servers)),
        "load_before": load_before,
        "load_after": f"{os.getloadavg()[0]:.2f}",
    }
    write(results, args.out)
    failed = [name for name, result in results["workloads"].items() if result.get("error")]
    return 1 if failed else 0


def write(results: dict[str, Any], out: Path) -> None:
    """benchmarks.md, bench/<workload>.png and bench/results.json under ``out``."""
    folder = out / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    charts = {}
    for name, result in results["workloads"].items():
        if result.get("samples"):
            report.chart(WORKLOADS[name], result, folder / f"{name}.png")
            charts[name] = f"bench/{name}.png"
    (folder / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out / "benchmarks.md").write_text(report.render(results, WORKLOADS, charts))
    print(f"wrote {out / 'benchmarks.md'} and {len(charts)} charts in {folder}", file=sys.stderr)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[-1] if text else ''}"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(WORKLOADS[sys.argv[2]], sys.argv[3], json.loads(sys.argv[4]))
    else:
        sys.exit(main())
