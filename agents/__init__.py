"""The stages an alarm passes: triage -> dispatch -> task updates -> timeline.

Each stage module has `register(whistle)`, a thin Faust agent that decodes, calls a pure
function (`correlation`, `incidents`, `taskstate`, `timelines`) and sends what it returns."""
