# database.t - Test::More and DBD::Pg: one fresh server for this file.
use strict;
use warnings;
use Test::More;
use DBI;

chomp(my $url = `pgsnap new`);
die "pgsnap new failed\n" if $?;
# The URL is the DSN; no user name, or DBD::Pg appends one to it.
my $dbh = DBI->connect("dbi:Pg:$url", undef, undef,
                       { RaiseError => 1, AutoCommit => 1 });
END { $dbh->disconnect if $dbh; system("pgsnap", "rm", $url) if $url }

$dbh->do("create table notes (body text)");
$dbh->do("insert into notes values (?)", undef, "remember");
is($dbh->selectrow_array("select body from notes"), "remember", "a row");
ok($dbh->selectrow_array("select now()"), "now()");

done_testing();
