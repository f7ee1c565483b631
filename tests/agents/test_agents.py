"""The agents on Faust's test_context(): real agents, in-memory tables, no broker.

What an agent hands to the producer is captured by swapping `Whistle.send`, the one seam."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from schemas import Alarm, Task, Triaged, topics
from streams.app import build
from streams.settings import Settings
from tests.conftest import T0, FixedClock, alarm_data


@pytest.fixture
def whistle(tmp_path):
    clock = FixedClock(T0 + timedelta(minutes=1))
    w = build(Settings(broker="kafka://127.0.0.1:1", store="memory://", data=tmp_path), clock)
    sent: list[tuple[str, str, dict]] = []

    async def record(topic: str, key: str, value: bytes):
        sent.append((topic, key, json.loads(value)))

    w.send = record
    w.sent = sent
    w.registry_reader.caught_up.set()  # no broker here: the registry is what the test puts in
    w.app.finalize()
    w.app.flow_control.resume()
    yield w


def agent(w, name):
    return next(a for a in w.app.agents.values() if a.name == name)


async def test_triage_stops_a_gateway_retry_but_forwards_a_replayed_message(whistle):
    async with agent(whistle, "triage").test_context() as triage:
        raw = json.dumps(alarm_data(alarm_id="gw:1")).encode()
        await triage.put(raw, key=b"jyh-yinfeng-lab-3")
        await triage.put(raw, key=b"jyh-yinfeng-lab-3")                 # the gateway's retry
        await triage.put(json.dumps(alarm_data(alarm_id="gw:2", kind="fire_report")).encode(),
                         key=b"jyh-yinfeng-lab-3")
        triage.sent_offset = 0                                           # as after a crash
        await triage.put(raw, key=b"jyh-yinfeng-lab-3")
    forwarded = [(t, k, v["alarm"]["alarm_id"], v["action"]) for t, k, v in whistle.sent]
    iid = forwarded[0][1]
    assert forwarded == [(topics.TRIAGED, iid, "gw:1", "open"),
                         (topics.TRIAGED, iid, "gw:2", "join"),
                         (topics.TRIAGED, iid, "gw:1", "open")]
    assert whistle.tables.alarms_seen["gw:1"][:3] == [iid, "0:0", "open"]
    assert whistle.sent[1][2]["evidence"] == {"devices": ["smk-1"], "people": True}


async def test_triage_resolves_a_device_only_alarm_and_records_heartbeats(whistle):
    from schemas import Device

    whistle.registry.put_device(Device(device_id="smk-77", site_id="jyh-yinfeng-lab-3",
                                       kind="smoke", heartbeat="1h"))
    async with agent(whistle, "triage").test_context() as triage:
        beat = alarm_data(alarm_id="hb:1", signal="test", site_id=None, device_id="smk-77")
        await triage.put(json.dumps(beat).encode(), key=b"jyh-yinfeng-lab-3")
        fire = alarm_data(alarm_id="gw:9", site_id=None, device_id="smk-77")
        await triage.put(json.dumps(fire).encode(), key=b"jyh-yinfeng-lab-3")
    assert [v["site"]["site_id"] for _, _, v in whistle.sent] == ["jyh-yinfeng-lab-3"]
    state = whistle.tables.devices["smk-77"]
    assert state[0] == "jyh-yinfeng-lab-3" and state[3] == 3600     # site, heartbeat 1h
    assert len(whistle.due) == 1


async def test_triage_sends_undecodable_alarms_to_the_dead_letter_topic(whistle):
    async with agent(whistle, "triage").test_context() as triage:
        await triage.put(b"\xff\xfe not json", key=b"x")
        await triage.put(json.dumps(alarm_data(occurred_at="yesterday")).encode(), key=b"x")
        await triage.put(json.dumps(alarm_data(alarm_id="ok")).encode(),
                         key=b"jyh-yinfeng-lab-3")
    letters = [v for t, _, v in whistle.sent if t == topics.DLQ]
    assert [letter["reason"].split(":")[0] for letter in letters] == ["not UTF-8", "Alarm invalid"]
    assert "occurred_at" in letters[1]["reason"]
    assert letters[1]["value_text"].startswith("{")
    assert [v["alarm"]["alarm_id"] for t, _, v in whistle.sent if t == topics.TRIAGED] == ["ok"]


def triaged_bytes(alarm_id: str, incident_id: str = "inc-20230516-x", kind: str = "smoke",
                  devices: tuple[str, ...] = ("smk-1", "smk-2"), action: str = "open") -> bytes:
    a = Alarm.model_validate(alarm_data(alarm_id=alarm_id, kind=kind), context={"now": T0})
    site = {"site_id": "jyh-yinfeng-lab-3", "name": "3号实验室", "type": "laboratory"}
    return Triaged(alarm=a, incident_id=incident_id, action=action, hazard="fire", family="fire",
                   evidence={"devices": list(devices)}, site=site).model_dump_json().encode()


async def test_the_urgent_lane_decides_first_and_the_original_is_a_retry_of_it(whistle):
    """A person's report copied ahead of a backlog is triaged on the urgent lane; when the
    worker reaches the original on whistle.alarms, it stops there, uncounted. A gateway's
    retry of it is still a counted duplicate; a copy arriving after its original is silent."""
    site = b"jyh-yinfeng-lab-3"
    report = json.dumps(alarm_data(alarm_id="call:1", kind="fire_report", device_id=None))
    late = json.dumps(alarm_data(alarm_id="call:2", kind="fire_report", device_id=None))
    async with agent(whistle, "triage-urgent").test_context() as urgent:
        await urgent.put(report.encode(), key=site, headers=[("whistle-origin", b"0:0")])
        async with agent(whistle, "triage").test_context() as triage:
            await triage.put(report.encode(), key=site)                 # 0:0, the original
            await triage.put(report.encode(), key=site)                 # 0:1, a gateway retry
            await triage.put(late.encode(), key=site)                   # 0:2, triaged first
            await urgent.put(late.encode(), key=site, headers=[("whistle-origin", b"0:2")])
    sent = [(t, v["alarm"]["alarm_id"], v["action"]) for t, _, v in whistle.sent]
    assert sent == [(topics.TRIAGED_URGENT, "call:1", "open"), (topics.TRIAGED, "call:2", "join")]
    assert whistle.tables.alarms_seen["call:1"][1] == "u:0:0"
    counted = {s.labels["result"]: s.value for m in whistle.metrics.alarms.collect()
               for s in m.samples if s.name == "whistle_alarms_total"}
    assert counted == {"open": 1.0, "duplicate": 1.0, "join": 1.0}


async def test_a_join_that_overtook_the_opening_opens_the_incident(whistle):
    """The urgent lane can pass the opening alarm still queued on the ordinary lane: its join
    opens the incident, and the opening alarm joins it when it comes."""
    async with agent(whistle, "dispatch-urgent").test_context() as urgent:
        await urgent.put(triaged_bytes("call:1", kind="fire_report", action="join"),
                         key=b"inc-20230516-x")
    opened = whistle.tables.incidents["inc-20230516-x"]
    assert opened["alarm_ids"] == ["call:1"] and opened["task_ids"]
    async with agent(whistle, "dispatch").test_context() as dispatch:
        await dispatch.put(triaged_bytes("gw:1"), key=b"inc-20230516-x")
    joined = whistle.tables.incidents["inc-20230516-x"]
    assert joined["alarm_ids"] == ["call:1", "gw:1"]
    assert joined["task_ids"] == opened["task_ids"]
    types = [e["type"] for e in whistle.tables.timelines["inc-20230516-x"]]
    assert types.count("incident_opened") == 1


async def test_dispatch_sends_each_task_to_its_department_topic_once(whistle):
    async with agent(whistle, "dispatch").test_context() as dispatch:
        await dispatch.put(triaged_bytes("gw:1"), key=b"inc-20230516-x")
        first = list(whistle.sent)
        await dispatch.put(triaged_bytes("gw:1"), key=b"inc-20230516-x")  # a replay
    task_msgs = [(t, v["task_id"], v["revision"]) for t, _, v in first
                 if t.startswith("whistle.tasks.")]
    assert {t for t, _, _ in task_msgs} >= {topics.task_topic(d) for d in (
        "safety_office", "police", "power_supply", "enforcement", "fire_brigade")}
    incident = whistle.tables.incidents["inc-20230516-x"]
    assert sorted(tid for _, tid, _ in task_msgs) == sorted(incident["task_ids"])
    replayed = [(t, v["task_id"], v["revision"]) for t, _, v in whistle.sent[len(first):]
                if t.startswith("whistle.tasks.")]
    assert sorted(replayed) == sorted(task_msgs)  # same ids and revisions: consumers drop them
    assert incident["revision"] == 1
    counted = whistle.open_tasks.counts([])  # what /metrics reports, kept as tasks are written
    assert sum(counted.values()) == len(incident["task_ids"])
    assert counted["police"] == sum(1 for t, _, _ in task_msgs if t.endswith(".police"))


def partitions(count: int):
    """A stand-in for the producer's metadata: `count` partitions, keys placed by a hash."""
    import zlib

    return lambda topic: (lambda key: zlib.crc32(key.encode("utf-8")) % count)


