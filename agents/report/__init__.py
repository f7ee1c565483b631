"""The after-action renderers (事后倒查): an incident's timeline read as a review, rendered as
JSON, CSV, Markdown and an HTML report with a chart, and the report over a period.

Pure functions of timelines: no Faust, no broker, no HTTP (import-linter holds this in CI)."""
