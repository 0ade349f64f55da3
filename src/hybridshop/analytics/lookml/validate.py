"""``dashboards validate``: every problem of the project as file:line messages."""

from __future__ import annotations

from hybridshop.analytics.lookml.errors import ElementError
from hybridshop.analytics.lookml.project import Project


def validate_project(project: Project) -> list[ElementError]:
    raise NotImplementedError
