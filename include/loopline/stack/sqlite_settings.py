"""SQLAlchemy connect arguments for the local stack's SQLite metadata database.

SQLite allows one writer at a time; Airflow's components write concurrently, and the default
5 s busy timeout turned some of those waits into "database is locked" errors here. Waiting
longer is the fix for a local default; PostgreSQL is the answer for real concurrency.
"""

CONNECT_ARGS = {"timeout": 60}
ASYNC_CONNECT_ARGS = {"timeout": 60}
