"""The store (SQLite or PostgreSQL): history, parked events, the guard's ledger, sync runs."""
