-- test 1: runs on a clone of the app snapshot (schema.sql); rolled back,
-- as the tests of one shard share its server.
begin;
insert into item values (1001, 'test 1');
do $$ begin if (select count(*) from item) <> 101 then raise exception 'wrong count'; end if; end $$;
rollback;
