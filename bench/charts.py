"""PNG charts of a bench run (matplotlib, drawn off-screen)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.plan import THROUGHPUT_KEYS, Plan
from bench.stats import BIN_S, median

BAR_COLORS = {"floor": "grey", "pony": "tab:orange"}
SIDES = (
    ("S5", "ours (bounded pool)", "tab:blue"),
    ("before", "before (limits removed)", "tab:red"),
)


def draw(runs: list[dict], plan: Plan, out: Path) -> list[str]:
    """Draw every chart into out; return the file names."""
    return [
        throughput_chart(runs, out / "throughput.png"),
        connections_chart(runs[-1], plan, out / "overload_connections.png"),
        served_chart(runs[-1], out / "overload_served.png"),
    ]


def throughput_chart(runs: list[dict], path: Path) -> str:
    """Median req/s of each throughput scenario, with the spread over runs."""
    keys = [key for key in THROUGHPUT_KEYS if key in runs[0]]
    values = [[run[key]["throughput_rps"] for run in runs] for key in keys]
    medians = [median(v) for v in values]
    spread = [
        [m - min(v) for m, v in zip(medians, values, strict=True)],
        [max(v) - m for m, v in zip(medians, values, strict=True)],
    ]
    figure, axes = plt.subplots(figsize=(7, 4))
    colors = [BAR_COLORS.get(key, "tab:blue") for key in keys]
    axes.bar(keys, medians, yerr=spread, capsize=4, color=colors)
    axes.set_ylabel("requests per second (median, min–max)")
    axes.set_title("Throughput against the floor")
    return save(figure, path)


def connections_chart(run: dict, plan: Plan, path: Path) -> str:
    """Server connections over time in S5, ours against before, with the bound."""
    figure, axes = plt.subplots(figsize=(8, 4))
    for key, label, color in SIDES:
        points = run[key]["timeline"]["connections"]
        axes.step(
            [t for t, _ in points],
            [c for _, c in points],
            where="post",
            label=label,
            color=color,
            linewidth=2.5 if key == "S5" else 1.5,
            zorder=3 if key == "S5" else 2,
        )
    axes.axhline(
        plan.overload_bound,
        linestyle="--",
        color="black",
        label=f"bound: workers × (pool_size + max_overflow) = {plan.overload_bound}",
    )
    axes.axhline(
        plan.overload_ceiling,
        linestyle=":",
        color="tab:red",
        label=f"ceiling: the role's CONNECTION LIMIT {plan.overload_ceiling}",
    )
    label_timeline(axes, run, "server connections (pg_stat_activity)")
    axes.set_title("S5: server connections while the database stalls")
    return save(figure, path)


def served_chart(run: dict, path: Path) -> str:
    """Served (2xx) and failed (every other status) responses per 100 ms in S5."""
    figure, axes = plt.subplots(figsize=(8, 4))
    for key, label, color in SIDES:
        timeline = run[key]["timeline"]
        served = timeline["served_per_100ms"]
        axes.plot(
            [i * BIN_S for i in range(len(served))], served, label=f"{label}: 2xx", color=color
        )
        failed = timeline["failed_per_100ms"]
        if any(failed):
            axes.plot(
                [i * BIN_S for i in range(len(failed))],
                failed,
                linestyle=":",
                label=f"{label}: errors",
                color=color,
            )
    label_timeline(axes, run, "responses per 100 ms")
    axes.set_title("S5: served and failed requests around the stall")
    return save(figure, path)


def label_timeline(axes, run: dict, ylabel: str) -> None:
    """Grey out the seconds the database was stalled; label the axes and the lines."""
    stall = run["S5"]["timeline"]["stall"]
    axes.axvspan(stall[0], stall[1], color="grey", alpha=0.2, label="database stalled")
    axes.set_xlabel("seconds")
    axes.set_ylabel(ylabel)
    # Below the plot: inside, it hid the lines it names.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, fontsize="small")


def save(figure, path: Path) -> str:
    """Write the figure as PNG and return its file name."""
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path.name
