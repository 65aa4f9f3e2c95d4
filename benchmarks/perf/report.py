"""The one table, the warnings, the JSON file and the concurrency chart."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from perf import replicas

Row = tuple[str, str, str, str]
MiB = 1024 * 1024


def _n(value: float, digits: int = 2) -> str:
    """A number for the table, with thousands separators."""
    return f"{value:,.{digits}f}"


def _x(value: float) -> str:
    """A ratio for the table."""
    return f"{value:.2f}x"


def hit_rows(results: Mapping[str, Any]) -> list[Row]:
    """Rows 1 (vs bare aiohttp, gzip too) and 2 (vs nginx)."""
    hit, ngx = results["hit"], results["nginx"]
    g, b, n = hit["gateway"], hit["bare"], ngx["nginx"]
    loop = results["machine"]["gateway_event_loop"]
    rows = [
        (
            f"1 hit req/s, wrk -t1 -c50 (vs bare aiohttp, {loop})",
            _n(g["rps"], 0),
            _n(b["rps"], 0),
            _x(hit["rps_ratio"]),
        ),
        ("1 hit p50 ms", _n(g["p50_ms"]), _n(b["p50_ms"]), _x(hit["p50_ratio"])),
        ("1 hit p99 ms", _n(g["p99_ms"]), _n(b["p99_ms"]), _x(hit["p99_ratio"])),
    ]
    chain = results.get("chain")
    if chain is not None:
        rows.append(
            (
                "1 hit req/s, fast_hit_path off (handler chain)",
                _n(chain["gateway"]["rps"], 0),
                _n(b["rps"], 0),
                _x(chain["rps_ratio"]),
            )
        )
    gz = results.get("gzip")
    if gz is None:
        rows.append(("1 gzip hit req/s", "not served", "-", "-"))
    else:
        gateway_rps, bare_rps = _n(gz["gateway"]["rps"], 0), _n(gz["bare"]["rps"], 0)
        rows.append(("1 gzip hit req/s (vs bare, same gzip bytes)", gateway_rps, bare_rps, _x(gz["rps_ratio"])))
    return [
        *rows,
        ("2 hit req/s (vs nginx proxy_cache)", _n(g["rps"], 0), _n(n["rps"], 0), _x(ngx["rps_ratio"])),
        ("2 hit p50 ms (vs nginx)", _n(g["p50_ms"]), _n(n["p50_ms"]), _x(ngx["p50_ratio"])),
        ("2 hit p99 ms (vs nginx)", _n(g["p99_ms"]), _n(n["p99_ms"]), _x(ngx["p99_ratio"])),
        ("2 hit req/s vs nginx, median of the rounds' ratios", "-", "-", _x(ngx["rps_ratio_by_round"])),
        ("2 hit p99 vs nginx, median of the rounds' ratios", "-", "-", _x(ngx["p99_ratio_by_round"])),
        *_floor_rows(results.get("floor")),
        *_new_request_id_rows(results.get("new_request_ids")),
    ]


def _floor_rows(floor: Mapping[str, Any] | None) -> list[Row]:
    """Row 2's floor: what the loop and the kernel cost per hit, and each server's own µs above it."""
    if floor is None:
        return []
    gateway_us, nginx_us = floor["gateway_us_above_floor"], floor["nginx_us_above_floor"]
    return [
        ("2 floor req/s (bare protocol, same loop and bytes)", _n(floor["floor"]["rps"], 0), "-", "-"),
        ("2 floor CPU us per request", _n(floor["floor_us_per_hit"], 1), "-", "-"),
        ("2 CPU us per hit above the floor (vs nginx)", _n(gateway_us, 1), _n(nginx_us, 1), _x(gateway_us / nginx_us)),
    ]


def _new_request_id_rows(new_ids: Mapping[str, Any] | None) -> list[Row]:
    """Row 2 again with a new ``X-Request-Id`` on every request: no head is read from memory."""
    if new_ids is None:
        return []
    g, n = new_ids["gateway"], new_ids["nginx"]
    gateway_us, nginx_us = new_ids["gateway_us_above_floor"], new_ids["nginx_us_above_floor"]
    return [
        (
            "2 hit req/s, new X-Request-Id each (vs nginx, same)",
            _n(g["rps"], 0),
            _n(n["rps"], 0),
            _x(new_ids["rps_ratio"]),
        ),
        ("2 hit p99 ms, new X-Request-Id each (vs nginx)", _n(g["p99_ms"]), _n(n["p99_ms"]), _x(new_ids["p99_ratio"])),
        (
            "2 CPU us above the floor, new X-Request-Id each",
            _n(gateway_us, 1),
            _n(nginx_us, 1),
            _x(gateway_us / nginx_us),
        ),
    ]


def miss_rows(results: Mapping[str, Any]) -> list[Row]:
    """Rows 3 (miss latency) and 4 (coalescing)."""
    miss, co = results["miss"], results["coalescing"]
    gateway, direct = miss["gateway"], miss["direct"]
    coalesced_ok = co["upstream_calls"] == 1 and co["ok"] == co["requests"]
    seconds, bare_seconds = co["seconds_to_serve_all"], co["bare_seconds_to_serve_all"]
    return [
        (
            f"3 miss median ms (vs signed direct call, n={miss['requests']})",
            _n(gateway["median_ms"]),
            _n(direct["median_ms"]),
            # The ratio too: the added ms scale with how fast the machine is running this section.
            f"{miss['added_median_ms']:+.2f} ms ({gateway['median_ms'] / direct['median_ms']:.2f}x)",
        ),
        ("3 miss p99 ms", _n(gateway["p99_ms"]), _n(direct["p99_ms"]), f"{miss['added_p99_ms']:+.2f} ms"),
        (
            f"4 upstream calls for {co['requests']} concurrent cold requests",
            f"{co['upstream_calls']:g}",
            "1",
            "ok" if coalesced_ok else "FAIL",
        ),
        (
            "4 seconds to serve them all (vs same burst, bare app)",
            _n(seconds, 3),
            _n(bare_seconds, 3),
            _x(seconds / bare_seconds),
        ),
    ]


def resource_rows(results: Mapping[str, Any]) -> list[Row]:
    """Rows 5 (memory) and 6 (signing)."""
    mem, sig = results["memory"], results["signing"]
    return [
        (
            f"5 RSS MiB, cache filled to {mem['max_bytes'] // MiB} MiB (vs after start-up)",
            _n(mem["rss_filled_bytes"] / MiB, 1),
            _n(mem["rss_baseline_bytes"] / MiB, 1),
            f"{mem['ratio']:.2f} of max_bytes",
        ),
        (
            "5 cache_bytes metric MiB (share of max_bytes)",
            _n(mem["cache_bytes_metric"] / MiB, 1),
            "-",
            f"{mem['cache_fill_share']:.2f}",
        ),
        (
            "6 signing us/signature (vs huaweicloudsdkcore Signer)",
            _n(sig["ours_us"], 1),
            _n(sig["sdk_us"], 1),
            _x(sig["ratio"]),
        ),
    ]


def curve_rows(results: Mapping[str, Any]) -> list[Row]:
    """Rows 7: req/s and p99 at each connection count."""
    rows: list[Row] = []
    for point in results["concurrency"]:
        g, b, c = point["gateway"], point["bare"], point["connections"]
        rows.append((f"7 c={c} req/s (vs bare)", _n(g["rps"], 0), _n(b["rps"], 0), _x(point["rps_ratio"])))
        rows.append((f"7 c={c} p99 ms", _n(g["p99_ms"]), _n(b["p99_ms"]), _x(point["p99_ratio"])))
    return rows


def render_table(rows: Sequence[Row]) -> str:
    """A Markdown table (readable as plain text too), numbers right-aligned."""
    header = ("measurement", "gateway", "baseline", "ratio")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]

    def line(cells: Sequence[str]) -> str:
        padded = [cells[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if i else "-" * (w + 2) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def table(results: Mapping[str, Any]) -> str:
    """The one table of a run (and the replicas section's, when it ran)."""
    text = render_table([*hit_rows(results), *miss_rows(results), *resource_rows(results), *curve_rows(results)])
    return text + ("\n\n" + replicas.table(results["replicas"]) if "replicas" in results else "")


def _wrk_runs(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every measured wrk run of a result set."""
    runs = [results["hit"]["gateway"], results["hit"]["bare"], results["nginx"]["nginx"]]
    runs += [point[name] for point in results["concurrency"] for name in ("gateway", "bare")]
    if results.get("gzip") is not None:
        runs += [results["gzip"]["gateway"], results["gzip"]["bare"]]
    if results.get("chain") is not None:
        runs.append(results["chain"]["gateway"])
    if results.get("floor") is not None:
        runs.append(results["floor"]["floor"])
    if results.get("new_request_ids") is not None:
        runs += [results["new_request_ids"]["gateway"], results["new_request_ids"]["nginx"]]
    return runs


def round_lines(results: Mapping[str, Any]) -> list[str]:
    """Each hit target's rounds (req/s, in the order run): how far one round moves on this machine;
    and the gateway over nginx in each round, for req/s and p99."""
    runs = [results["hit"]["bare"], results["hit"]["gateway"], results["nginx"]["nginx"]]
    if results.get("new_request_ids") is not None:
        runs += [results["new_request_ids"]["nginx"], results["new_request_ids"]["gateway"]]
    if results.get("floor") is not None:
        runs.append(results["floor"]["floor"])
    spreads = [f"{run['target']} {', '.join(f'{rps:,.0f}' for rps in run['rounds_rps'])}" for run in runs]
    ratios = {"req/s": results["nginx"]["rounds_rps_ratio"], "p99": results["nginx"]["rounds_p99_ratio"]}
    by_round = [f"{name} {', '.join(f'{ratio:.2f}x' for ratio in values)}" for name, values in ratios.items()]
    return [
        "hit rounds, req/s (the median is kept): " + "; ".join(spreads),
        "gateway / nginx round by round (each pair run one after the other): " + "; ".join(by_round),
    ]


def warnings(results: Mapping[str, Any]) -> list[str]:
    """What makes a figure suspect: wrk errors, other load on a core, misses in hit runs, a cache not full."""
    problems = [
        f"{core} was {busy:.0%} busy with other work before the run"
        for core, busy in results["machine"]["background_busy_before_run"].items()
        if busy > 0.10
    ]
    for run in _wrk_runs(results):
        label = f"{run['target']} c={run['connections']}"
        if run["socket_errors"] or run["non_2xx"]:
            problems.append(f"{label}: {run['socket_errors']} socket errors, {run['non_2xx']} non-2xx answers")
        if run["listen_overflows"]:
            problems.append(
                f"{label}: {run['listen_overflows']} connections overflowed the listen queue "
                "(their first request waited for a SYN-ACK retransmit, 1 s or more)"
            )
        cpu = run["cpu"]
        for core, other in (
            ("server", cpu["server_core_tasks"] - cpu["server_process_cpu"]),
            ("wrk", cpu["client_core_tasks"] - cpu["wrk_cpu"]),
        ):
            if other > 0.10:
                problems.append(f"{label}: {other:.0%} of the {core} core went to other processes")
        if cpu["client_core_busy"] > 0.9 and cpu["server_process_cpu"] < 0.8:
            problems.append(
                f"{label}: wrk's core saturated first ({cpu['server_process_cpu']:.0%} server CPU): a floor"
            )
    misses = results["hit"]["gateway_cache_results_during_runs"]["miss"]
    if misses:
        problems.append(f"{misses:.0f} cache misses during the hit runs")
    if results["memory"]["cache_fill_share"] < 0.9:
        problems.append(f"the cache was only {results['memory']['cache_fill_share']:.0%} full in the memory test")
    if not results["signing"]["identical_authorization"]:
        problems.append("our signature differs from the SDK's for the benchmark request")
    return problems


def header_lines(results: Mapping[str, Any]) -> list[str]:
    """The machine, the payload and the set-up, printed above the table."""
    m, p, run = results["machine"], results["payload"], results["run"]
    gzip_text = f", gzip {p['gzip_bytes']} B" if p["gzip_bytes"] else ", gzip not served"
    return [
        f"machine: {m['cpu_model']}, {m['cores']} cores, Linux {m['kernel']}, Python {m['python']}, "
        f"aiohttp {m['aiohttp']}, uvloop {m['uvloop']} (gateway loop: {m['gateway_event_loop']}), {m['wrk']}, "
        f"nginx {m['nginx']}",
        f"payload: {p['query']}: {p['bytes']} B {p['content_type']}{gzip_text}; nginx caches the simulator's "
        f"page for the same query: {p['nginx_bytes']} B",
        f"servers pinned to core {run['cpus']['server']}, wrk -t1 and the harness to core {run['cpus']['client']}; "
        f"{run['command']} took {run['seconds']:.0f} s",
    ]


def chart(results: Mapping[str, Any], path: Path) -> None:
    """req/s and p99 against connections, gateway hits and the bare app, as a two-panel PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["concurrency"]
    connections = [point["connections"] for point in points]
    figure, (rps_axis, p99_axis) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for name, label, style in (("bare", "bare aiohttp, same bytes", "s--"), ("gateway", "gateway cache hit", "o-")):
        rps_axis.plot(connections, [point[name]["rps"] for point in points], style, label=label)
        p99_axis.plot(connections, [point[name]["p99_ms"] for point in points], style, label=label)
    for axis, title, unit in ((rps_axis, "throughput", "requests/s"), (p99_axis, "p99 latency", "ms (log)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(connections, [str(c) for c in connections])
        axis.set_xlabel("connections (wrk -t1)")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend()
    rps_axis.set_ylim(bottom=0)
    p99_axis.set_yscale("log")
    m = results["machine"]
    figure.suptitle(
        f"metastudio-gateway hit path vs bare aiohttp ({m['gateway_event_loop']}); {m['cpu_model']}, "
        f"server and wrk on separate cores; {results['run']['finished_at']}",
        fontsize=9,
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any], out: Path) -> str:
    """Add the table and warnings to ``results``, write latest.json and concurrency.png; return the text."""
    out.mkdir(parents=True, exist_ok=True)
    text = table(results)
    results["table"] = text.splitlines()
    results["warnings"] = warnings(results)
    (out / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    chart(results, out / "concurrency.png")
    lines = [*header_lines(results), "", text, "", *round_lines(results)]
    return "\n".join([*lines, *(f"WARNING: {w}" for w in results["warnings"])])
