# database_test.rb - Minitest (RSpec's before/after work the same way):
# a fresh server per test.
require "minitest/autorun"
require "pg"

class DatabaseTest < Minitest::Test
  def setup
    @url = `pgsnap new`.chomp
    raise "pgsnap new failed" unless $?.success?
    @conn = PG.connect(@url)
  end

  def teardown
    @conn.close
    system("pgsnap", "rm", @url, exception: true)
  end

  def test_now
    result = @conn.exec("SELECT now() AS number")
    refute_nil result[0]["number"]
  end

  def test_table
    @conn.exec("create table posts (title text)")
    @conn.exec_params("insert into posts values ($1)", ["hello"])
    assert_equal "hello", @conn.exec("select title from posts").getvalue(0, 0)
  end
end
