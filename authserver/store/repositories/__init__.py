"""Repositories: the only code that builds SQL. Plain async functions over an
``AsyncConnection`` using Core statements (the ORM's unit of work costs ~4× on hot paths)."""
