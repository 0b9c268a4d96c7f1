"""The dashboard at `/ui/`: server-rendered pages over the read model, behind ADMIN_TOKEN."""
