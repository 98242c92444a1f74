# jobq: PGXS build.
#
#   make && make install   build and install the extension
#   make installcheck      the regression files, against a running server with
#                          jobq preloaded: PGHOST/PGPORT/PGUSER as usual,
#                          PGDATABASE = one of its jobq.database (default jobq), and
#                          BSPORT = the port of the beanstalkd its
#                          jobq.servers names (on 127.0.0.1); `setup` runs
#                          first, the others in any order
#                          (make installcheck REGRESS="setup dispatch");
#                          then the TAP files of t/, which start clusters and
#                          beanstalkd servers of their own (not as root;
#                          PROVE_TESTS="t/013_backups_upgrades.pl" picks some,
#                          TAP_TESTS= leaves them out)
#   make test              everything, regression and TAP, with servers of
#                          its own (scripts/test.sh)
#   make unit              the unit tests of the pure code (unit/: reply
#                          parsing, the pack format, rendezvous hashing, JSON
#                          numbers), a program that needs no server
#   make check-version     META.json's versions start with jobq.control's
#                          default_version, the one place the version is set

MODULE_big = jobq
OBJS = \
	src/jobq.o \
	src/shmem.o \
	src/databases.o \
	src/settings.o \
	src/schema.o \
	src/signing.o \
	src/producer_acl.o \
	src/bs_conn.o \
	src/bs_reply.o \
	src/beanstalk.o \
	src/rendezvous.o \
	src/pool.o \
	src/job.o \
	src/job_json.o \
	src/json_numbers.o \
	src/put.o \
	src/pack.o \
	src/pack_sql.o \
	src/outbox.o \
	src/trigger.o \
	src/admin.o \
	src/registry.o \
	src/registry_cache.o \
	src/failed.o \
	src/unique.o \
	src/status.o \
	src/cancel.o \
	worker/launcher.o \
	worker/process.o \
	worker/worker.o \
	worker/job_run.o \
	worker/job_cancel.o \
	worker/touch.o \
	worker/dispatch.o \
	worker/relay.o

EXTENSION = jobq
# the version is jobq.control's default_version; META.json must agree
# (make check-version)
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(srcdir)/jobq.control)
DATA = sql/jobq--1.0.sql sql/jobq--1.0--1.1.sql sql/jobq--1.1--1.2.sql sql/jobq--1.2--1.3.sql \
       sql/jobq--1.3--1.4.sql sql/jobq--1.4--1.5.sql
PGFILEDESC = "jobq - beanstalkd job queue for PostgreSQL"

REGRESS = setup put_now admin workers dispatch outbox trigger security pool lifecycle
REGRESS_OPTS = --use-existing
TAP_TESTS = 1
PROVE_FLAGS = -I t

SHLIB_LINK += -ljansson
PG_CPPFLAGS = -I$(srcdir)/src -I$(srcdir)/worker
PG_CFLAGS = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# the database the workers run in, which pg_regress must not create or drop
# (set after PGXS, which sets its own)
CONTRIB_TESTDB = $(or $(PGDATABASE),jobq)

installcheck: bsport-given

# unit tests: the pure files, compiled as frontend code against libpgcommon
UNIT_SRCS = src/bs_reply.c src/pack.c src/rendezvous.c src/json_numbers.c
UNIT_TESTS = unit/unit.c unit/test_bs_reply.c unit/test_pack.c unit/test_rendezvous.c \
	unit/test_json_numbers.c
EXTRA_CLEAN = unit/unit

unit/unit: $(UNIT_SRCS) $(UNIT_TESTS) unit/unit.h
	$(CC) -DFRONTEND -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-sign-compare \
		-I$(srcdir)/src -I$(srcdir)/unit -I$(shell $(PG_CONFIG) --includedir-server) \
		-o $@ $(UNIT_SRCS) $(UNIT_TESTS) \
		-L$(shell $(PG_CONFIG) --pkglibdir) -lpgcommon -lpgport -lm

.PHONY: unit
unit: unit/unit
	unit/unit

.PHONY: bsport-given test
bsport-given:
	@test -n "$(BSPORT)" || { echo "make installcheck: set BSPORT to the port of the server's beanstalkd" >&2; exit 1; }

test:
	bash scripts/test.sh

# make print-REGRESS: the value of a variable, for scripts
print-%:
	@echo $($*)

# every "version" line of META.json (the distribution's and each extension's;
# meta-spec's is on its "meta-spec" line) is EXTVERSION or EXTVERSION.something
.PHONY: check-version
check-version:
	@test -n "$(EXTVERSION)" || { echo "check-version: no default_version in jobq.control" >&2; exit 1; }
	@versions=$$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' $(srcdir)/META.json); \
	test -n "$$versions" || { echo "check-version: no version in META.json" >&2; exit 1; }; \
	for v in $$versions; do \
		case "$$v" in \
		"$(EXTVERSION)"|"$(EXTVERSION)".*) ;; \
		*) echo "check-version: META.json has version $$v, jobq.control has default_version $(EXTVERSION)" >&2; exit 1;; \
		esac; \
	done; \
	echo "check-version: jobq.control $(EXTVERSION), META.json" $$versions
