"""The results page: machine, versions, one table and one chart per workload, the goals.

Everything here reads the results the harness gathered (``results.json``);
nothing is measured.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.harness import REPO, Goal

PACKAGES = [
    "etl_nb", "duckdb", "polars", "pyarrow", "SQLAlchemy", "psycopg", "adbc-driver-postgresql", "httpx",
    "papermill", "ipykernel", "ipython", "jupysql", "pandas", "dlt", "psutil", "matplotlib",
]  # fmt: skip
NOTES = REPO / "bench" / "notes"  # hand-written notes, one per workload, kept across runs
ETL_NB_COLOUR, BASELINE_COLOUR, PEER_COLOUR = "#d9480f", "#495057", "#74c0fc"


@dataclass(frozen=True)
class Row:
    """One competitor in one case: the figures of the table."""

    case: str
    competitor: str
    median: float
    low: float
    high: float
    peak_mib: float | None
    runs: int


def machine() -> dict[str, Any]:
    """What the page says about the machine the numbers come from."""
    import psutil

    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "system": f"{platform.system()} {platform.release()}",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "commit": _commit(),
    }


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def rows(workload: ModuleType, samples: list[dict[str, Any]]) -> list[Row]:
    """Median and range per (case, competitor), cases in the workload's order then any extra ones."""
    cases = list(workload.CASES)
    for sample in samples:
        cases += [case for case in sample["seconds"] if case not in cases]
    table = []
    for case in cases:
        for competitor in workload.COMPETITORS:
            values = [
                s["seconds"][case] for s in samples if s["competitor"] == competitor and case in s["seconds"]
            ]
            if not values:
                continue
            peaks = [s["peak_mib"] for s in samples if s["competitor"] == competitor and s.get("peak_mib")]
            peak = statistics.median(peaks) if peaks and workload.MEASURES_MEMORY else None
            table.append(
                Row(case, competitor, statistics.median(values), min(values), max(values), peak, len(values))
            )
    return table


def baseline_of(workload: ModuleType, case: str, table: list[Row]) -> Row | None:
    """The row each ratio of ``case`` is taken against."""
    in_case = {r.competitor: r for r in table if r.case == case}
    wanted = getattr(workload, "CASE_BASELINES", {}).get(case, workload.BASELINE)
    return in_case.get(wanted)


def judge(goal: Goal, table: list[Row]) -> tuple[str, bool | None]:
    """What was measured for ``goal``, and whether it is met (None: not measured)."""
    rows_by = {r.competitor: r for r in table if r.case == goal.case}
    mine = rows_by.get(goal.competitor)
    if mine is None:
        return "not measured", None
    if not goal.against:
        return seconds_text(mine.median), mine.median <= goal.limit
    peers = [rows_by[name] for name in goal.against if name in rows_by]
    if not peers:
        return "not measured", None
    if goal.metric == "peak_mib":
        if mine.peak_mib is None or any(p.peak_mib is None for p in peers):
            return "not measured", None
        ratio = mine.peak_mib / min(p.peak_mib or 0.0 for p in peers)
    else:
        ratio = mine.median / min(p.median for p in peers)
    return f"{ratio:.2f}×", ratio <= goal.limit


def goal_line(goal: Goal, table: list[Row]) -> str:
    measured, met = judge(goal, table)
    if met is None:
        return f"- {goal.text}: not measured in this run."
    if met:
        return f"- {goal.text}: **met** ({measured})."
    return f"- {goal.text}: **missed**: {measured} against {_limit_text(goal)}."


def _limit_text(goal: Goal) -> str:
    return seconds_text(goal.limit) if not goal.against else f"{goal.limit:g}×"


