"""Helpers for bench/compare.sh: tag JSON rows as they stream in, then print the ratios.

    compare_report.py tag SIDE ROUND LOAD < rows.jsonl >> all.jsonl
    compare_report.py trl ROUND LOAD MAXRSS_KIB < trl_stdout >> all.jsonl
    compare_report.py report all.jsonl

`report` prints, per row, the median over rounds of each side's tokens/s and CPU seconds per
step (or per generation), the ratio of the medians (aha / peer tokens/s: above 1 means aha is
faster; peer / aha CPU s: above 1 means aha uses less CPU), the per-round ratios, and the load
averages the rounds saw. Nothing here is used at runtime.
"""

import json
import statistics
import sys


def tag(side, rnd, load):
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        if row.get("row") == "matmul" and "seconds" not in row and side == "aha":
            continue
        row.update(side=side, round=int(rnd), load=load)
        print(json.dumps(row))


def trl(rnd, load, maxrss_kib):
    summary = None
    for line in sys.stdin:
        if "SUMMARY " in line:
            summary = json.loads(line.split("SUMMARY ", 1)[1])
    if summary is None:
        sys.exit("compare_report.py trl: no SUMMARY line in TRL's output")
    row = {
        "row": "grpo-step", "side": "trl", "round": int(rnd), "load": load,
        "seconds": summary["median_step_s"],
        "tokens_per_s": summary["median_tokens_per_s"],
        "rollout_ms": 1e3 * summary["median_gen_s"],
        "cpu_s": summary["median_step_cpu_s"],
    }
    if maxrss_kib.isdigit():
        row["peak_rss_mib"] = int(maxrss_kib) / 1024
    print(json.dumps(row))


def report(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    names = []
    for r in rows:
        if r["row"] not in names and r["row"] != "matmul":
            names.append(r["row"])
    loads = sorted({(r["round"], r["load"]) for r in rows})
    print("load average (1, 5, 15 min) at the start of each round: "
          + "; ".join(f"round {n}: {l}" for n, l in loads))
    hdr = f"{'row':<15} {'aha tok/s':>10} {'peer':>6} {'peer tok/s':>10} {'ratio':>6}  {'per round':<22} " \
          f"{'aha cpu s':>9} {'peer cpu s':>10} {'cpu ratio':>9}  {'aha RSS MiB':>11} {'peer RSS MiB':>12}"
    print(hdr)
    print("-" * len(hdr))
    for name in names:
        aha = [r for r in rows if r["row"] == name and r["side"] == "aha"]
        peer = [r for r in rows if r["row"] == name and r["side"] != "aha"]
        if not aha or not peer:
            print(f"{name:<15} (missing: {'aha' if not aha else 'peer'})")
            continue
        med = lambda rs, k: statistics.median(r[k] for r in rs if r.get(k) is not None) \
            if any(r.get(k) is not None for r in rs) else float("nan")
        a_tps, p_tps = med(aha, "tokens_per_s"), med(peer, "tokens_per_s")
        a_cpu, p_cpu = med(aha, "cpu_s"), med(peer, "cpu_s")
        per_round = []
        for a in aha:
            p = [q for q in peer if q["round"] == a["round"]]
            if p:
                per_round.append(f"{a['tokens_per_s'] / p[0]['tokens_per_s']:.2f}")
        print(f"{name:<15} {a_tps:>10.0f} {peer[0]['side']:>6} {p_tps:>10.0f} {a_tps / p_tps:>5.2f}x  "
              f"{' '.join(per_round):<22} {a_cpu:>9.2f} {p_cpu:>10.2f} {p_cpu / a_cpu:>8.2f}x  "
              f"{med(aha, 'peak_rss_mib'):>11.0f} {med(peer, 'peak_rss_mib'):>12.0f}")
    for name in names:
        for side in ("aha", "torch", "trl"):
            rs = [r for r in rows if r["row"] == name and r["side"] == side]
            keys = [k for k in ("fwd_ms", "bwd_ms", "optim_ms", "rollout_ms", "update_ms") if any(k in r for r in rs)]
            if rs and keys:
                parts = ", ".join(f"{k[:-3]} {statistics.median(r[k] for r in rs if k in r):.0f} ms" for k in keys)
                print(f"  {name} {side}: {parts}")


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"tag": tag, "trl": trl, "report": report}[cmd](*args)
