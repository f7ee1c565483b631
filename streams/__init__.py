"""Everything that touches the outside, in rooms by role:

- `streams.worker`: what stages and views receive (`Whistle`, its topics and tables);
- `streams.app`: `build()`, the composition root (only the CLI imports it);
- `streams.runtime`: the worker's Kafka transport, table store, registry reader, read-ahead;
- `streams.http`: the HTTP API, its access rules, limits, routing and OpenAPI;
- `streams.notify`: the outputs to departments (SSE feed, console, webhooks);
- `streams.cli`: the `whistle` command; `streams.kafka`: the embedded Apache Kafka;
- `streams.bench`: the benchmark harness (`whistle bench`)."""
