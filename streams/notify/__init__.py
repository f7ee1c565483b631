"""The outputs to departments: the SSE task stream, the department console and webhooks (with
their delivery attempts)."""
