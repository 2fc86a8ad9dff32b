#!/usr/bin/env bash
# sqlite.sh — sqlite3 (the CLI, which allocates through malloc) running a
# generated script of about 25,000 statements on a database file: tables,
# single-row inserts in transactions, indexes, joins, aggregates, window
# functions, a recursive CTE, updates, deletes, VACUUM and an integrity check.
# All it prints must be identical with and without the pool.
source "$(dirname "$0")/lib.sh"

if ! command -v sqlite3 >/dev/null; then
  echo "SKIP: sqlite3 not installed: run scripts/setup" >&2
  exit 77
fi

awk 'BEGIN {
  seed = 12345
  print "PRAGMA journal_mode = WAL;"
  print "PRAGMA synchronous = OFF;"
  print "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT, city TEXT, joined INTEGER);"
  print "CREATE TABLE item (id INTEGER PRIMARY KEY, label TEXT, price REAL, blob BLOB);"
  print "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER, item INTEGER, qty INTEGER, note TEXT);"
  print "BEGIN;"
  for (i = 1; i <= 2000; i++)
    printf "INSERT INTO customer VALUES (%d, \047cust-%d-%s\047, \047city%d\047, %d);\n",
      i, i, substr("abcdefghijklmnopqrstuvwxyz", 1 + i % 26, 1 + i % 11), i % 37, 1600000000 + i * 977
  for (i = 1; i <= 600; i++)
    printf "INSERT INTO item VALUES (%d, \047item %d\047, %d.%02d, zeroblob(%d));\n",
      i, i, 1 + (i * 7919) % 500, (i * 31) % 100, (i * 13) % 2000
  print "COMMIT;"
  print "BEGIN;"
  for (i = 1; i <= 20000; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648
    printf "INSERT INTO orders VALUES (%d, %d, %d, %d, %s);\n", i, 1 + seed % 2000,
      1 + int(seed / 2000) % 600, 1 + seed % 9, (i % 4 == 0) ? "NULL" : "printf(\047note %d %.*c\047, " i ", " (i % 50) ", \047x\047)"
  }
  print "COMMIT;"
  print "CREATE INDEX orders_customer ON orders(customer);"
  print "CREATE INDEX orders_item ON orders(item, qty);"
  print "CREATE INDEX customer_city ON customer(city, name);"
  print ".mode list"
  print "SELECT count(*), sum(qty), total(length(note)) FROM orders;"
  print "SELECT c.city, count(*), sum(o.qty * i.price) FROM orders o JOIN customer c ON c.id = o.customer JOIN item i ON i.id = o.item GROUP BY c.city ORDER BY c.city;"
  print "SELECT i.label, sum(o.qty) AS n FROM orders o JOIN item i ON i.id = o.item GROUP BY i.id ORDER BY n DESC, i.id LIMIT 25;"
  print "SELECT customer, qty, sum(qty) OVER (PARTITION BY customer ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM orders WHERE customer % 97 = 0 ORDER BY customer, id;"
  print "SELECT city, group_concat(name, \047,\047) FROM (SELECT city, name FROM customer WHERE id % 50 = 0 ORDER BY city, name) GROUP BY city;"
  print "WITH RECURSIVE fib(n, a, b) AS (SELECT 1, 0, 1 UNION ALL SELECT n + 1, b, (a + b) % 1000000007 FROM fib WHERE n < 3000) SELECT n, a FROM fib WHERE n % 250 = 0;"
  for (i = 1; i <= 1500; i++)
    printf "UPDATE orders SET qty = qty + %d, note = coalesce(note, \047\047) || \047 upd%d\047 WHERE customer = %d;\n", i % 5, i, 1 + (i * 17) % 2000
  for (i = 1; i <= 1000; i++)
    printf "DELETE FROM orders WHERE id = %d OR (customer = %d AND qty > 8);\n", (i * 19) % 20000 + 1, (i * 23) % 2000 + 1
  for (i = 1; i <= 600; i++)
    printf "SELECT %d, count(*), coalesce(max(qty), 0) FROM orders WHERE item = %d;\n", i, i
  print "DELETE FROM customer WHERE id NOT IN (SELECT customer FROM orders);"
  print "SELECT count(*) FROM customer;"
  print "SELECT sum(length(blob)), avg(price) FROM item WHERE id IN (SELECT item FROM orders GROUP BY item HAVING count(*) > 10);"
  print "VACUUM;"
  print "PRAGMA integrity_check;"
  print "SELECT count(*), sum(qty), sum(length(note)) FROM orders;"
}' >"$INPUT/script.sql"

run_both sqlite3 -bail test.db ".read $INPUT/script.sql"
expect_same_stdout
finish
