#!/usr/bin/perl
# Perl's Test::PostgreSQL, the way a test suite uses it: one process makes
# N fresh servers in turn.  Prints the ms from asking for a server to its
# first answered `select 1`, one line per server (after WARMUP unprinted).
#
# usage: peer-test-postgresql.pl N WARMUP
use strict;
use warnings;
use DBI;
use Test::PostgreSQL;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

my ($n, $warm) = @ARGV;
$| = 1;
for my $i (1 .. $warm + $n) {
	my $t0 = clock_gettime(CLOCK_MONOTONIC);
	my $pg = Test::PostgreSQL->new() or die $Test::PostgreSQL::errstr;
	my $dbh = DBI->connect($pg->dsn, '', '', { RaiseError => 1 });
	$dbh->selectrow_array('select 1');
	my $ms = (clock_gettime(CLOCK_MONOTONIC) - $t0) * 1e3;
	$dbh->disconnect;
	$pg->stop;
	printf "%.3f\n", $ms if $i > $warm;
}
