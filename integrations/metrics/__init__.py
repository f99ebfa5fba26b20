"""Prometheus: a /metrics endpoint on workers, run metrics pushed to a Pushgateway."""
