#!/bin/sh
# Create Epochscope's topics and their dead-letter topics; idempotent, run at every start.
# Runs in the official apache/kafka image (kafka-topics.sh) with the same EPOCHSCOPE_KAFKA_* settings
# the services read. A topic that exists with fewer partitions than EPOCHSCOPE_KAFKA_PARTITIONS is
# grown (Kafka never shrinks a topic).
#
#   EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS, EPOCHSCOPE_KAFKA_PARTITIONS,
#   EPOCHSCOPE_KAFKA_SECURITY_PROTOCOL, EPOCHSCOPE_KAFKA_SASL_MECHANISM,
#   EPOCHSCOPE_KAFKA_SASL_USERNAME, EPOCHSCOPE_KAFKA_SASL_PASSWORD    as for the services
#   TOPIC_REPLICATION_FACTOR   copies of each partition (1 on one broker; 3 in production)
#   TOPIC_MIN_INSYNC_REPLICAS  min.insync.replicas (1 on one broker; 2 with 3 copies)
#   TOPIC_RETENTION_MS         how long events are kept (default 7 days)
#   DLQ_RETENTION_MS           how long dead letters are kept (default 30 days)
set -eu

TOPICS="jobs.commands training.predictions training.status trainers.heartbeats"
BIN="${KAFKA_BIN:-/opt/kafka/bin}"
BOOTSTRAP="${EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS:?set EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS}"
PARTITIONS="${EPOCHSCOPE_KAFKA_PARTITIONS:-6}"
REPLICATION="${TOPIC_REPLICATION_FACTOR:-1}"
MIN_ISR="${TOPIC_MIN_INSYNC_REPLICAS:-1}"
RETENTION_MS="${TOPIC_RETENTION_MS:-604800000}"
DLQ_RETENTION_MS="${DLQ_RETENTION_MS:-2592000000}"

# Client settings for kafka-topics.sh, from the same variables the services read.
CONFIG="$(mktemp)"
trap 'rm -f "$CONFIG"' EXIT
echo "security.protocol=${EPOCHSCOPE_KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}" >"$CONFIG"
case "${EPOCHSCOPE_KAFKA_SASL_MECHANISM:-}" in
  "") ;;
  PLAIN) module=org.apache.kafka.common.security.plain.PlainLoginModule ;;
  SCRAM-SHA-256 | SCRAM-SHA-512) module=org.apache.kafka.common.security.scram.ScramLoginModule ;;
  *) echo "unsupported EPOCHSCOPE_KAFKA_SASL_MECHANISM: $EPOCHSCOPE_KAFKA_SASL_MECHANISM" >&2; exit 2 ;;
esac
if [ -n "${EPOCHSCOPE_KAFKA_SASL_MECHANISM:-}" ]; then
  {
    echo "sasl.mechanism=$EPOCHSCOPE_KAFKA_SASL_MECHANISM"
    echo "sasl.jaas.config=$module required username=\"${EPOCHSCOPE_KAFKA_SASL_USERNAME:-}\" password=\"${EPOCHSCOPE_KAFKA_SASL_PASSWORD:-}\";"
  } >>"$CONFIG"
fi

topics() { "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" "$@"; }

ensure() {  # ensure NAME RETENTION_MS
  topics --create --if-not-exists --topic "$1" --partitions "$PARTITIONS" \
    --replication-factor "$REPLICATION" \
    --config "retention.ms=$2" --config "min.insync.replicas=$MIN_ISR" --config cleanup.policy=delete
  current="$(topics --describe --topic "$1" | sed -n 's/.*PartitionCount: *\([0-9][0-9]*\).*/\1/p' | head -n 1)"
  if [ -n "$current" ] && [ "$current" -lt "$PARTITIONS" ]; then
    echo "growing $1 from $current to $PARTITIONS partitions"
    topics --alter --topic "$1" --partitions "$PARTITIONS"
  fi
  echo "topic $1 ready: at least $PARTITIONS partitions, replication factor $REPLICATION, retention.ms $2"
}

for topic in $TOPICS; do
  ensure "$topic" "$RETENTION_MS"
  ensure "$topic.dlq" "$DLQ_RETENTION_MS"
done
echo "topics ready"
