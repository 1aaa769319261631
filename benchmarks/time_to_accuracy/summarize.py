"""Summarise ``tta.py`` results: seconds to target, peak memory, epoch time, and the CPU -> device ratio.

The CPU epoch time of each model is the mean ``time/epoch_s`` of its runs in a committed record file
(default ``experiments/model_zoo/gowalla_cpu/records.jsonl``: Gowalla on a 2-core CPU, two 1-thread
processes at once, 2026-12-03/04), matched on the model class of the run's config.

    python benchmarks/time_to_accuracy/summarize.py out/tta_*.json [--cpu-records path] [--out summary.txt]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CPU_RECORDS = ROOT / "experiments/model_zoo/gowalla_cpu/records.jsonl"


def cpu_epoch_seconds(records: Path) -> dict[str, float]:
    """Model class name, lower case (``xsimgcl``) -> mean ``time/epoch_s`` of its ``ok`` runs in ``records``."""
    by_model: dict[str, list[float]] = {}
    for line_no, line in enumerate(records.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"{records}:{line_no}: not JSON ({exc})") from None
        seconds = (record.get("metrics") or {}).get("time/epoch_s")
        if record.get("status", "ok") != "ok" or not seconds:
            continue
        model = str(record["config"]["model"]["_target_"]).rsplit(".", 1)[-1].lower()
        by_model.setdefault(model, []).append(float(seconds))
    return {model: statistics.mean(values) for model, values in by_model.items()}


def model_class(result: dict[str, Any]) -> str:
    """The model config group of a result (``model=xsimgcl`` among its overrides)."""
    names = [o.split("=", 1)[1] for o in result["config_overrides"] if o.startswith("model=")]
    return names[-1] if names else result["model"]


def summarize(results: list[dict[str, Any]], cpu_records: Path) -> str:
    cpu = cpu_epoch_seconds(cpu_records) if cpu_records.exists() else {}
    header = (
        f"{'run':<28} {'target':>7} {'s to target (fit)':>18} {'(with setup)':>13} {'epochs':>7} {'selected test':>13} "
        f"{'s/epoch':>8} {'peak GiB':>9}  device"
    )
    lines = [header]
    for r in results:
        fit = f"{r['seconds_to_target_fit']:.1f}" if r["reached"] else f"not in {r['fit_s']:.0f}"
        total = f"{r['seconds_to_target_total']:.1f}" if r["reached"] else "-"
        final = r.get("final_selected_curve")
        lines.append(
            f"{r['model'] + ' ' + r['precision']:<28} {r['target']:>7.4f} {fit:>18} {total:>13} {r['epochs']:>7} "
            f"{(final if final is not None else float('nan')):>13.4f} {(r['mean_epoch_s'] or float('nan')):>8.2f} "
            f"{r['peak_memory_bytes'] / 2**30:>9.2f}  {r['device']} ({r['peak_memory_kind']})"
        )
    lines.append(f"CPU epoch seconds from {cpu_records.relative_to(ROOT) if cpu_records.is_relative_to(ROOT) else cpu_records} (time/epoch_s, mean over its runs):")
    for r in results:
        model = model_class(r)
        if model in cpu and r["mean_epoch_s"]:
            lines.append(
                f"  {r['model']} {r['precision']}: CPU {cpu[model]:.2f} s/epoch / {r['accelerator']} {r['mean_epoch_s']:.3f} s/epoch "
                f"= {cpu[model] / r['mean_epoch_s']:.1f}x"
            )
        else:
            lines.append(f"  {r['model']} {r['precision']}: no CPU record of {model!r} (or no complete epoch timed)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--cpu-records", type=Path, default=CPU_RECORDS)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results = [json.loads(p.read_text()) for p in args.results if p.exists()]
    missing = [str(p) for p in args.results if not p.exists()]
    text = summarize(results, args.cpu_records)
    if missing:
        text += "\nno result (run failed or skipped): " + ", ".join(missing)
    print(text, flush=True)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
