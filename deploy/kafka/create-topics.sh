#!/usr/bin/env bash
# Create every topic Whistle uses, before any worker starts, with production settings.
# Idempotent (--if-not-exists): compose runs it on every `up`. The Kubernetes equivalent is
# deploy/k8s/topics.yaml (Strimzi KafkaTopic resources); tests/deploy checks both against the
# topics a live worker declares.
#
#   BOOTSTRAP=kafka:9092 PARTITIONS=12 REPLICATION=1 deploy/kafka/create-topics.sh
#
# PARTITIONS must equal the workers' WHISTLE_PARTITIONS: Faust co-partitions every table with
# its input topic, so every topic and changelog has the same count, fixed once created. It is
# also the most workers that can share the work (12: up to 12 workers).
# Changelog names are "<WHISTLE_APP_ID>-<table>-changelog" (APP_ID, default whistle).
set -euo pipefail

BOOTSTRAP=${BOOTSTRAP:-kafka:9092}
PARTITIONS=${PARTITIONS:-12}
REPLICATION=${REPLICATION:-1}
APP_ID=${APP_ID:-whistle}
KAFKA_TOPICS=${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}

DAY=86400000                 # ms
KEEP=$((400 * DAY))          # records a subdistrict reviews: a year and a month (deploy/README.md)
RAW=$((90 * DAY))            # raw alarms (mostly heartbeats) and dead letters: a quarter
INTERNAL=$((7 * DAY))        # stage-to-stage topics: only replays after a crash read them

DEPARTMENTS="safety_office police power_supply enforcement fire_brigade grid_worker property
medical gas_utility market_regulation community district_emergency district_fire district_housing
district_urban district_market district_ecology"
TABLES="alarms-seen sites devices incidents tasks timelines playbook-versions campaigns
campaign-sites"

topic() {  # topic NAME CONFIG...
    local name=$1
    shift
    local args=(--bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$name"
                --partitions "$PARTITIONS" --replication-factor "$REPLICATION")
    for config in "$@"; do
        args+=(--config "$config")
    done
    "$KAFKA_TOPICS" "${args[@]}"
}

# the incident record: kept for review and the yearly report
topic whistle.timeline        "cleanup.policy=delete" "retention.ms=$KEEP"
topic whistle.incidents       "cleanup.policy=compact,delete" "retention.ms=$KEEP"
topic whistle.task-updates    "cleanup.policy=delete" "retention.ms=$KEEP"
topic whistle.incident-updates "cleanup.policy=delete" "retention.ms=$KEEP"
topic whistle.escalations     "cleanup.policy=delete" "retention.ms=$KEEP"
topic whistle.deliveries      "cleanup.policy=delete" "retention.ms=$KEEP"
topic whistle.feedback        "cleanup.policy=delete" "retention.ms=$KEEP"
topic whistle.campaigns       "cleanup.policy=delete" "retention.ms=$KEEP"  # 专项整治
for d in $DEPARTMENTS; do
    # keyed by incident, and one incident may give a department several tasks: never compact
    topic "whistle.tasks.$d" "cleanup.policy=delete" "retention.ms=$KEEP"
done
# what came in
topic whistle.alarms          "cleanup.policy=delete" "retention.ms=$RAW"
topic whistle.alarms.dlq      "cleanup.policy=delete" "retention.ms=$RAW"
# internal hand-overs between stages
topic whistle.triaged         "cleanup.policy=delete" "retention.ms=$INTERNAL"
topic whistle.site-events     "cleanup.policy=delete" "retention.ms=$INTERNAL"
# the urgent lane: people's reports copied past a backlog, and their verdicts
topic whistle.alarms.urgent   "cleanup.policy=delete" "retention.ms=$INTERNAL"
topic whistle.triaged.urgent  "cleanup.policy=delete" "retention.ms=$INTERNAL"
# state: the latest value per key is the truth, kept for ever
topic whistle.registry        "cleanup.policy=compact"
topic whistle.silences        "cleanup.policy=compact"
for t in $TABLES; do
    # small segments (6 h, 64 MiB): compaction keeps up, and a worker taking a partition over
    # replays little more than the live state
    topic "$APP_ID-$t-changelog" "cleanup.policy=compact" "segment.ms=21600000" \
        "segment.bytes=67108864"
done
echo "whistle topics ready on $BOOTSTRAP ($PARTITIONS partitions, replication $REPLICATION)"
