-- extension/sql/triggers.sql — triggers: cache invalidation and the registry generation, anomaly documents, address
-- profiles, configuration restores

CREATE TRIGGER models_invalidate
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.models
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.models_invalidate();

-- row level: a statement-level trigger does not fire for the INSERT ... RETURNING that
-- train_model() and import_model() run through SPI; TRUNCATE only exists at statement level
CREATE TRIGGER registry_changed
    AFTER INSERT OR UPDATE OR DELETE ON @extschema@.models
    FOR EACH ROW EXECUTE FUNCTION @extschema@._registry_changed();

CREATE TRIGGER registry_truncated
    AFTER TRUNCATE ON @extschema@.models
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._registry_changed();

CREATE TRIGGER anomalies_document
    BEFORE INSERT OR UPDATE ON @extschema@.anomalies
    FOR EACH ROW EXECUTE FUNCTION @extschema@._anomalies_document();

-- statement level with a transition table: one merge per batch (a COPY is one statement), in its transaction
CREATE TRIGGER transactions_profiles
    AFTER INSERT ON @extschema@.transactions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._profiles_from_batch();

CREATE TRIGGER retention_policies_restore
    BEFORE INSERT ON @extschema@.retention_policies
    FOR EACH ROW EXECUTE FUNCTION @extschema@._retention_policies_restore();

CREATE TRIGGER severity_rules_restore
    BEFORE INSERT ON @extschema@.severity_rules
    FOR EACH ROW EXECUTE FUNCTION @extschema@._severity_rules_restore();

CREATE TRIGGER severity_rules_keep_shipped
    BEFORE UPDATE OR DELETE ON @extschema@.severity_rules
    FOR EACH ROW EXECUTE FUNCTION @extschema@._severity_rules_keep_shipped();

CREATE TRIGGER severity_rules_keep_shipped_truncate
    BEFORE TRUNCATE ON @extschema@.severity_rules
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@._severity_rules_keep_shipped();
