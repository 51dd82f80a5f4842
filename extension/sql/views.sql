-- extension/sql/views.sql — what users query: rows within their TTL, API keys without their digests

CREATE VIEW @extschema@.recent_anomalies AS
SELECT a.id, a.hash, a.from_address, a.to_address, a.value, a.gas, a.gas_price, a.block_number,
       a.tx_time, a.detected_at, a.score, a.severity, a.model_id, a.kafka_topic, a.kafka_partition, a.kafka_offset,
       a.document, a.explanation, a.features
  FROM @extschema@.anomalies a
 WHERE a.detected_at > now() - (SELECT p.ttl FROM @extschema@.retention_policies p WHERE p.table_name = 'anomalies');

COMMENT ON VIEW @extschema@.recent_anomalies IS
    'Anomalies detected within the TTL: never a row older than retention_policies.ttl, even between maintenance runs.';

CREATE VIEW @extschema@.recent_transactions AS
SELECT t.* FROM @extschema@.transactions t
 WHERE t.detected_at > now() - (SELECT p.ttl FROM @extschema@.retention_policies p WHERE p.table_name = 'transactions');

COMMENT ON VIEW @extschema@.recent_transactions IS 'Transactions ingested within their TTL.';

CREATE VIEW @extschema@.api_key_list AS
SELECT k.id, k.name, k.key_prefix, k.role, k.created_at, k.created_by, k.expires_at, k.revoked_at, k.last_used_at,
       k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now()) AS is_valid
  FROM @extschema@.api_keys k;

COMMENT ON VIEW @extschema@.api_key_list IS 'API keys without their hashes, with whether each is currently valid.';
