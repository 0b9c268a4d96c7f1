"""Background work: the job functions, the queue seam (arq | in-process) and the outbox relay."""
