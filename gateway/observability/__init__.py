"""Metrics (on an injected registry), batched request counters, the access log and process logs."""
