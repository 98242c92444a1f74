# jobq: PGXS build.
#
# `make && make install` builds and installs the extension; `make test` runs
# the whole suite (see scripts/test.sh, which starts its own servers).

MODULE_big = jobq
OBJS = \
	src/jobq.o \
	src/shmem.o \
	src/schema.o \
	src/signing.o \
	src/producer_acl.o \
	src/beanstalk.o \
	src/job.o \
	src/job_json.o \
	src/put.o \
	src/outbox.o \
	src/trigger.o \
	src/admin.o \
	src/registry.o \
	worker/launcher.o \
	worker/worker.o \
	worker/dispatch.o \
	worker/relay.o

EXTENSION = jobq
DATA = sql/jobq--1.0.sql sql/jobq--1.0--1.1.sql
PGFILEDESC = "jobq - beanstalkd job queue for PostgreSQL"

SHLIB_LINK += -ljansson
PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)