async def test_triage_opens_the_incident_in_the_same_step_on_its_own_partition(whistle):
    """With the producer's partitions known, triage picks an incident id on the alarm's own
    partition and runs dispatch there and then: tasks and tables, nothing on whistle.triaged;
    a replayed alarm re-sends the same snapshots."""
    whistle.lands = partitions(4)
    async with agent(whistle, "triage").test_context() as triage:
        raw = json.dumps(alarm_data(alarm_id="gw:1", kind="fire_report")).encode()
        await triage.put(raw, key=b"jyh-yinfeng-lab-3")
        first = list(whistle.sent)
        triage.sent_offset = 0                                           # as after a crash
        await triage.put(raw, key=b"jyh-yinfeng-lab-3")
    iid = whistle.tables.alarms_seen["gw:1"][0]
    assert whistle.lands(topics.TRIAGED)(iid) == 0                     # the alarm's partition
    incident = whistle.tables.incidents[iid]
    assert incident["alarm_ids"] == ["gw:1"] and incident["task_ids"]
    assert not [t for t, _, _ in whistle.sent if t in (topics.TRIAGED, topics.TRIAGED_URGENT)]
    tasks = sorted((v["task_id"], v["revision"]) for t, _, v in first
                   if t.startswith("whistle.tasks."))
    assert [tid for tid, _ in tasks] == sorted(incident["task_ids"])
    replayed = sorted((v["task_id"], v["revision"]) for t, _, v in whistle.sent[len(first):]
                      if t.startswith("whistle.tasks."))
    assert replayed == tasks
    assert "incident_opened" in {e["type"] for e in whistle.tables.timelines[iid]}


