"""Everything that touches the outside: the Faust app, settings, topics, codecs, the HTTP API,
the embedded broker and the `whistle` command."""
