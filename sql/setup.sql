-- setup: what every regression file uses; run it first, then the others in
-- any order (make installcheck REGRESS="setup dispatch").  The server must
-- have jobq preloaded, and BSPORT must name the port of the beanstalkd that
-- its jobq.servers points at.
CREATE EXTENSION IF NOT EXISTS jobq;
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS results (id serial, func text, args jsonb, who text,
                                    at timestamptz DEFAULT clock_timestamp());
RESET client_min_messages;
GRANT ALL ON results, results_id_seq TO PUBLIC;

-- wait until a query returns true (workers commit in their own transactions)
CREATE OR REPLACE FUNCTION wait_for(cond text, secs int DEFAULT 30) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    ok boolean;
BEGIN
    FOR i IN 1 .. secs * 20 LOOP
        EXECUTE cond INTO ok;
        IF ok THEN RETURN true; END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END $$;