async def test_an_incident_stage_that_fails_in_triage_s_step_is_sent_on_whistle_triaged(
        whistle):
    """Nothing is lost when dispatch raises in triage's step: the verdict goes on
    whistle.triaged, where the dispatch stage (and its dead-letter path) takes it."""
    whistle.lands = partitions(4)

    async def broken(w, triaged, message):
        raise RuntimeError("playbook store away")

    whistle.stages[topics.TRIAGED] = broken
    async with agent(whistle, "triage").test_context() as triage:
        await triage.put(json.dumps(alarm_data(alarm_id="gw:1")).encode(),
                         key=b"jyh-yinfeng-lab-3")
    sent = [(t, k, v["alarm"]["alarm_id"]) for t, k, v in whistle.sent]
    assert sent == [(topics.TRIAGED, whistle.tables.alarms_seen["gw:1"][0], "gw:1")]


async def test_the_dispatching_stage_records_its_timeline_entries_once(whistle):
    """The stage that owns the incident's partition keeps the entries (one table write per
    incident) and sends each on whistle.timeline; a replay adds nothing to the table."""
    async with agent(whistle, "dispatch").test_context() as dispatch:
        await dispatch.put(triaged_bytes("gw:1"), key=b"inc-20230516-x")
        await dispatch.put(triaged_bytes("gw:1"), key=b"inc-20230516-x")  # a replay
    kept = whistle.tables.timelines["inc-20230516-x"]
    sent = [v for t, _, v in whistle.sent if t == topics.TIMELINE]
    assert len({e["entry_id"] for e in kept}) == len(kept)
    assert {e["entry_id"] for e in kept} == {e["entry_id"] for e in sent}
    assert {"incident_opened", "playbook_matched", "task_dispatched"} <= {e["type"] for e in kept}


