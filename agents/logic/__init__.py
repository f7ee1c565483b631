"""The decisions, pure: locate an alarm, correlate it into a site's incident, watch device
health, confirm, plan and change incidents, move tasks through their states, compute deadlines
and escalations, tell reporters what was done, keep timelines.

Each takes data and a clock and returns data: no Faust, no broker, no HTTP (import-linter
holds this in CI), tested without a broker."""
