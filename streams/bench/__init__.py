"""The benchmark harness behind `whistle bench`: the runs, their report, and the side-by-side
comparison with a real Alertmanager."""
