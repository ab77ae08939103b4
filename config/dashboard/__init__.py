"""The admin home: what needs a person first, then the health of the loop.

It reads every app, so it lives in `config` (which may import apps; no app imports it)."""