async def test_task_updates_apply_the_state_machine_and_answer_the_waiting_request(whistle):
    import asyncio

    from schemas import TaskUpdate

    async with agent(whistle, "dispatch").test_context() as dispatch:
        await dispatch.put(triaged_bytes("gw:1"), key=b"inc-20230516-x")
    task_id = "inc-20230516-x.cordon"
    whistle.sent.clear()

    def update(update_id: str, action: str) -> bytes:
        return TaskUpdate(update_id=update_id, task_id=task_id, incident_id="inc-20230516-x",
                          action=action, by="张警官", at=T0 + timedelta(minutes=2)
                          ).model_dump_json().encode()

    loop = asyncio.get_running_loop()
    answers = {u: loop.create_future() for u in ("u1", "u2", "u3")}
    whistle.waiters.update(answers)
    async with agent(whistle, "task-updates").test_context() as updates:
        await updates.put(update("u1", "ack"), key=b"inc-20230516-x")
        await updates.put(update("u1", "ack"), key=b"inc-20230516-x")       # replayed
        await updates.put(update("u2", "complete"), key=b"inc-20230516-x")
        await updates.put(update("u3", "ack"), key=b"inc-20230516-x")       # lost a race
    assert answers["u1"].result()[0] == "ok"
    assert answers["u2"].result()[1].status == "completed"
    assert answers["u3"].result() == (
        "conflict", "cannot ack a task that is completed; allowed: nothing (final)")
    snapshots = [(v["status"], v["revision"]) for t, _, v in whistle.sent
                 if t == topics.task_topic("police")]
    assert snapshots == [("acknowledged", 2), ("acknowledged", 2), ("completed", 3)]
    entries = [v["type"] for t, _, v in whistle.sent if t == topics.TIMELINE]
    assert entries == ["task_acknowledged", "task_completed"]
    assert whistle.tables.tasks[task_id]["status"] == "completed"


async def test_a_replayed_opening_alarm_resends_the_opening_entries_with_the_same_ids(whistle):
    async with agent(whistle, "dispatch").test_context() as dispatch:
        await dispatch.put(triaged_bytes("gw:1"), key=b"inc-20230516-x")
        first = [v for t, _, v in whistle.sent if t == topics.TIMELINE]
        whistle.sent.clear()
        await dispatch.put(triaged_bytes("gw:1"), key=b"inc-20230516-x")  # as after a crash
        again = [v for t, _, v in whistle.sent if t == topics.TIMELINE]
    assert sorted(e["entry_id"] for e in again) == sorted(e["entry_id"] for e in first)
    assert {e["type"] for e in again} == {"alarm_received", "incident_opened", "playbook_matched",
                                         "task_dispatched"}


async def test_the_pas_timer_confirms_an_unchecked_incident_once(whistle):
    from agents import timers

    async with agent(whistle, "dispatch").test_context() as dispatch:
        await dispatch.put(triaged_bytes("gw:1", devices=("smk-1",)), key=b"inc-20230516-x")
    incident = whistle.tables.incidents["inc-20230516-x"]
    assert incident["confirmation"] == "unconfirmed" and incident["task_ids"] == [
        "inc-20230516-x.verify"]
    assert set(whistle.verifications) == {"inc-20230516-x"}
    whistle.sent.clear()
    await timers.check_verifications(whistle)              # 1 min after the alarm: not yet
    assert whistle.sent == [] and whistle.verifications
    whistle.clock.advance(seconds=30)                       # the 30 s to acknowledge are up
    await timers.check_verifications(whistle)
    await timers.check_verifications(whistle)               # a second look sends nothing more
    [(topic, key, update)] = whistle.sent
    assert (topic, key, update["action"]) == (topics.INCIDENT_UPDATES, "inc-20230516-x", "confirm")
    whistle.sent.clear()
    async with agent(whistle, "incident-updates").test_context() as updates:
        await updates.put(json.dumps(update).encode(), key=b"inc-20230516-x")
        await updates.put(json.dumps(update).encode(), key=b"inc-20230516-x")  # replayed
    incident = whistle.tables.incidents["inc-20230516-x"]
    assert incident["confirmation"] == "confirmed"
    assert "not acknowledged within 30s" in incident["confirmed_by"]
    dispatched = {v["department"] for t, _, v in whistle.sent if t.startswith("whistle.tasks.")
                  and v["revision"] == 1}
    assert dispatched >= {"fire_brigade", "safety_office", "police", "power_supply", "enforcement"}
    assert not whistle.verifications


