"""Names the operator and its children share: API group, labels, annotations, finalizer.

Everything the operator writes onto objects is named here, once.
"""

from __future__ import annotations

from herald_common.resources.schema import API_VERSION, GROUP, PLURALS, VERSION

__all__ = ["API_VERSION", "GROUP", "PLURALS", "VERSION"]

CAMPAIGN_KIND = "NotificationCampaign"
SCHEDULE_KIND = "Schedule"
CAMPAIGNS = PLURALS[CAMPAIGN_KIND]
SCHEDULES = PLURALS[SCHEDULE_KIND]

OPERATOR_NAME = "herald-operator"
FIELD_MANAGER = OPERATOR_NAME

# kopf keeps its progress and last-handled state in annotations with this prefix (the
# CRDs' status schema would prune kopf's default status.kopf), and names its finalizer
# (only used should a handler ever need one: children go by ownerReferences).
KOPF_PREFIX = GROUP
FINALIZER = f"{GROUP}/operator"
DIFFBASE_KEY = "last-handled-configuration"

# Annotation on a NotificationCampaign or Schedule: any value requests one immediate
# Job; the operator removes it once the Job is created.
RUN_NOW_ANNOTATION = f"{GROUP}/run-now"
# On a Job started for a request: which request (run-now or requestedRunAt) it serves.
RUN_REQUEST_ANNOTATION = f"{GROUP}/run-request"

# Labels: the recommended app.kubernetes.io set plus which resource a child belongs to.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_OWNER_KIND = f"{GROUP}/owner-kind"
LABEL_OWNER_NAME = f"{GROUP}/owner-name"
# On children of a resource in another namespace than theirs (HERALD_OPERATOR_JOB_NAMESPACE):
# where the resource is and which one it was (no owner reference can cross namespaces).
LABEL_OWNER_NAMESPACE = f"{GROUP}/owner-namespace"
LABEL_OWNER_UID = f"{GROUP}/owner-uid"
# Set by the Job controller on the pods of a Job.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
# Set by the CronJob controller on the Jobs it creates (Kubernetes >= 1.28).
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"

# Condition types written to status.conditions.
READY = "Ready"
SUSPENDED = "Suspended"
FAILED = "Failed"
LAST_RUN_SUCCEEDED = "LastRunSucceeded"
# Reason of Failed/Ready when a Secret, ConfigMap or ServiceAccount the Job pods use is
# not in the namespace the Jobs run in.
JOB_ENV_MISSING = "JobEnvMissing"

# Job outcomes (status.lastJob.outcome).
RUNNING, SUCCEEDED, JOB_FAILED = "Running", "Succeeded", "Failed"

# Where the container writes its result; Kubernetes keeps it as the termination message.
TERMINATION_LOG = "/dev/termination-log"
CONTAINER_NAME = "run"
# Names of children: "<prefix><resource name>", shortened with a digest to fit the
# 52 characters a CronJob name may have (its Jobs add "-<minutes>", pods more).
CHILD_PREFIX = {CAMPAIGN_KIND: "campaign-", SCHEDULE_KIND: "schedule-"}
CHILD_NAME_MAX = 52
