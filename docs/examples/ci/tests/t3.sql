-- test 3: a transaction, rolled back: tests of one shard share its server.
begin;
create table shared_name (x int);
insert into shared_name select generate_series(1, 3);
do $$ begin if (select count(*) from shared_name) <> 3 then raise exception 'wrong count'; end if; end $$;
rollback;
