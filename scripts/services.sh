#!/usr/bin/env bash
# Start the local Redis and PostgreSQL that the tests use, if they are not running.
# The commands are those of a Debian machine with both installed from its packages;
# elsewhere, start them your own way and set FFQ_TEST_REDIS_URL / FFQ_TEST_POSTGRES_URL.
set -u

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }
postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

if ! redis_up; then
  echo "starting redis-server on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! postgres_up; then
  echo "starting PostgreSQL on 127.0.0.1:5432"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -n 1)" main start
fi
for _ in $(seq 1 30); do
  redis_up && postgres_up && exit 0
  sleep 1
done
redis_up || echo "error: Redis is not answering on 127.0.0.1:6379" >&2
postgres_up || echo "error: PostgreSQL is not answering on 127.0.0.1:5432" >&2
exit 1
