"""Operating the service: scrape-time gauges, admin read models, retry, replay, retention.

Each module is a set of data functions taking `Services` and keyword-only arguments, shared
by the admin API (`receiver/http/admin.py`) and the CLI.
"""
