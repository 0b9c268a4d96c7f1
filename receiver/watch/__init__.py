"""Watchers: what hub-receiver finds out by asking 360dialog, on a schedule, as events.

`limiter` (one rate limit across processes), `scheduler` (one run per watcher and
interval across processes), `events` (what a watcher found, stored as an ordinary event),
and one module per watcher (`reconcile`, `health`, `balance`).
"""
