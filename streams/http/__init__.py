"""The HTTP API on the worker's web server: views, who may call what, rate limits, routing a
request to the worker that holds its incident, JSON errors and the OpenAPI document."""
