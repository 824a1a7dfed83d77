#!/usr/bin/python3
"""Python's testing.postgresql, the way a test suite uses it: one process
makes N fresh servers in turn.  Prints the ms from asking for a server to
its first answered `select 1`, one line per server (after WARMUP unprinted).

usage: peer-testing-postgresql.py N WARMUP plain|cached
"""
import sys
import time

import psycopg2
import testing.postgresql


def main():
    n, warm, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    factory = None
    if mode == "cached":
        # initdb once, then each server starts on a copy of that directory
        factory = testing.postgresql.PostgresqlFactory(
            cache_initialized_db=True)
    for i in range(warm + n):
        t0 = time.perf_counter()
        pg = factory() if factory else testing.postgresql.Postgresql()
        conn = psycopg2.connect(pg.url())
        cur = conn.cursor()
        cur.execute("select 1")
        cur.fetchone()
        ms = (time.perf_counter() - t0) * 1e3
        conn.close()
        pg.stop()
        if i >= warm:
            print("%.3f" % ms, flush=True)
    if factory:
        factory.clear_cache()


main()
