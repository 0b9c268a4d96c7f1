"""The acknowledgement path: verify, parse, dedupe and commit before answering."""
