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
#   KAFKA_API_PRINCIPAL, KAFKA_TRAINER_PRINCIPAL, KAFKA_WRITER_PRINCIPAL
#       each service's own broker principal (e.g. User:epochscope-api); when set, the script also grants each
#       only what it needs (kafka-acls.sh): the API writes commands; trainers read commands (group "trainers")
#       and write events, heartbeats and the commands' dead letters; writers read events and heartbeats (groups
#       "writers", "writers-heartbeats") and write the events' dead letters. Run it as a principal that may
#       create topics and ACLs (a super user); with an authorizer that denies what no ACL allows, nothing else
#       is allowed.
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

acl() {  # acl PRINCIPAL OPERATION --topic NAME | --group NAME
  "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" \
    --add --allow-principal "$1" --operation "$2" "$3" "$4"
}

if [ -n "${KAFKA_API_PRINCIPAL:-}${KAFKA_TRAINER_PRINCIPAL:-}${KAFKA_WRITER_PRINCIPAL:-}" ]; then
  api="${KAFKA_API_PRINCIPAL:?set KAFKA_API_PRINCIPAL with the other principals}"
  trainer="${KAFKA_TRAINER_PRINCIPAL:?set KAFKA_TRAINER_PRINCIPAL with the other principals}"
  writer="${KAFKA_WRITER_PRINCIPAL:?set KAFKA_WRITER_PRINCIPAL with the other principals}"
  acl "$api" Write --topic jobs.commands
  acl "$api" Describe --topic jobs.commands
  acl "$trainer" Read --topic jobs.commands
  acl "$trainer" Describe --topic jobs.commands
  acl "$trainer" Read --group trainers
  for topic in training.predictions training.status trainers.heartbeats jobs.commands.dlq; do
    acl "$trainer" Write --topic "$topic"
    acl "$trainer" Describe --topic "$topic"
  done
  for topic in training.predictions training.status trainers.heartbeats; do
    acl "$writer" Read --topic "$topic"
    acl "$writer" Describe --topic "$topic"
    acl "$writer" Write --topic "$topic.dlq"
    acl "$writer" Describe --topic "$topic.dlq"
  done
  acl "$writer" Read --group writers
  acl "$writer" Read --group writers-heartbeats
  echo "ACLs ready: $api writes commands, $trainer reads commands and writes events, $writer reads events"
fi
