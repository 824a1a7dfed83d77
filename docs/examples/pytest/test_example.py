# Each test gets its own server: both create the same table.


def test_create(conn):
    with conn.cursor() as cur:
        cur.execute("create table users (name text primary key)")
        cur.execute("insert into users values ('ada')")
        cur.execute("select count(*) from users")
        assert cur.fetchone()[0] == 1


def test_create_again(conn):
    with conn.cursor() as cur:
        cur.execute("create table users (name text primary key)")
        cur.execute("select count(*) from users")
        assert cur.fetchone()[0] == 0


def test_fields(pg):
    assert pg["url"].startswith("postgresql://")
    # "postgres"; with PGSNAP_SHARED, pgsnap_1, pgsnap_2, ...
    assert pg["url"].endswith("/" + pg["database"])
