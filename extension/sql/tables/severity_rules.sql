-- extension/sql/tables/severity_rules.sql — the rules that grade a flagged transaction
--
-- * severity() (functions/severity.sql) gives the highest severity whose enabled rule matches, else low.
-- * CREATE EXTENSION ships nine rules (shipped = true). They can be edited and disabled, not deleted: a
--   shipped rule deleted at the source would come back in a restore, whose CREATE EXTENSION inserts it
--   again before the dump's rows arrive. pg_dump keeps every row (edited shipped rules, disabled ones and
--   the user's own); the restore's COPY meets the shipped rows CREATE EXTENSION made, and the trigger
--   severity_rules_restore (triggers.sql) turns the insert of a row whose id exists into an update of it.

CREATE TABLE @extschema@.severity_rules (
    id                 serial PRIMARY KEY,
    severity           @extschema@.severity_level NOT NULL CHECK (severity <> 'low'),
    min_score          float8  CHECK (min_score > 0 AND min_score <= 1),
    min_value_eth      numeric CHECK (min_value_eth >= 0),
    min_gas_price_gwei numeric CHECK (min_gas_price_gwei >= 0),
    description        text    NOT NULL DEFAULT '',
    enabled            boolean NOT NULL DEFAULT true,
    shipped            boolean NOT NULL DEFAULT false,
    CHECK (min_score IS NOT NULL OR min_value_eth IS NOT NULL OR min_gas_price_gwei IS NOT NULL)
);

COMMENT ON TABLE @extschema@.severity_rules IS
    'A flagged transaction gets the highest severity whose rule matches (every non-NULL minimum reached; value in ETH = wei / 1e18, gas price in gwei = wei / 1e9), else low.';

COMMENT ON COLUMN @extschema@.severity_rules.enabled IS 'A disabled rule grades nothing; disable a shipped rule instead of deleting it.';

COMMENT ON COLUMN @extschema@.severity_rules.shipped IS 'The rule came with the extension: it can be edited and disabled, not deleted.';

INSERT INTO @extschema@.severity_rules (severity, min_score, min_value_eth, min_gas_price_gwei, description, shipped) VALUES
    ('medium',   NULL, 100,   NULL,  'value of 100 ETH or more', true),
    ('medium',   NULL, NULL,  500,   'gas price of 500 gwei or more', true),
    ('medium',   0.70, 10,    NULL,  'strong outlier moving 10 ETH or more', true),
    ('high',     NULL, 1000,  NULL,  'value of 1,000 ETH or more', true),
    ('high',     NULL, NULL,  2000,  'gas price of 2,000 gwei or more', true),
    ('high',     0.75, 100,   NULL,  'strong outlier moving 100 ETH or more', true),
    ('critical', NULL, 10000, NULL,  'value of 10,000 ETH or more', true),
    ('critical', NULL, NULL,  10000, 'gas price of 10,000 gwei or more', true),
    ('critical', 0.80, 1000,  NULL,  'extreme outlier moving 1,000 ETH or more', true);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.severity_rules', '');

SELECT pg_catalog.pg_extension_config_dump('@extschema@.severity_rules_id_seq', '');
