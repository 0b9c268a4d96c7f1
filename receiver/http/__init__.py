"""Thin HTTP endpoints. They parse and answer; decisions live in pure modules."""
