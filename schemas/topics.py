"""The wire names: topics (the contract's, plus internal ones) and message headers.

    >>> task_topic("police")
    'whistle.tasks.police'
"""

from __future__ import annotations

__all__ = ["ALARMS", "ALARMS_URGENT", "CAMPAIGNS", "DELIVERIES", "DLQ", "ESCALATIONS", "FEEDBACK",
           "INCIDENTS", "INCIDENT_UPDATES", "REGISTRY", "SILENCES", "SITE_EVENTS", "TASK_UPDATES",
           "TIMELINE", "TRIAGED", "TRIAGED_URGENT", "ORIGIN", "task_topic"]

ALARMS = "whistle.alarms"              # key: site_id (or the ad-hoc site of a located report)
DLQ = "whistle.alarms.dlq"             # a DeadLetter: the raw bytes and the reason
TRIAGED = "whistle.triaged"            # internal; key: incident_id
ALARMS_URGENT = "whistle.alarms.urgent"    # internal: copies of people's fire reports read ahead
TRIAGED_URGENT = "whistle.triaged.urgent"  # internal: ... and their verdicts
                                           # (see streams.runtime.lookahead)
INCIDENTS = "whistle.incidents"        # Incident snapshots; key: incident_id
TASK_UPDATES = "whistle.task-updates"  # TaskUpdate; key: incident_id
INCIDENT_UPDATES = "whistle.incident-updates"  # IncidentUpdate; key: incident_id
TIMELINE = "whistle.timeline"          # TimelineEntry; key: incident_id
SITE_EVENTS = "whistle.site-events"    # SiteEvent (incident closed) for triage; key: site_id
ESCALATIONS = "whistle.escalations"    # Escalation (missed deadline, failed delivery);
                                       # key: incident_id
DELIVERIES = "whistle.deliveries"      # DeliveryAttempt, one per webhook POST; key: target
FEEDBACK = "whistle.feedback"          # Feedback for a closed incident's reporters;
                                       # key: incident_id
REGISTRY = "whistle.registry"          # compacted; key "site:<id>" | "device:<id>"; Site | Device
SILENCES = "whistle.silences"          # compacted; key silence_id; Silence (schemas/silence.py)
CAMPAIGNS = "whistle.campaigns"        # joint campaigns' records; key campaign_id;
                                       # CampaignMessage (start, finding, end; schemas/campaign.py)

ORIGIN = "whistle-origin"
"""Header of a copy on `whistle.alarms.urgent`: "<partition>:<offset>" of the alarm it copies on
`whistle.alarms`, so that triage takes each alarm once, whichever lane reaches it first."""


def task_topic(department: str) -> str:
    """Where a department's task snapshots go (key: incident_id)."""
    return f"whistle.tasks.{department}"
