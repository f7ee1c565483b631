"""The vocabulary of Whistle: pydantic models for every message and file. No I/O, no Faust."""

from schemas.alarm import KINDS, SIGNALS, Alarm, Location, Reporter, Signal
from schemas.campaign import (
    CAMPAIGN_OUTCOMES,
    Campaign,
    CampaignCommand,
    CampaignEnd,
    CampaignFinding,
    CampaignMessage,
    CampaignOutcome,
    CampaignPlaybook,
    CampaignProgress,
    CampaignSite,
    CampaignStart,
    CampaignStep,
    CampaignTask,
    EndCampaignRequest,
    FindingRequest,
    StartCampaignRequest,
)
from schemas.command import (
    AddTaskRequest,
    CancelTaskRequest,
    DrillRequest,
    OpenIncidentRequest,
    ReassignRequest,
    WhistleRequest,
)
from schemas.common import LEVELS, Duration, Level, Timestamp, parse_duration, utc_now
from schemas.config import FEEDBACK_TARGET, ROLES, Config, Grant, Role, Webhook, token_digest
from schemas.department import Department, DepartmentRegistry
from schemas.escalation import (
    CAUSES,
    Cause,
    DeliveryAttempt,
    Escalation,
    Feedback,
    FeedbackItem,
    Overdue,
)
from schemas.incident import (
    CLOSE_REASONS,
    CONFIRMATIONS,
    INCIDENT_STATUSES,
    CloseRequest,
    Confirmation,
    ContainRequest,
    Evidence,
    Incident,
    IncidentStatus,
    IncidentUpdate,
    LevelRequest,
    PlaybookRef,
)
from schemas.messages import DeadLetter, SiteEvent, Triaged
from schemas.playbook import Playbook, PlaybookMatch, PlaybookStep
from schemas.site import SITE_TYPES, Device, Site, SiteRegistry, SiteType
from schemas.task import (
    FINAL_STATUSES,
    TASK_ACTIONS,
    TASK_STATUSES,
    Task,
    TaskAction,
    TaskStatus,
    TaskUpdate,
    TaskUpdateRequest,
)
from schemas.timeline import ENTRY_TYPES, Timeline, TimelineEntry

__all__ = [
    "Alarm", "DeadLetter", "INCIDENT_STATUSES", "Department", "DepartmentRegistry", "Duration",
    "ENTRY_TYPES", "Incident", "IncidentStatus", "IncidentUpdate", "LevelRequest", "KINDS",
    "LEVELS", "Level", "Location", "Playbook",
    "PlaybookMatch", "PlaybookRef", "PlaybookStep", "Reporter", "SIGNALS", "SITE_TYPES",
    "Signal", "Device", "Site", "SiteRegistry", "SiteType", "TASK_ACTIONS", "TASK_STATUSES",
    "Task", "TaskAction", "FINAL_STATUSES", "CloseRequest", "CLOSE_REASONS",
    "ContainRequest",
    "TaskStatus", "TaskUpdate", "TaskUpdateRequest", "Timeline", "TimelineEntry", "Timestamp",
    "Triaged", "parse_duration", "utc_now", "CONFIRMATIONS", "Confirmation", "Evidence",
    "SiteEvent", "CAUSES", "Cause", "Config", "DeliveryAttempt", "Escalation", "FEEDBACK_TARGET",
    "Feedback", "FeedbackItem", "Grant", "Overdue", "ROLES", "Role", "Webhook", "token_digest",
    "AddTaskRequest", "CancelTaskRequest", "DrillRequest", "OpenIncidentRequest", "ReassignRequest",
    "WhistleRequest",
    "CAMPAIGN_OUTCOMES", "Campaign", "CampaignCommand", "CampaignEnd", "CampaignFinding",
    "CampaignMessage", "CampaignOutcome", "CampaignPlaybook", "CampaignProgress", "CampaignSite",
    "CampaignStart", "CampaignStep", "CampaignTask", "EndCampaignRequest", "FindingRequest",
    "StartCampaignRequest",
]
