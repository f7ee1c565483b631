"""The stages an alarm passes, one Faust agent each: triage -> dispatch -> task updates ->
incident updates -> escalation, with site events and the timers beside them.

Each stage module has `register(whistle)`, a thin agent that decodes, calls a pure decision of
`agents.logic` and sends what it returns. The after-action renderers are `agents.report`."""
