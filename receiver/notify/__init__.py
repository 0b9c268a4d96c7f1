"""Sending notifications: the Apprise transport."""
