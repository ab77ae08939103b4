"""The supervisor and its workers: sessions (sessions/), the runtime (runtime/), worker agents
(tools/), knowledge documents (knowledge/) and the demo (demo/). See docs/agents.md."""