def seconds_text(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def render(results: dict[str, Any], workloads: dict[str, ModuleType], charts: dict[str, str]) -> str:
    """The whole Markdown page."""
    meta = results["meta"]
    m = meta["machine"]
    out = [
        "# Benchmarks",
        "",
        "Generated by `bench/run.py` (`make bench`); do not edit by hand. Every workload runs every "
        "competitor **side by side in one run**, interleaved round by round (each round starts with "
        "another competitor), each run a fresh process unless the workload says otherwise, so machine "
        "noise hits them alike. Figures are medians with the min–max range over the rounds; ratios are "
        "against the baseline of the case (**bold** in the table). Peak memory is the largest summed "
        "RSS of the run's process tree (psutil, sampled every 10 ms) or the process's own `VmHWM`, "
        "whichever is larger.",
        "",
        f"- size: **{meta['size']}**, {meta['rounds']} round(s)"
        + (", after one unmeasured warm-up round" if meta["warmup"] else ""),
        f"- measured {m['when']} at commit {m['commit']}",
        f"- machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['system']}, "
        f"Python {m['python']}; load average {meta['load_before']} before, {meta['load_after']} after",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
    ]
    if meta.get("servers"):
        out.append("- servers: " + ", ".join(meta["servers"]))
    if meta["size"] != "full":
        out += [
            "",
            "> **Smoke-test size**: these figures only show the harness works; compare at `--size full`.",
        ]
    out += ["", "## Goals", "", "| workload | goal | measured | |", "|---|---|---|---|"]
    for name, result in results["workloads"].items():
        workload = workloads[name]
        table = rows(workload, result.get("samples", []))
        for goal in workload.GOALS:
            measured, met = judge(goal, table)
            verdict = "—" if met is None else ("met" if met else f"**missed** (goal {_limit_text(goal)})")
            out.append(f"| {name} | {goal.text} | {measured} | {verdict} |")
    for name, result in results["workloads"].items():
        out += ["", *workload_section(workloads[name], result, charts.get(name))]
    return "\n".join(out) + "\n"


def workload_section(workload: ModuleType, result: dict[str, Any], chart: str | None) -> list[str]:
    out = [f"## {workload.TITLE} — `bench/{workload.NAME}.py`", "", result["description"]]
    if result.get("error"):
        return [*out, "", f"**Could not run here**: {result['error']}"]
    if result.get("left_out"):
        out.append("")
    for competitor, why in result.get("left_out", {}).items():
        out.append(f"- {workload.COMPETITORS[competitor]}: left out, {why}.")
    table = rows(workload, result["samples"])
    memory = workload.MEASURES_MEMORY
    header = "| case | competitor | median | min–max | × baseline |" + (
        " peak MiB | × baseline |" if memory else ""
    )
    out += ["", header, "|" + "---|" * (header.count("|") - 1)]
    for row in table:
        base = baseline_of(workload, row.case, table)
        label = workload.COMPETITORS[row.competitor]
        if base is not None and base.competitor == row.competitor:
            label = f"**{label}**"
        ratio = f"{row.median / base.median:.2f}×" if base and base.median else "—"
        cells = [
            row.case,
            label,
            seconds_text(row.median),
            f"{seconds_text(row.low)}–{seconds_text(row.high)}",
            ratio,
        ]
        if memory:
            mem_ratio = "—"
            if row.peak_mib and base and base.peak_mib:
                mem_ratio = f"{row.peak_mib / base.peak_mib:.2f}×"
            cells += [f"{row.peak_mib:.0f}" if row.peak_mib else "—", mem_ratio]
        out.append("| " + " | ".join(cells) + " |")
    extras = [(s["competitor"], s.get("extra", {})) for s in result["samples"]]
    scaled = {competitor: extra["scaled"] for competitor, extra in extras if "scaled" in extra}
    for competitor, figures in scaled.items():
        out += [
            "",
            f"{workload.COMPETITORS[competitor]} ran on {figures['from']:,} rows; its times are scaled "
            f"×{figures['to'] / figures['from']:g} to {figures['to']:,} rows (its peak memory is not).",
        ]
    out += ["", *[goal_line(goal, table) for goal in workload.GOALS]]
    note = NOTES / f"{workload.NAME}.md"
    if note.exists():
        out += ["", note.read_text().strip()]
    if chart:
        out += ["", f"![{workload.TITLE}]({chart})"]
    return out


def chart(workload: ModuleType, result: dict[str, Any], path: Path) -> None:
    """One PNG per workload: one panel per case, median bars with min–max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = [r for r in rows(workload, result["samples"]) if r.case in workload.CASES]
    cases = list(dict.fromkeys(r.case for r in table))
    figure, axes = plt.subplots(
        1, len(cases), figsize=(4.2 * len(cases), 0.55 * len(workload.COMPETITORS) + 1.6), squeeze=False
    )
    for axis, case in zip(axes[0], cases, strict=True):
        in_case = [r for r in table if r.case == case]
        base = baseline_of(workload, case, table)
        scale, unit = (1.0, "s") if max(r.high for r in in_case) >= 1 else (1000.0, "ms")
        labels = [workload.COMPETITORS[r.competitor].replace("`", "") for r in in_case]
        medians = [r.median * scale for r in in_case]
        whiskers = [
            [(r.median - r.low) * scale for r in in_case],
            [(r.high - r.median) * scale for r in in_case],
        ]
        colours = [
            ETL_NB_COLOUR
            if r.competitor == "etl_nb"
            else (BASELINE_COLOUR if base and r.competitor == base.competitor else PEER_COLOUR)
            for r in in_case
        ]
        axis.barh(range(len(in_case)), medians, xerr=whiskers, color=colours, capsize=3)
        if base is not None:  # each bar says its ratio to the baseline, as the table does
            for y, r in enumerate(in_case):
                axis.text(r.high * scale, y, f" {r.median / base.median:.2f}×", va="center", fontsize=7)
            axis.margins(x=0.18)
        axis.set_yticks(range(len(in_case)), [_wrap(label) for label in labels], fontsize=8)
        axis.invert_yaxis()
        axis.set_title(case, fontsize=10)
        axis.set_xlabel(f"{unit}, median and min–max (lower is better)", fontsize=8)
        axis.tick_params(axis="x", labelsize=8)
    figure.suptitle(workload.TITLE.replace("`", ""), fontsize=11)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _wrap(label: str, width: int = 28) -> str:
    words, lines, line = label.split(), [], ""
    for word in words:
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
