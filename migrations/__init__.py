"""Alembic migrations: the only authority on the database schema."""
