"""The scaled profile's services: are PostgreSQL and Redis there, and do the databases exist (created on first
use). Used by `tokens2chips run` and `tokens2chips workers` in the scaled profile, and by the tests, which skip
with one line naming the missing service."""

from __future__ import annotations

from pipelines.settings import Scaled

START_HINT = {"postgresql": "start it: `service postgresql start` (Debian), or point T2C_PG_HOST/T2C_PG_PORT at one",
              "redis": "start it: `redis-server --daemonize yes`, or point T2C_REDIS_URL at one"}


def service_problems(scaled: Scaled) -> list[str]:
    """One line per unreachable service."""
    import psycopg2
    import redis

    problems = []
    try:
        psycopg2.connect(scaled.dsn("postgres"), connect_timeout=3).close()
    except psycopg2.Error as exc:
        problems.append(f"PostgreSQL at {scaled.pg_host}:{scaled.pg_port} is not reachable "
                        f"({str(exc).strip().splitlines()[0]}); {START_HINT['postgresql']}")
    try:
        redis.Redis.from_url(scaled.redis_url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {scaled.redis_url} is not reachable ({exc}); {START_HINT['redis']}")
    return problems


def ensure_databases(scaled: Scaled) -> None:
    """Create the Dagster storage and DuckLake catalog databases if they are missing."""
    import psycopg2

    con = psycopg2.connect(scaled.dsn("postgres"))
    try:
        con.autocommit = True
        with con.cursor() as cur:
            for name in (scaled.dagster_db, scaled.lake_db):
                cur.execute("select 1 from pg_database where datname = %s", (name,))
                if cur.fetchone() is None:
                    try:
                        cur.execute(f'create database "{name}"')
                    except psycopg2.errors.DuplicateDatabase:
                        pass  # created meanwhile by another process
    finally:
        con.close()


def live_workers(timeout_s: float = 2.0) -> list[str]:
    """The names of the Celery workers that answer a ping on the profile's broker."""
    from celery import Celery

    from pipelines.settings import celery_executor_config

    config = celery_executor_config()
    app = Celery("t2c-ping", broker=config["broker"], backend=config["backend"], config_source=config["config_source"])
    try:
        replies = app.control.ping(timeout=timeout_s) or []
    finally:
        app.close()
    return sorted(name for reply in replies for name in reply)
