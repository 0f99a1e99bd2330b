"""``NotificationCampaign`` and ``Schedule``: one home for the resource models.

Imported by the scheduler (local runner, CLI, API) and the operator alike:

* :mod:`.schema` — the CRDs (packaged copies of ``crds/``), their defaults and strict
  validation;
* :mod:`.models` — the typed resources;
* :mod:`.loading` — files and cluster objects → validated resources (errors name the
  field);
* :mod:`.cron` — cron in a time zone, local intervals, slot run ids;
* :mod:`.tasks` — Schedule tasks: parameters, commands, images;
* :mod:`.templates` — template variables; :mod:`.segments` — audience categories;
* :mod:`.firing` — the resource → ``campaign.fired`` mapping and :func:`fire_campaign`.
"""

from herald_common.resources.firing import (
    campaign_fired,
    fire_campaign,
    fire_resource,
    scheduled_run_id,
)
from herald_common.resources.loading import (
    NAME_MAX,
    ResourceError,
    from_object,
    load_directories,
    load_file,
    load_text,
    parse_resource,
    resource_files,
)
from herald_common.resources.models import (
    Audience,
    CampaignSpec,
    Metadata,
    NotificationCampaign,
    Resource,
    Schedule,
    ScheduleSpec,
    Template,
)
from herald_common.resources.schema import API_VERSION, CRD_FILES, GROUP, PLURALS, VERSION

__all__ = [
    "API_VERSION",
    "CRD_FILES",
    "GROUP",
    "NAME_MAX",
    "PLURALS",
    "VERSION",
    "Audience",
    "CampaignSpec",
    "Metadata",
    "NotificationCampaign",
    "Resource",
    "ResourceError",
    "Schedule",
    "ScheduleSpec",
    "Template",
    "campaign_fired",
    "fire_campaign",
    "fire_resource",
    "from_object",
    "load_directories",
    "load_file",
    "load_text",
    "parse_resource",
    "resource_files",
    "scheduled_run_id",
]
