"""Runtime kit shared by Recupero's services: the plumbing, never the business rules.

Transactional outbox and its relay, the idempotent consumer runner (inbox table, offsets committed
after the database commit, dead-letter topics), settings, JSON logging, health/readiness/metrics and
tenant API-key authentication. Services import this; it imports no service.
"""