async def test_a_silent_device_gets_one_offline_trouble_alarm(whistle):
    from agents import timers

    async with agent(whistle, "triage").test_context() as triage:
        beat = alarm_data(alarm_id="hb:1", signal="test", device_id="smk-9")
        await triage.put(json.dumps(beat).encode(), key=b"jyh-yinfeng-lab-3")
        assert whistle.sent == []                            # a heartbeat opens nothing
        whistle.clock.advance(hours=23)
        await timers.check_offline(whistle)
        assert whistle.sent == []
        whistle.clock.advance(hours=1, minutes=2)            # 24 h silent
        await timers.check_offline(whistle)
        await timers.check_offline(whistle)
        [(topic, key, offline)] = whistle.sent
        assert (topic, key, offline["signal"], offline["alarm_id"]) == (
            topics.ALARMS, "jyh-yinfeng-lab-3", "trouble",
            f"offline:smk-9:{int(T0.timestamp())}")
        whistle.sent.clear()
        await triage.put(json.dumps(offline).encode(), key=b"jyh-yinfeng-lab-3")
        [(topic, _, triaged)] = whistle.sent
        assert (topic, triaged["family"], triaged["action"]) == (
            topics.TRIAGED, "maintenance:smk-9", "open")
    assert whistle.tables.devices["smk-9"][4] == int(T0.timestamp())  # reported, not alive
    timers.rebuild(whistle)                                  # as after a restart
    whistle.sent.clear()
    await timers.check_offline(whistle)
    assert whistle.sent == []                                # reported once, not again


async def test_the_sixth_false_alarm_of_a_day_flags_the_site_once(whistle):
    from schemas import SiteEvent

    def closed(n: int) -> bytes:
        return SiteEvent(event_id=f"e{n}", site_id="jyh-yinfeng-lab-3", type="incident_closed",
                         incident_id=f"inc-{n}", family="fire", reason="false_alarm",
                         devices=["smk-1"], at=T0 + timedelta(minutes=n)
                         ).model_dump_json().encode()

    async with agent(whistle, "triage").test_context() as triage:  # the device is known
        beat = alarm_data(alarm_id="hb:1", signal="test", device_id="smk-1")
        await triage.put(json.dumps(beat).encode(), key=b"jyh-yinfeng-lab-3")
    async with agent(whistle, "site-events").test_context() as events:
        for n in range(1, 6):
            await events.put(closed(n), key=b"jyh-yinfeng-lab-3")
        assert whistle.sent == []                                  # five is not more than five
        await events.put(closed(6), key=b"jyh-yinfeng-lab-3")
        await events.put(closed(6), key=b"jyh-yinfeng-lab-3")     # replayed: counted once
        await events.put(closed(7), key=b"jyh-yinfeng-lab-3")
    [(topic, key, flag)] = whistle.sent
    assert (topic, key, flag["kind"], flag["alarm_id"]) == (
        topics.ALARMS, "jyh-yinfeng-lab-3", "repeated_false_alarms",
        "false-alarms:jyh-yinfeng-lab-3:2023-05-16")
    assert flag["attributes"]["false_alarms"] == 6
    state = whistle.tables.sites["jyh-yinfeng-lab-3"]
    assert len(state["false_alarms"]["2023-05-16"]) == 7 and state["flagged"] == "2023-05-16"
    assert whistle.tables.devices["smk-1"][5] == 7                 # per device too


