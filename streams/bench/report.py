"""What `whistle bench` prints and draws: the side-by-side table (with the Alertmanager
comparison's rows under it when there was one) and the latency SVG, against the issues' targets.

    print(table(figures))
    Path("latency.svg").write_text(svg(figures["latencies_ms"], figures["latency"]))
"""

from __future__ import annotations

from streams.bench.basics import layout
from streams.bench.peer import rows as peer_rows

__all__ = ["TARGET_CPU_MS", "TARGET_CPU_WEBHOOKS_MS", "TARGET_FAUST_RATIO", "TARGET_FIRE_MS",
           "TARGET_P99_MS", "TARGET_RATIO", "TARGET_RSS_MB", "TARGET_UP_S", "svg", "table"]

TARGET_RATIO = 0.25     # issue 21: throughput >= 25% of the aiokafka relay's
TARGET_FAUST_RATIO = 1.0  # issue 21: ... and at least the plain Faust agent relay's
TARGET_CPU_MS = 0.5     # issue 21: worker CPU per alarm, all stages, without webhooks
TARGET_CPU_WEBHOOKS_MS = 1.0  # ... and with a webhook per task (a `--peer` run)
TARGET_P99_MS = 25.0    # issues 8, 21: p99 alarm-to-task <= 25 ms at 200 alarms/s
TARGET_FIRE_MS = 3000.0  # GB 50440: a confirmed fire's tasks out within 3 s, storm or not
TARGET_RSS_MB = 200.0   # issue 21: worker RSS after 100,000 alarms and 10,000 open incidents
TARGET_UP_S = 20.0      # issue 16: a cold `whistle up` to ready, the broker's jars cached


def table(f: dict) -> str:
    """The figures as a plain-text table, with the issue's targets."""
    t, lat, r = f["throughput"], f["latency"], f["relay"]

    def ok(met: bool) -> str:
        return "met" if met else "MISSED"

    rows = [("measure", "whistle", "relay", "ratio", "target"),
            (f"throughput, {t['alarms']} alarms (alarms/s)", f"{t['alarms_per_s']:.0f}",
             f"{r['alarms_per_s']:.0f}" if r else "-",
             f"{f['ratio']:.0%}" if f["ratio"] is not None else "-",
             f">= {TARGET_RATIO:.0%} of relay: {ok(f['met']['ratio'])}" if r else "-"),
            ("  tasks/s", f"{t['tasks_per_s']:.0f}", f"{r['tasks_per_s']:.0f}" if r else "-",
             "", ""),
            ("  first send to last task (s)", f"{t['elapsed_s']:.2f}",
             f"{r['elapsed_s']:.2f}" if r else "-", "", ""),
            ("  tasks seen / expected", f"{t['tasks_seen']}/{t['tasks_expected']}",
             f"{r['tasks_seen']}/{r['tasks_expected']}" if r else "-", "", "")]
    if fr := f.get("faust_relay"):
        rows += [("the relay as one plain Faust agent (alarms/s)", "",
                  f"{fr['alarms_per_s']:.0f}", f"{f['faust_relay_ratio']:.0%}",
                  "Faust's own cost, of the relay"),
                 ("  whistle to it", "", "", f"{f['ratio_to_faust_relay']:.0%}",
                  f">= {TARGET_FAUST_RATIO:.0%}: {ok(f['met']['faust_ratio'])}"),
                 ("  tasks seen / expected", "", f"{fr['tasks_seen']}/{fr['tasks_expected']}",
                  "", "")]
    if "worker_cpu_ms_per_alarm" in t:
        rows.append(("  worker CPU per alarm (ms)", f"{t['worker_cpu_ms_per_alarm']:.2f}", "", "",
                     f"<= {f['targets']['cpu_ms_max']:g} ms: {ok(f['met']['cpu'])} (all stages"
                     f"{', a webhook per task' if f.get('webhooks') else ''}, drained "
                     f"{t['drained_after_s']:g} s after the last task)"))
    head = f"latency at {lat['rate']:g}/s for {lat['seconds']:g} s"
    def ms(v: float | None) -> str:
        return "unanswered" if v is None else f"{v:.1f}"
    rows += [(f"{head}: p50 (ms)", ms(lat["p50_ms"]), "", "", ""),
             ("  p99 (ms)", ms(lat["p99_ms"]), "", "",
              f"<= {TARGET_P99_MS:g} ms: {ok(f['met']['p99'])}"),
             ("  max (ms)", ms(lat["max_ms"]), "",
              "", ""),
             *([("  worker CPU per alarm at this rate (ms)",
                 f"{lat['worker_cpu_ms_per_alarm']:.2f}", "", "",
                 "a fetch and a produce an alarm; polling included")]
               if "worker_cpu_ms_per_alarm" in lat else []),
             (f"  max of the {lat.get('warm_up_alarms', 0)} warm-up alarms before (ms)",
              ms(lat.get("warm_up_max_ms")), "", "", "the first after an idle spell"),
             ("  tasks seen / expected", f"{lat['tasks_seen']}/{lat['tasks_expected']}", "",
              "", "")]
    own = lat.get("worker_histogram")
    if own:
        rows.append(("  worker's own histogram p50, p99 (ms)",
                     f"<={own['p50_le_ms'] or 'inf':g}, <={own['p99_le_ms'] or 'inf':g}"
                     if own["p99_le_ms"] else f"<={own['p50_le_ms'] or 'inf'}, >10000",
                     "", "", "ingest to producer"))
    storm, memory = f.get("storm"), f.get("memory")
    if storm:
        rows += [(f"storm of {storm['alarms']} alarms at {storm['rate']:g}/s "
                  f"(sent {storm['achieved_rate']:.0f}/s)", "", "", "", ""),
                 ("  fire report to its first task (ms)", ms(storm["fire_first_task_ms"]), "",
                  "", f"<= {TARGET_FIRE_MS:g} ms: {ok(storm['met'])}")]
    if memory:
        tables = f" ({f['store']})" if f.get("store") else ""
        rows += [(f"memory after {memory['alarms']} alarms, {memory['incidents']} incidents"
                  f"{tables}", "", "", "", ""),
                 ("  worker RSS (MB)", "-" if memory["rss_mb"] is None
                  else f"{memory['rss_mb']:.0f} ({memory['rss_mib']:.0f} MiB)", "", "",
                  f"<= {TARGET_RSS_MB:g} MB: {ok(memory['met'])}")]
    if warmed := f.get("broker_warm_up"):
        rows.append((f"alarms through the new broker before measuring ({warmed['rate']:g}/s)",
                     f"{warmed['alarms']}", "", "", f"its JVM warmed: {warmed['seconds']:g} s, "
                     f"{warmed['sites_answered']}/{warmed['sites']} sites answered"))
    if start := f.get("startup"):
        rows += [("whistle up to its ready line, new data directory (s)",
                  f"{start['up_new_s']:.1f}", "", "",
                  f"<= {TARGET_UP_S:g} s: {ok(start['up_new_s'] <= TARGET_UP_S)}"),
                 ("  again on the same data directory (s)", f"{start['up_again_s']:.1f}", "",
                  "", ""),
                 ("  the embedded Kafka alone, start to ready (s)",
                  f"{start['broker_ready_s']:.1f}", "", "", ""),
                 ("  the embedded Kafka's RSS at the end (MB)",
                  f"{start['broker_rss_mb']:.0f}",
                  "", "", ""),
                 ("  the embedded Kafka's CPU over the whole run (s)",
                  f"{start['broker_cpu_s']:.1f}",
                  "", "", "")]
    lines = layout(rows)
    if f.get("peer"):
        lines += ["", *peer_rows(f["peer"])]
    return "\n".join(lines)


