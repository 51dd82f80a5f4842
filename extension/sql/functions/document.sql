-- extension/sql/functions/document.sql — anomalies.document: an anomaly as the REST API's JSON object
--
-- The trigger anomalies_document (triggers.sql) fills the column on every insert and update, from the row
-- being written (extension/src/document.c says why a stored document, and how it is kept correct).
-- anomaly_document() computes the same text from the columns' values, for queries and tests. It is STABLE:
-- it prints the severity with enum_out, which reads the catalog. Up to 0.8.0 it was declared IMMUTABLE, the
-- generation expression of a generated column.

CREATE FUNCTION @extschema@.anomaly_document(
    id bigint, hash text, from_address text, to_address text, value numeric, gas numeric, gas_price numeric,
    block_number bigint, tx_time timestamptz, detected_at timestamptz, score double precision,
    severity @extschema@.severity_level, model_id int, kafka_topic text, kafka_partition int, kafka_offset bigint,
    explanation jsonb DEFAULT NULL)
RETURNS text
AS 'MODULE_PATHNAME', 'chainwatch_anomaly_document'
LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION @extschema@.anomaly_document(bigint, text, text, text, numeric, numeric, numeric, bigint,
                                                timestamptz, timestamptz, double precision,
                                                @extschema@.severity_level, int, text, int, bigint, jsonb) IS
    'An anomaly as the REST API''s JSON object (amounts as exact strings, RFC 3339 UTC times, shortest scores): what the trigger anomalies_document stores in anomalies.document.';

CREATE FUNCTION @extschema@._anomalies_document() RETURNS trigger
AS 'MODULE_PATHNAME', 'chainwatch_anomalies_document'
LANGUAGE C;
COMMENT ON FUNCTION @extschema@._anomalies_document() IS
    'Internal trigger: sets anomalies.document to anomaly_document() of the row being inserted or updated, whatever the writer gave.';
