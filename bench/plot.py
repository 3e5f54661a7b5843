#!/usr/bin/env python3
"""Throughput against in-flight calls for ValidateSession and Login, with the
same-run limits (echo, compute-only argon2id) drawn as lines.

    python bench/plot.py bench/results/sqlite.json bench/results/postgres.json -o out.png
"""
import argparse
import json

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def points(report, scenario):
    """(in_flight, req/s) of a scenario's sweep, or its full runs if no sweep."""
    runs = [r for r in report["runs"] if r["name"] == scenario]
    sweep = [r for r in runs if r["sweep"]] or runs
    return sorted((r["in_flight"], r["per_sec"]) for r in sweep)


def argon2_limit(report):
    means = [l["mean_per_sec"] for l in report.get("limits", [])
             if l["name"].startswith("argon2") and "m=4096," not in l["name"]]
    return sum(means) / len(means) if means else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("reports", nargs="+")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    reports = [json.load(open(p)) for p in args.reports]

    fig, (ax_v, ax_l) = plt.subplots(1, 2, figsize=(12, 4.8))
    colours = {"sqlite": "tab:blue", "postgres": "tab:green"}
    for report in reports:
        db = report["database"]
        colour = colours.get(db, "tab:gray")
        v = points(report, "validate")
        e = points(report, "echo")
        if v:
            ax_v.plot(*zip(*v), "o-", color=colour, label=f"ValidateSession ({db})")
        if e:
            ax_v.plot(*zip(*e), "--", color=colour, alpha=0.6,
                      label=f"limit: Health/Check echo ({db})")
        lo = points(report, "login")
        if lo:
            ax_l.plot(*zip(*lo), "o-", color=colour, label=f"Login ({db})")
        a = argon2_limit(report)
        if a:
            ax_l.axhline(a, linestyle="--", color=colour, alpha=0.6,
                         label=f"limit: argon2id compute-only ({db}) {a:.0f}/s")
    ax_v.set_title("ValidateSession vs echo (same server, same run)")
    ax_l.set_title("Login vs compute-only argon2id (m=19456, t=2, p=1)")
    for ax in (ax_v, ax_l):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.set_xlabel("calls in flight")
        ax.set_ylabel("requests / s")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    machine = reports[0].get("machine", {})
    fig.suptitle(f"warden-bench, {machine.get('cpus', '?')} shared CPUs, "
                 "client and server on the same machine", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)


if __name__ == "__main__":
    main()
