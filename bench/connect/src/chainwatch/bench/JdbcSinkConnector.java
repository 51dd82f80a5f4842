// bench/connect/src/chainwatch/bench/JdbcSinkConnector.java — the Kafka Connect peer's JDBC sink: connector side
//
// A minimal JDBC sink for bench-connect, standing in for Debezium's or Confluent's (neither is served by Maven
// Central here; bench/connect/pom.xml). It does what their insert mode does: records with a schema (Struct values
// from JsonConverter with schemas.enable=true: the {"schema": ..., "payload": ...} envelope) are inserted with a
// batched prepared statement, one database transaction per put(); Kafka Connect commits the consumer offsets
// afterwards, every offset.flush.interval.ms. Delivery is therefore at least once: a crash between the database
// commit and the offset commit replays the records since the last offset commit, and nothing removes the
// duplicates (a real sink's upsert mode, keyed by a primary key, makes the replays overwrite instead).
package chainwatch.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.connect.connector.Task;
import org.apache.kafka.connect.sink.SinkConnector;

public class JdbcSinkConnector extends SinkConnector {
    static final ConfigDef CONFIG = new ConfigDef()
            .define("connection.url", ConfigDef.Type.STRING, ConfigDef.Importance.HIGH,
                    "JDBC URL of the target database")
            .define("table.name", ConfigDef.Type.STRING, "connect_transactions", ConfigDef.Importance.MEDIUM,
                    "target table (created by the benchmark)");

    private Map<String, String> props;

    // start keeps the connector's properties; each task gets the same ones
    @Override
    public void start(Map<String, String> props) {
        this.props = props;
    }

    @Override
    public Class<? extends Task> taskClass() {
        return JdbcSinkTask.class;
    }

    // taskConfigs hands every task the connector's properties (the partitions are spread by the consumer group)
    @Override
    public List<Map<String, String>> taskConfigs(int maxTasks) {
        List<Map<String, String>> out = new ArrayList<>();
        for (int i = 0; i < maxTasks; i++)
            out.add(props);
        return out;
    }

    @Override
    public void stop() {}

    @Override
    public ConfigDef config() {
        return CONFIG;
    }

    @Override
    public String version() {
        return "1";
    }
}
