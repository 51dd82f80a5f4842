-- extension/sql/functions/config.sql — the configuration tables survive pg_dump and restore
--
-- pg_dump keeps every row of retention_policies and severity_rules (pg_extension_config_dump with no
-- condition). A restore runs CREATE EXTENSION first, which inserts the shipped rows, and then COPYs the
-- dump's rows into the same tables. The BEFORE INSERT triggers below turn the insert of a row whose key
-- already exists into an update of that row, so the restored database holds exactly the dump's settings:
-- changed TTLs and bounds, edited and disabled shipped rules, the user's own rules. Normal inserts never
-- meet an existing key (severity rule ids come from a sequence; retention_policies has one row per managed
-- table, changed through set_retention()).
--
-- A shipped severity rule cannot be deleted (the restore would bring it back): it can be disabled. Up to
-- 0.8.0, retention_policies was dumped WHERE false and severity_rules WHERE id > 9, so a restore reverted
-- TTLs to the defaults (the next maintain() then dropped restored rows) and lost edits to shipped rules.

-- _retention_policies_restore: an insert of an existing table_name updates that policy instead.
CREATE FUNCTION @extschema@._retention_policies_restore() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE @extschema@.retention_policies p
       SET time_column = NEW.time_column, ttl = NEW.ttl, max_rows = NEW.max_rows,
           partition_width = NEW.partition_width, premake = NEW.premake, updated_at = NEW.updated_at
     WHERE p.table_name = NEW.table_name;
    IF FOUND THEN
        RETURN NULL;  -- the existing row now holds the inserted values
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION @extschema@._retention_policies_restore() IS
    'Internal trigger: an insert into retention_policies of a table that has a policy updates that policy (a pg_dump restore brings back the source''s settings).';

-- _severity_rules_restore: an insert of an existing id updates that rule instead. Lists every column of
-- severity_rules: a new column must be added here.
CREATE FUNCTION @extschema@._severity_rules_restore() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.id IS NULL THEN
        RETURN NEW;
    END IF;
    UPDATE @extschema@.severity_rules r
       SET severity = NEW.severity, min_score = NEW.min_score, min_value_eth = NEW.min_value_eth,
           min_gas_price_gwei = NEW.min_gas_price_gwei, description = NEW.description,
           enabled = NEW.enabled, shipped = NEW.shipped
     WHERE r.id = NEW.id;
    IF FOUND THEN
        RETURN NULL;  -- the existing row now holds the inserted values
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION @extschema@._severity_rules_restore() IS
    'Internal trigger: an insert into severity_rules of an existing id updates that rule (a pg_dump restore brings back edited and disabled shipped rules).';

-- _severity_rules_keep_shipped: shipped rules are edited and disabled, never deleted or un-shipped.
CREATE FUNCTION @extschema@._severity_rules_keep_shipped() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM @extschema@.severity_rules r WHERE r.shipped) THEN
            RAISE EXCEPTION 'chainwatch.severity_rules holds shipped rules, which cannot be deleted'
                USING ERRCODE = '55000',
                      HINT = 'Delete your own rules with DELETE ... WHERE NOT shipped, and disable shipped ones with UPDATE chainwatch.severity_rules SET enabled = false.';
        END IF;
        RETURN NULL;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.shipped THEN
            RAISE EXCEPTION 'severity rule % came with the extension and cannot be deleted', OLD.id
                USING ERRCODE = '55000',
                      HINT = format('Disable it instead: UPDATE chainwatch.severity_rules SET enabled = false WHERE id = %s.', OLD.id);
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.shipped IS DISTINCT FROM OLD.shipped THEN
        RAISE EXCEPTION 'severity_rules.shipped cannot be changed'
            USING ERRCODE = '55000', HINT = 'It says which rules came with the extension.';
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION @extschema@._severity_rules_keep_shipped() IS
    'Internal trigger: refuses to delete or truncate shipped severity rules (disable them instead) and to change severity_rules.shipped.';
