"""Database: SQLAlchemy models, sessions and Alembic migrations."""
