# conftest.py - a fresh PostgreSQL server for every test that asks for one.
import json
import subprocess

import psycopg2
import pytest


@pytest.fixture
def pg():
    """The clone's fields (url, host, port, ...; see pgsnap(1), JSON FIELDS)."""
    clone = json.loads(subprocess.run(["pgsnap", "new", "--json"], check=True,
                                      capture_output=True, text=True).stdout)
    yield clone
    subprocess.run(["pgsnap", "rm", clone["id"]], check=True)


@pytest.fixture
def conn(pg):
    """A connection to a fresh server, closed after the test."""
    c = psycopg2.connect(pg["url"])
    yield c
    c.close()
