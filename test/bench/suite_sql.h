/* suite_sql.h - the 5 small queries of each test of the benchmark's suite
 * (timer.c and libsuite.c run the same ones). */
#ifndef SUITE_SQL_H
#define SUITE_SQL_H

static const char *const suite_sql[] = {
	"create table t (id int primary key, v text)",
	"insert into t select g, md5(g::text) from generate_series(1, 10) g",
	"update t set v = 'x' where id = 3",
	"select count(*), max(v) from t",
	"delete from t where id > 5",
};

#endif
