"""Alarms at about 200/s, one at a time (sent, acknowledged, then a pause of PAUSE s), each
timed to its first fire_brigade task: `python probe.py HOST:PORT N PAUSE`, with the checkout
on PYTHONPATH. Prints how many were answered and the percentiles of alarm sent -> task seen."""

import asyncio
import json
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.bench.traffic import alarm

TOPIC = "whistle.tasks.fire_brigade"


async def main(servers: str, n: int, pause: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", enable_idempotence=True)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, fetch_max_wait_ms=5,
                                auto_offset_reset="latest", enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    tps: list[TopicPartition] = []
    while not tps:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(TOPIC, p) for p in sorted(consumer.partitions_for_topic(TOPIC) or ())]
        await asyncio.sleep(0.2)
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    sent: dict[str, float] = {}
    took: dict[str, float] = {}

    async def read() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time() * 1000
            for records in batch.values():
                for record in records:
                    site = json.loads(record.value).get("site_id")
                    if site in sent and site not in took:
                        took[site] = now - sent[site]

    reader = asyncio.create_task(read())
    await asyncio.sleep(1)
    run = f"p{int(time.time())}"
    for i in range(n):
        site = f"{run}-{i:05d}"
        sent[site] = time.time() * 1000
        await producer.send_and_wait("whistle.alarms", alarm(site, site), key=site.encode())
        await asyncio.sleep(pause)
    await asyncio.sleep(2)
    reader.cancel()
    print(len(took), "of", n)
    ms = sorted(took.values())
    if ms:
        def at(q: float) -> float:
            return ms[min(len(ms) - 1, int(len(ms) * q))]
        print(f"{'total':30s} p50 {at(.5):6.2f} p90 {at(.9):6.2f} p99 {at(.99):6.2f} "
              f"max {ms[-1]:6.2f}")
    await producer.stop()
    await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
