// bench/connect/src/chainwatch/bench/JdbcSinkTask.java — the Kafka Connect peer's JDBC sink: one task
//
// put() receives a batch of records (up to consumer max.poll.records) and inserts them in one transaction with
// a batched prepared statement (pgjdbc's reWriteBatchedInserts turns it into multi-row INSERTs). Values are
// Structs with the envelope's schema: hash, from, to, value (a decimal string: wei exceed int64), gas, gasPrice,
// blockNumber and timeStamp (int64). The amounts go into numeric(78,0) columns as text (stringtype=unspecified on
// the URL lets Postgres cast). An error fails the task (Kafka Connect's default errors.tolerance=none).
package chainwatch.bench;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Types;
import java.util.Collection;
import java.util.Map;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.ConnectException;
import org.apache.kafka.connect.sink.SinkRecord;
import org.apache.kafka.connect.sink.SinkTask;

public class JdbcSinkTask extends SinkTask {
    private Connection conn;
    private PreparedStatement insert;

    @Override
    public String version() {
        return "1";
    }

    // start opens the task's one connection and prepares the insert; the task owns both until stop()
    @Override
    public void start(Map<String, String> props) {
        try {
            conn = DriverManager.getConnection(props.get("connection.url"));
            conn.setAutoCommit(false);
            String table = props.getOrDefault("table.name", "connect_transactions");
            insert = conn.prepareStatement("INSERT INTO " + table + " (hash, from_address, to_address, value, gas, "
                    + "gas_price, block_number, tx_time, kafka_partition, kafka_offset) "
                    + "VALUES (?, ?, ?, ?, ?, ?, ?, to_timestamp(?), ?, ?)");
        } catch (SQLException e) {
            throw new ConnectException("cannot connect to the target database", e);
        }
    }

    // put inserts the batch in one transaction; Kafka Connect commits the offsets later (at least once)
    @Override
    public void put(Collection<SinkRecord> records) {
        if (records.isEmpty())
            return;
        try {
            for (SinkRecord r : records) {
                Struct v = (Struct) r.value();
                insert.setString(1, v.getString("hash"));
                insert.setString(2, v.getString("from"));
                String to = v.getString("to");
                if (to == null || to.isEmpty())
                    insert.setNull(3, Types.VARCHAR);
                else
                    insert.setString(3, to);
                insert.setString(4, v.getString("value"));
                insert.setLong(5, v.getInt64("gas"));
                insert.setLong(6, v.getInt64("gasPrice"));
                insert.setLong(7, v.getInt64("blockNumber"));
                insert.setLong(8, v.getInt64("timeStamp"));
                insert.setInt(9, r.kafkaPartition());
                insert.setLong(10, r.kafkaOffset());
                insert.addBatch();
            }
            insert.executeBatch();
            conn.commit();
        } catch (SQLException e) {
            throw new ConnectException("insert failed", e);
        }
    }

    // stop closes the statement and the connection (Kafka Connect calls it once, after the last put)
    @Override
    public void stop() {
        try {
            if (insert != null)
                insert.close();
            if (conn != null)
                conn.close();
        } catch (SQLException e) {
            throw new ConnectException("close failed", e);
        }
    }
}