async def test_a_merge_that_overtakes_its_incident_waits_for_it_then_is_a_dead_letter(
        whistle, monkeypatch):
    from agents import incident_updates

    monkeypatch.setattr(incident_updates, "MERGE_ATTEMPTS", 2)
    merge = {"update_id": "inc-a:merge", "incident_id": "inc-a", "action": "merge_into",
             "into": "inc-b", "by": "whistle", "at": T0.isoformat()}
    async with agent(whistle, "incident-updates").test_context() as updates:
        await updates.put(json.dumps(merge).encode(), key=b"inc-a")
        for _ in range(100):  # it waits a little before sending again
            if whistle.sent:
                break
            await asyncio.sleep(0.01)
        [(topic, key, again)] = whistle.sent
        assert (topic, key, again["attempt"]) == (topics.INCIDENT_UPDATES, "inc-a", 1)
        await updates.put(json.dumps({**merge, "attempt": 2}).encode(), key=b"inc-a")
    letter = whistle.sent[-1]
    assert letter[0] == topics.DLQ and letter[2]["reason"] == "unknown incident inc-a"


async def test_the_deadline_timer_sends_each_escalation_once_until_it_is_applied(whistle):
    from agents import timers

    async with agent(whistle, "dispatch").test_context() as dispatch:
        await dispatch.put(triaged_bytes("gw:1", devices=("smk-1",)), key=b"inc-20230516-x")
    whistle.sent.clear()
    whistle.clock.advance(seconds=31)                      # verify: 30 s to acknowledge
    verify = Task.model_validate(whistle.tables.tasks["inc-20230516-x.verify"])
    for _ in range(3):                                      # three ticks before it is applied,
        await timers.check_deadlines(whistle)
        whistle.track_deadlines([verify])           # the task published meanwhile
        whistle.clock.advance(seconds=1)
    sent = [v for t, _, v in whistle.sent if t == topics.ESCALATIONS]
    assert [e["escalation_id"] for e in sent] == ["inc-20230516-x.verify:ack:overdue",
                                                  "inc-20230516-x.verify:ack:0:1"]
    whistle.sent.clear()
    async with agent(whistle, "escalation").test_context() as escalation:
        for esc in sent * 2:                                # and each applied once
            await escalation.put(json.dumps(esc).encode(), key=b"inc-20230516-x")
    task = whistle.tables.tasks["inc-20230516-x.verify"]
    assert task["overdue"] == ["ack"] and len(task["escalations"]) == 2
    notices = [v for t, _, v in whistle.sent if t == topics.task_topic("safety_office")]
    assert {(n["task_id"], n["revision"]) for n in notices} == {
        ("inc-20230516-x.verify:ack_overdue:safety_office", 1)}
    assert not whistle.escalating
    whistle.clock.advance(seconds=40)                       # applied: nothing is due again
    whistle.sent.clear()
    await timers.check_deadlines(whistle)
    assert [e for t, _, e in whistle.sent if t == topics.ESCALATIONS] == []


def test_rocksdb_tables_take_their_sizes_from_the_settings(tmp_path):
    from faust.stores.rocksdb import Store

    w = build(Settings(broker="kafka://127.0.0.1:1", store="rocksdb://", data=tmp_path,
                       rocksdb_memtable_mb=2, rocksdb_cache_mb=3))
    for table in (w.tables.incidents, w.tables.timelines, w.tables.playbooks):
        store = table.data
        assert isinstance(store, Store)
        sizes = store.rocksdb_options
        assert (sizes.write_buffer_size, sizes.max_write_buffer_number) == (2 * 2**20, 2)
        assert sizes.block_cache_size == 3 * 2**20
        sizes.as_options()  # what opening a partition's database builds: rocksdict accepts it
        assert sizes.memory == 16 * 2**20  # one budget for all (WHISTLE_ROCKSDB_MEMORY_MB)
    alone = build(Settings(broker="kafka://127.0.0.1:1", store="rocksdb://", data=tmp_path / "b",
                           rocksdb_memory_mb=0))
    assert not hasattr(alone.tables.incidents.data.rocksdb_options, "memory")  # Faust's own


