"""Database boundary: tables, engine and session set-up, repository functions."""