def svg(ms: list[float], latency: dict, width: int = 640, height: int = 320) -> str:
    """A histogram of alarm-to-task latencies (ms) with their CDF, as a standalone SVG."""
    left, right, top, bottom = 50, 20, 30, 40
    w, h = width - left - right, height - top - bottom
    high = max(ms[-1] if ms else 1.0, TARGET_P99_MS) * 1.05
    bins = 40
    counts = [0] * bins
    for x in ms:
        counts[min(bins - 1, int(x / high * bins))] += 1
    peak = max(counts) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<text x="{left}" y="18">alarm to first task at {latency["rate"]:g}/s: p50 '
             f'{latency["p50_ms"]} ms, p99 {latency["p99_ms"]} ms, max {latency["max_ms"]} ms '
             f'({len(ms)} of {latency["alarms"]} alarms answered)</text>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>']
    bw = w / bins
    for i, c in enumerate(counts):
        bh = c / peak * h
        parts.append(f'<rect x="{left + i * bw:.1f}" y="{top + h - bh:.1f}" width="{bw - 1:.1f}" '
                     f'height="{bh:.1f}" fill="#7aa6d6"/>')
    if ms:
        points = " ".join(f"{left + x / high * w:.1f},{top + h - (i + 1) / len(ms) * h:.1f}"
                          for i, x in enumerate(ms[:: max(1, len(ms) // 400)]))
        parts.append(f'<polyline points="{points}" fill="none" stroke="#c0392b"/>')
    tx = left + TARGET_P99_MS / high * w
    parts.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{top + h}" stroke="#2a2" '
                 f'stroke-dasharray="4"/><text x="{tx + 3:.1f}" y="{top + 12}">p99 target '
                 f'{TARGET_P99_MS:g} ms</text>')
    for k in range(6):
        x = high * k / 5
        parts.append(f'<text x="{left + w * k / 5:.1f}" y="{top + h + 15}" '
                     f'text-anchor="middle">{x:.0f}</text>')
    parts.append(f'<text x="{left + w / 2}" y="{height - 8}" text-anchor="middle">ms (bars: '
                 f'count, line: cumulative share)</text></svg>')
    return "\n".join(parts)
