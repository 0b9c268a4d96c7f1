"""The event pipeline after the acknowledgement: enrich, track status, route, deliver."""
