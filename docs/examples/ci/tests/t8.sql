-- test 8: runs on a clone of the app snapshot (schema.sql); rolled back,
-- as the tests of one shard share its server.
begin;
insert into item values (1008, 'test 8');
do $$ begin if (select count(*) from item) <> 101 then raise exception 'wrong count'; end if; end $$;
rollback;
