-- extension/sql/types.sql — chainwatch's types: severity levels and API roles

CREATE TYPE @extschema@.severity_level AS ENUM ('low', 'medium', 'high', 'critical');

COMMENT ON TYPE @extschema@.severity_level IS 'Severity of a detected anomaly, ordered low < medium < high < critical.';

CREATE TYPE @extschema@.api_role AS ENUM ('reader', 'admin');

COMMENT ON TYPE @extschema@.api_role IS
    'Role of an API key: reader may read and score, admin may also train, activate and roll back models.';
