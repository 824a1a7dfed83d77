-- test 5: a transaction, rolled back: tests of one shard share its server.
begin;
create table shared_name (x int);
insert into shared_name select generate_series(1, 5);
do $$ begin if (select count(*) from shared_name) <> 5 then raise exception 'wrong count'; end if; end $$;
rollback;
