"""The benchmark harness behind `whistle bench`: the runs, their report, and the side-by-side
comparison with a real Alertmanager.

Read from the top down (each imports only modules listed after it):

- `run`: the entry, `run(BenchOptions(...))`: starts broker, workers, Alertmanager; prints.
- `measure`: one whole measurement, phase after phase, against running workers.
- `phases`: latency at a steady rate, a fire in a storm, memory after many incidents.
- `relay`: the baseline, a plain aiokafka or Faust relay process, and its phase.
- `warm`: alarms through a broker started here before anything is measured on it.
- `workers`: starting workers, timing `whistle up`, py-spy on a worker.
- `metrics`: the workers' /metrics (CPU, RSS, histogram) and waiting for them to settle.
- `traffic`: alarms produced, tasks read back (`Watcher`), the timed burst.
- `report`: the table, the SVG and the targets; `peer`: the Alertmanager comparison;
  `alertmanager`: its process and route tree; `options`: the options and refusals;
  `basics`: pacing, percentile, row layout, progress lines.

    from streams.bench.run import BenchOptions, run
    run(BenchOptions(alarms=300, rate=50, seconds=3))
"""
