"""`recupero`: the command line a bank's integration team uses to import portfolios.

It speaks only to the ingest service's HTTP API; it never imports a service or opens the database.
"""
