"""What every layer of the bus stands on: settings and errors, the topic catalogue, Kafka client
options and the clients started from them, consumer groups, offsets and topic admin seen from
outside, and the embedded stack (Apache Kafka or Tansu, and PostgreSQL) with every broker
workaround. It imports only ``schemas``; producers, exchanges, consumers and the applications
import it (docs/architecture.md)."""
