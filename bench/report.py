"""The benchmark's results as a Markdown table (README.md, docs/bench/results.md) and a plot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from bench.http import HTTP_ENDPOINTS


class Column(NamedTuple):
    header: str
    align: str  # the Markdown alignment row cell
    cell: Callable[[dict], str]  # one scale's result -> the cell's text


def _http_column(header: str, align: str, cell: Callable[[dict], str]) -> Column:
    return Column(header, align, lambda r: cell(r) if "http_index_rps" in r else "-")


# Index statistics (from _build and _recovery).
INDEX_COLUMNS = [
    Column("Cells/area", "---:", lambda r: f"{r['cells_per_area']}"),
    Column(
        "Build (2 cores)", "---:", lambda r: f"{r['build_seconds']:.0f} s ({r['build_ms_per_area_median']} ms/area)"
    ),
    Column("Cell table", "---:", lambda r: f"{r['cell_table_mb']:,.0f} MiB"),
    Column("Redis", "---:", lambda r: f"{r['redis_mb']:,.0f} MiB"),
    Column("Redis rebuild", "---:", lambda r: f"{r['redis_rebuild_seconds']:.0f} s"),
]
# Per lookup and in-process latency (from _in_process).
INPROC_COLUMNS = [
    Column(
        "Per lookup: results / candidates / boundary / exact checks",
        "---",
        lambda r: (
            f"{r['matches_mean']:.0f} / {r['candidates_mean']:.0f} / {r['boundary_candidates_mean']:.0f} / "
            f"{r['exact_checks_mean']:.1f}"
        ),
    ),
    Column(
        "No PostgreSQL (warm / cold)",
        "---:",
        lambda r: f"{r['no_postgres_share']:.0%} / {r['no_postgres_share_cold']:.0%}",
    ),
    Column(
        "In Redis / PostgreSQL per lookup",
        "---:",
        lambda r: (
            f"{r['redis_server_us_per_call'] * r['redis_calls_per_lookup'] / 1000:.2f} / {r['postgres_ms_mean']:.2f} ms"
        ),
    ),
    Column(
        "In-process p50 / p99 (ms): index; raw SQL; plain",
        "---",
        lambda r: (
            f"{r['inproc_index_p50_ms']} / {r['inproc_index_p99_ms']}; {r['inproc_raw_p50_ms']} / "
            f"{r['inproc_raw_p99_ms']}; {r['inproc_plain_p50_ms']} / {r['inproc_plain_p99_ms']}"
        ),
    ),
]
# HTTP (from _http); "-" when it was skipped.
HTTP_COLUMNS = [
    _http_column(
        "HTTP req/s: index / raw / plain / minimal / trivial",
        "---",
        lambda r: " / ".join(f"{r[f'http_{name}_rps']:,.0f}" for name in HTTP_ENDPOINTS),
    ),
    _http_column(
        "HTTP p50 / p99 (ms): index; raw",
        "---",
        lambda r: (
            f"{r['http_index_p50_ms']} / {r['http_index_p99_ms']}; {r['http_raw_p50_ms']} / {r['http_raw_p99_ms']}"
        ),
    ),
    _http_column("Body (bytes, mean)", "---:", lambda r: f"{r['http_body_bytes_mean']:,}"),
    _http_column("index / raw", "---:", lambda r: f"{r['http_index_vs_raw']}x"),
    _http_column("index / plain", "---:", lambda r: f"{r['http_index_vs_plain']}x"),
    _http_column("index / minimal", "---:", lambda r: f"{r['http_index_vs_minimal']:.0%}"),
    _http_column(
        "Points/s, batches of 100 vs single: HTTP; in-process",
        "---",
        lambda r: (
            f"{r['http_batch_points_per_s']:,} vs {r['http_index_rps']:,.0f} ({r['http_batch_vs_single']}x); "
            f"{r['inproc_batch_points_per_s']:,} vs {r['inproc_single_points_per_s']:,} "
            f"({r['inproc_batch_vs_single']}x)"
        ),
    ),
]


def markdown_table(results: list[dict]) -> str:
    columns = [Column("Areas", "---:", lambda r: f"{r['areas']:,}"), *INDEX_COLUMNS, *INPROC_COLUMNS, *HTTP_COLUMNS]
    rows = [
        "| " + " | ".join(column.header for column in columns) + " |",
        "| " + " | ".join(column.align for column in columns) + " |",
    ]
    rows += ["| " + " | ".join(column.cell(r) for column in columns) + " |" for r in results]
    return "\n".join(rows)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    areas = [r["areas"] for r in results]
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(11, 4.2))
    latency.plot(areas, [r["inproc_index_p50_ms"] for r in results], "o-", label="index p50")
    latency.plot(areas, [r["inproc_index_p99_ms"] for r in results], "o--", label="index p99")
    latency.plot(areas, [r["inproc_raw_p50_ms"] for r in results], "D-", label="raw PostGIS query p50")
    latency.plot(areas, [r["inproc_raw_p99_ms"] for r in results], "D--", label="raw PostGIS query p99")
    latency.plot(areas, [r["inproc_plain_p50_ms"] for r in results], "s-", label="plain GeoDjango p50")
    latency.plot(areas, [r["inproc_plain_p99_ms"] for r in results], "s--", label="plain GeoDjango p99")
    latency.set(xscale="log", yscale="log", xlabel="service areas", ylabel="ms", title="In-process lookup latency")
    latency.legend()
    if all("http_index_rps" in r for r in results):
        for key, label, marker in (
            ("index", "lookup (index, lean)", "o-"),
            ("raw", "raw PostGIS query (lean)", "D-"),
            ("plain", "plain GeoDjango + DRF", "s-"),
            ("minimal", "minimal view (lean): ceiling", "^:"),
            ("trivial", "trivial DRF view", "v:"),
        ):
            throughput.plot(areas, [r[f"http_{key}_rps"] for r in results], marker, label=label)
        throughput.set(xscale="log", yscale="log", xlabel="service areas", ylabel="requests/s",
                       title=f"HTTP throughput, {results[0]['http_connections']} connections")  # fmt: skip
        throughput.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
