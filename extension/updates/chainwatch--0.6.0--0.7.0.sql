-- extension/sql/chainwatch--0.6.0--0.7.0.sql — chainwatch 0.7.0: every anomaly keeps its REST JSON document
--
-- Design
--
-- * The API's anomaly list is its most requested uncached answer: 101 rows of 16 columns per page. Sent
--   column by column, the backend ran 1,616 send functions per page and the API formatted every value again,
--   on every request, for rows that never change once written.
-- * 0.7.0 adds anomalies.document, a STORED generated column: the row as the API's JSON object, computed once
--   by anomaly_document() (C, extension/src/document.c) when the row is written. A page is 101 short texts
--   the API joins; GET /api/v1/anomalies/{hash} serves the same text, so both print an anomaly identically
--   (the score as float8out's shortest form everywhere). recent_anomalies gains the column at its end.
-- * Writers are unchanged: COPY and INSERT leave generated columns out of their default column lists, and
--   nobody can write the column. Anomalies are about 1% of ingested rows, so computing the document costs
--   the ingest path nothing measurable.
-- * Partitions made from now on copy the generation expression (LIKE ... INCLUDING GENERATED): Postgres
--   refuses to attach a partition whose column is not generated like its parent's.
-- * Adding the column rewrites the existing anomaly partitions once, under ACCESS EXCLUSIVE; the table is
--   bounded (retention_policies.max_rows, 10,000 by default), so that is a short lock.

CREATE FUNCTION @extschema@.anomaly_document(
    id bigint, hash text, from_address text, to_address text, value numeric, gas numeric, gas_price numeric,
    block_number bigint, tx_time timestamptz, detected_at timestamptz, score double precision,
    severity @extschema@.severity_level, model_id int, kafka_topic text, kafka_partition int, kafka_offset bigint)
RETURNS text
AS 'MODULE_PATHNAME', 'chainwatch_anomaly_document'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_document(bigint, text, text, text, numeric, numeric, numeric, bigint,
                                                timestamptz, timestamptz, double precision,
                                                @extschema@.severity_level, int, text, int, bigint) IS
    'An anomaly as the REST API''s JSON object (amounts as exact strings, RFC 3339 UTC times, shortest scores); the generation expression of anomalies.document.';

ALTER TABLE @extschema@.anomalies
    ADD COLUMN document text GENERATED ALWAYS AS (@extschema@.anomaly_document(
        id, hash, from_address, to_address, value, gas, gas_price, block_number, tx_time, detected_at, score,
        severity, model_id, kafka_topic, kafka_partition, kafka_offset)) STORED;
COMMENT ON COLUMN @extschema@.anomalies.document IS
    'The row as the REST API returns it (compact JSON), computed by anomaly_document() when the row is written.';

CREATE OR REPLACE VIEW @extschema@.recent_anomalies AS
SELECT a.id, a.hash, a.from_address, a.to_address, a.value, a.gas, a.gas_price, a.block_number,
       a.tx_time, a.detected_at, a.score, a.severity, a.model_id, a.kafka_topic, a.kafka_partition, a.kafka_offset,
       a.document
  FROM @extschema@.anomalies a
 WHERE a.detected_at > now() - (SELECT p.ttl FROM @extschema@.retention_policies p WHERE p.table_name = 'anomalies');

-- _create_partition: as in 0.5.0, with INCLUDING GENERATED
CREATE OR REPLACE FUNCTION @extschema@._create_partition(tbl text, lower_bound timestamptz, upper_bound timestamptz) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pname text := format('%s_p%s', tbl, to_char(lower_bound AT TIME ZONE 'UTC', 'YYYYMMDD_HH24MISS'));
BEGIN
    EXECUTE format('CREATE TABLE @extschema@.%I (LIKE @extschema@.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)',
                   pname, tbl);
    -- ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent: ingest and queries go on
    EXECUTE format('ALTER TABLE @extschema@.%I ATTACH PARTITION @extschema@.%I FOR VALUES FROM (%L) TO (%L)',
                   tbl, pname, lower_bound, upper_bound);
    INSERT INTO @extschema@.partition_state (partition_name, table_name, lower_bound, upper_bound)
    VALUES (pname, tbl, _create_partition.lower_bound, _create_partition.upper_bound);
    RETURN pname;
END
$$;
