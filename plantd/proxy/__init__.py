"""plantd-proxy: REST/JSON over every MDP service, bus streams, and the web app (docs/app.md)."""
