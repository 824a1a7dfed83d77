-- schema.sql - what every test of the suite expects to find (app.recipe
-- builds the snapshot from it).  Change it, and the snapshot key changes.
create table item (id int primary key, name text not null);
insert into item select g, 'item ' || g from generate_series(1, 100) g;
