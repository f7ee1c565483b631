"""The device fleet for the duty officer (admin): every device the registry or triage knows, with
its newest readings and what is wrong with it.

    GET /api/v1/devices[?site_id=&grid=&status=offline|low_battery|trouble|silenced
                        &limit=&cursor=]          -> {"devices": [...], "next_cursor"?}

A device's state is kept by triage in the partition of its site (`whistle.alarms` is keyed by
the resolved site), so the list is gathered across workers as the incidents list is
(`streams.http.routing`); a registered device nothing was heard from yet is listed by the
worker holding its site's partition. Devices are in id order; with `limit` the answer is a page
and `next_cursor` the cursor of the next (`streams.http.listing`). A status is:

- `offline`: silent past its heartbeat interval (or reported offline);
- `low_battery`: its battery is in a low period (`agents.logic.health.battery_alarm`);
- `trouble`: a maintenance incident of the device is open, or its newest signal is a fault;
- `silenced`: an active maintenance silence (检修屏蔽) covers it.

    >>> httpx.get(f"{url}/api/v1/devices", params={"status": "low_battery"}).json()
    {"devices": [{"device_id": "smk-1", "battery": 14.0, "status": ["low_battery"], ...}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp.web import Request
from faust.web import Response

from agents.logic.correlation import SiteState
from agents.logic.health import DeviceState
from agents.logic.silences import active
from schemas import Device, Site, topics
from streams.http.errors import Refusal, problem
from streams.http.listing import Found, Key
from streams.http.views import ApiView, Route
from streams.worker import Whistle

__all__ = ["DEVICE_STATUSES", "ROUTES"]

DEVICE_STATUSES = ("offline", "low_battery", "trouble", "silenced")


def device_key(device: Mapping[str, Any]) -> Key:
    return device["device_id"], ""


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def described(w: Whistle, device_id: str, device: Device | None, state: DeviceState | None,
              now: datetime) -> dict:
    """One device as the list shows it: the registry's entry and triage's state."""
    site_id = state.site_id if state is not None else device.site_id if device else ""
    site = w.registry.site(site_id) or Site.ad_hoc(site_id)
    flags = []
    if state is not None and (state.reported >= state.last_seen
                              or state.due <= now.timestamp()):
        flags.append("offline")
    if state is not None and state.low_since:
        flags.append("low_battery")
    family = f"maintenance:{device_id}"
    clusters = SiteState.from_json(w.tables.sites.get(site.triage_key)).clusters
    if (state is not None and state.last_signal in ("trouble", "supervisory")) or any(
            c.family == family and not c.muted for c in clusters):
        flags.append("trouble")
    if active(w.silences.values(), site, device_id, now) is not None:
        flags.append("silenced")
    return {"device_id": device_id, "site_id": site_id, "grid": site.grid,
            "kind": device.kind if device else state.kind if state else None,
            "name": device.name if device else "", "registered": device is not None,
            "last_seen": _iso(state.last_seen) if state else None,
            "last_signal": state.last_signal if state else None,
            "battery": state.battery if state else None,
            "signal": state.signal if state else None, "status": flags}


class Devices(ApiView):
    rights = {"get": "read_registry"}

    async def get(self, request: Request) -> Response:
        w = self.whistle
        status = self.query(request, "status", DEVICE_STATUSES)
        site_id, grid = request.query.get("site_id"), request.query.get("grid")
        wanted = Found.parse({k: v for k, v in request.query.items() if k in ("limit", "cursor")})
        now = w.clock()
        states = {k: DeviceState.from_json(v) for k, v in w.tables.devices.items()}
        listed = [described(w, k, w.registry.device(k), s, now) for k, s in states.items()]
        listed += [described(w, d.device_id, d, None, now) for d in w.registry.devices()
                   if d.device_id not in states
                   and self.gate.routing.holder(topics.ALARMS, w.site(d.site_id).triage_key,
                                                    "devices") is None]
        found = [d for d in listed if (site_id is None or d["site_id"] == site_id)
                 and (grid is None or d["grid"] == grid)
                 and (status is None or status in d["status"])]
        elsewhere, more = await self.gate.routing.gather(request, "devices")
        page, cursor = wanted.page(_one_each(found + elsewhere), device_key, newest_first=False,
                                   more_elsewhere=more)
        return self.reply({"devices": page, **({"next_cursor": cursor}
                                               if wanted.limit is not None else {})})


def _one_each(devices: list[dict]) -> list[dict]:
    """A device once (two workers may list it while partitions move): the one heard from."""
    kept: dict[str, dict] = {}
    for d in devices:
        if d["device_id"] not in kept or d["last_seen"] is not None:
            kept[d["device_id"]] = d
    return list(kept.values())


class OneDevice(ApiView):
    rights = {"get": "read_registry"}

    async def get(self, request: Request, device_id: str) -> Response:
        w = self.whistle
        device = w.registry.device(device_id)
        state = DeviceState.from_json(w.tables.devices.get(device_id))
        if state is not None:
            site_id = state.site_id
        elif device is not None:
            site_id = device.site_id
        else:
            raise Refusal(404, f"no device {device_id}", problem("device_id", "unknown"))
        shown = described(w, device_id, device, state, w.clock())
        return self.reply({
            "device": device.model_dump(mode="json") if device else None,
            "site_id": site_id, "grid": shown["grid"],
            "last_seen": _iso(state.last_seen) if state else None,
            "last_signal": state.last_signal if state else None,
            "battery": shown["battery"], "signal": shown["signal"], "status": shown["status"],
            "offline_due": _iso(state.due) if state else None,
            "reported_offline": bool(state and state.reported >= state.last_seen),
            "false_alarms": state.false_alarms if state else 0})


ROUTES: list[Route] = [Route("/api/v1/devices", Devices),
                       Route("/api/v1/devices/{device_id}", OneDevice)]
"""Mounted with the API's (`/api/v1/devices/{device_id}` is `streams.http.api`)."""
