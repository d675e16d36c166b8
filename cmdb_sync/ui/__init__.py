"""The web UI: server-rendered pages under /ui."""