def test_rocksdb_tables_keep_their_key_index_compact(tmp_path):
    """Faust's store remembers the last 1,000 keys of each table; as orjson left them, each
    held a 4 KiB buffer (20 MB of a worker after 100,000 alarms)."""
    import tracemalloc

    for memory_mb in (32, 0):
        w = build(Settings(broker="kafka://127.0.0.1:1", store="rocksdb://",
                           data=tmp_path / str(memory_mb), rocksdb_memory_mb=memory_mb))
        store = w.tables.incidents.data
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            keys = [store._encode_key(f"inc-20261207-{n:010x}") for n in range(1000)]
            grown = sum(d.size_diff for d in
                        tracemalloc.take_snapshot().compare_to(before, "filename"))
        finally:
            tracemalloc.stop()
        assert keys[7] == b'"inc-20261207-0000000007"'
        assert grown < 200 * 1000, f"{grown / 1000:.0f} bytes a key"


async def test_units_of_one_building_correlate_into_one_incident(whistle):
    from schemas import Site, SiteEvent

    for site_id, building in (("b7-shop", "b7"), ("b7-1501", "b7"), ("b8-101", "b8")):
        whistle.registry.put_site(Site(site_id=site_id, name=site_id, type="residential",
                                       building=building))
    later = (T0 + timedelta(minutes=3)).isoformat()
    async with agent(whistle, "triage").test_context() as triage:
        for alarm_id, site, device, at in (("a1", "b7-shop", "smk-s", T0.isoformat()),
                                           ("a2", "b7-1501", "smk-15", later),
                                           ("a3", "b8-101", "smk-8", later)):
            key = b"building:b8" if site.startswith("b8") else b"building:b7"
            await triage.put(json.dumps(alarm_data(alarm_id=alarm_id, site_id=site,
                                                   device_id=device, occurred_at=at)).encode(),
                             key=key)
    decided = {v["alarm"]["alarm_id"]: (k, v["action"], v["site"]["site_id"], v["evidence"])
               for _, k, v in whistle.sent}
    shop, upstairs, next_door = decided["a1"], decided["a2"], decided["a3"]
    assert shop[:3] == (shop[0], "open", "b7-shop")
    # the 15th floor joins the shop's fire: one incident, two detectors confirm it
    assert upstairs[:3] == (shop[0], "join", "b7-1501")
    assert upstairs[3] == {"devices": ["smk-s", "smk-15"], "people": False}
    assert next_door[1] == "open" and next_door[0] != shop[0]       # another building
    assert [c["incident_id"] for c in whistle.tables.sites["building:b7"]["clusters"]] == [
        shop[0]]
    assert whistle.tables.sites.get("b7-shop") is None             # the building's state only

    # keyed by its site id (as the contract lets a producer): sent on with its building's key,
    # decided only there
    whistle.sent.clear()
    stray = json.dumps(alarm_data(alarm_id="a4", site_id="b7-1501", device_id="smk-15b",
                                  occurred_at=later)).encode()
    async with agent(whistle, "triage").test_context() as triage:
        await triage.put(stray, key=b"b7-1501")
    assert whistle.sent == [(topics.ALARMS, "building:b7", json.loads(stray))]
    assert whistle.tables.alarms_seen.get("a4") is None
    assert whistle.tables.devices.get("smk-15b") is None
    whistle.sent.clear()

    whistle.sent.clear()
    closed = SiteEvent(event_id="e1", site_id="b7-1501", type="incident_closed",
                       incident_id=shop[0], family="fire", reason="false_alarm",
                       at=T0 + timedelta(minutes=9))
    async with agent(whistle, "site-events").test_context() as events:
        await events.put(closed.model_dump_json().encode(), key=b"building:b7")
    assert whistle.tables.sites["building:b7"]["clusters"] == []    # the next fire is new
    # a false alarm counts for the site that had it, not for the whole building
    assert whistle.tables.sites["b7-1501"]["false_alarms"] == {"2023-05-16": [shop[0]]}
    assert whistle.tables.sites["building:b7"]["false_alarms"] == {}
